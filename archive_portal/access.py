"""Who may enter the portal, and what each role may do.

A Globus identity may log in when its username's domain is in
``PORTAL_ALLOWED_DOMAINS`` (e.g. ``janelia.org`` admits ``ada@janelia.org``)
or when it is a member of the Globus group ``PORTAL_ALLOWED_GLOBUS_GROUP``
(a group id, checked with the Globus Groups API during login). With neither
set, every Globus identity may log in (the ``portal.W002`` check warns).

New users start as viewers; admins change roles in the admin site. The
role's abilities live on ``archive_portal.models.User``
(``can_archive``, ``can_retrieve``, ``can_administer``).
"""

import logging
from dataclasses import dataclass

import globus_sdk
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

GROUPS_RESOURCE_SERVER = "groups.api.globus.org"
GROUPS_SCOPE = "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def allowed_domains():
    domains = (domain.strip().lower().lstrip("@") for domain in settings.PORTAL_ALLOWED_DOMAINS)
    return [domain for domain in domains if domain]


def allowed_group():
    return settings.PORTAL_ALLOWED_GLOBUS_GROUP.strip()


def restricted():
    """Whether an allow-list is configured at all."""
    return bool(allowed_domains() or allowed_group())


def needs_groups_scope():
    return bool(allowed_group())


def domain_of(identity_username):
    return identity_username.rpartition("@")[2].lower() if "@" in identity_username else ""


@sensitive_variables()
def check_identity(identity_username, tokens_by_resource_server):
    """Decide whether a Globus identity may enter.

    ``tokens_by_resource_server`` is the login's token response; its
    ``groups.api.globus.org`` token (present when a group is configured)
    lets the portal read the identity's group memberships.
    """
    domains = allowed_domains()
    group_id = allowed_group()
    if not domains and not group_id:
        return Decision(True)
    if domains and domain_of(identity_username) in domains:
        return Decision(True)
    if group_id:
        groups_token = (tokens_by_resource_server.get(GROUPS_RESOURCE_SERVER) or {}).get("access_token")
        if not groups_token:
            return Decision(False, "Globus did not let the portal check your group memberships.")
        try:
            if _is_group_member(groups_token, group_id):
                return Decision(True)
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError) as err:
            logger.warning(
                "Globus Groups could not be read for %s: %s", identity_username, type(err).__name__
            )
            return Decision(
                False,
                "The portal could not check your Globus group membership just now; please try again later.",
            )
    return Decision(False, "")


@sensitive_variables()
def _is_group_member(groups_token, group_id):
    client = globus_sdk.GroupsClient(authorizer=globus_sdk.AccessTokenAuthorizer(groups_token))
    for group in client.get_my_groups(statuses="active"):
        if group.get("id") != group_id:
            continue
        memberships = group.get("my_memberships") or []
        if not memberships or any(m.get("status") == "active" for m in memberships):
            return True
    return False


def describe_allow_list():
    """Words for the refusal page: who the portal is open to."""
    parts = []
    domains = allowed_domains()
    if domains:
        parts.append("Globus identities from " + ", ".join(domains))
    if allowed_group():
        parts.append("members of the lab's Globus group")
    return " and ".join(parts)
