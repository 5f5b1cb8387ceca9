"""Signals of the identity layer, and the receivers it needs itself.

``globus_tokens_updated`` is sent after a Globus login saved fresh tokens to
the vault. Keyword arguments: ``user``, ``resource_servers`` (sorted names of
the resource servers whose tokens were saved) and ``request``; the sender is
the user model. The transfer engine connects to it to resume the user's jobs
parked in ``needs_login``. It is sent inside the login request: receivers
that queue background work should do so with ``transaction.on_commit``.
"""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import Signal, receiver

globus_tokens_updated = Signal()


@receiver(user_logged_out, dispatch_uid="archive_portal.revoke_globus_tokens_on_logout")
def revoke_globus_tokens_on_logout(sender, request, user, **kwargs):
    """Logging out revokes the user's Globus tokens and forgets them.

    Not when allauth logs the current user out at the start of a Globus
    login: those tokens stay until the new login replaces them.
    """
    if user is None or getattr(request, "portal_globus_callback", False):
        return
    from transfers.clients import revoke_tokens_of

    revoke_tokens_of(user)
