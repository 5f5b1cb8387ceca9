"""Start-up checks of the identity layer (``manage.py check`` runs them).

Ids are stable (operators silence or grep for them) and listed in README.md's
Configuration section; a new check takes a new id.

- portal.E001  PORTAL_TOKEN_KEYS unset outside development.
- portal.E002  a PORTAL_TOKEN_KEYS entry is not a Fernet key.
- portal.E003  GLOBUS_CLIENT_ID set without GLOBUS_CLIENT_SECRET.
- portal.E004  SOCIALACCOUNT_STORE_TOKENS on (allauth would keep tokens unencrypted).
- portal.W001  GLOBUS_CLIENT_SECRET set without GLOBUS_CLIENT_ID.
- portal.W002  Globus login on with no allow-list: every Globus identity may enter.
"""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


def _development():
    return bool(settings.DEBUG or getattr(settings, "PORTAL_DEVELOPMENT", False))


@register(Tags.security)
def check_token_keys(app_configs, **kwargs):
    problems = []
    keys = list(settings.PORTAL_TOKEN_KEYS)
    if not keys and not _development():
        problems.append(
            Error(
                "PORTAL_TOKEN_KEYS is not set: Globus tokens would be encrypted with a key derived "
                "from SECRET_KEY.",
                hint="Set PORTAL_TOKEN_KEYS to one or more comma-separated Fernet keys; make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`",
                id="portal.E001",
            )
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            problems.append(
                Error(
                    f"Entry {position} of PORTAL_TOKEN_KEYS is not a Fernet key.",
                    hint="A Fernet key is 32 url-safe base64-encoded bytes (44 characters).",
                    id="portal.E002",
                )
            )
    return problems


@register(Tags.security)
def check_globus_client(app_configs, **kwargs):
    problems = []
    client_id, secret = settings.GLOBUS_CLIENT_ID, settings.GLOBUS_CLIENT_SECRET
    if client_id and not secret:
        problems.append(
            Error(
                "GLOBUS_CLIENT_ID is set but GLOBUS_CLIENT_SECRET is not.",
                hint="Set GLOBUS_CLIENT_SECRET to the secret of the portal's confidential Globus client.",
                id="portal.E003",
            )
        )
    if secret and not client_id:
        problems.append(
            Warning(
                "GLOBUS_CLIENT_SECRET is set but GLOBUS_CLIENT_ID is not; Globus login stays off.",
                id="portal.W001",
            )
        )
    if getattr(settings, "SOCIALACCOUNT_STORE_TOKENS", False):
        problems.append(
            Error(
                "SOCIALACCOUNT_STORE_TOKENS is on: allauth would store Globus tokens unencrypted.",
                hint="Leave it off; the portal keeps tokens in its encrypted vault.",
                id="portal.E004",
            )
        )
    allow_list = settings.PORTAL_ALLOWED_DOMAINS or settings.PORTAL_ALLOWED_GLOBUS_GROUP
    if client_id and secret and not allow_list and not _development():
        problems.append(
            Warning(
                "Globus login is on and neither PORTAL_ALLOWED_DOMAINS nor PORTAL_ALLOWED_GLOBUS_GROUP "
                "is set: every Globus identity may log in (as a viewer).",
                id="portal.W002",
            )
        )
    return problems
