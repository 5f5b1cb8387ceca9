"""Loopback fakes of the Globus services the portal talks to.

Point the real globus-sdk at them with ``GLOBUS_SDK_SERVICE_URL_AUTH`` (and
``GLOBUS_SDK_SERVICE_URL_GROUPS``, same URL) and ``GLOBUS_SDK_SERVICE_URL_TRANSFER``.
``python -m tests.fakes`` runs both in a separate process.
"""

from .globus_auth import (
    AUTH_RS,
    GROUPS_RS,
    GROUPS_SCOPE,
    TRANSFER_RS,
    TRANSFER_SCOPE,
    FakeGlobusAuth,
    FakeIdentity,
    TokenInfo,
    data_access_scope,
    parse_scope_string,
    transfer_scope_with_data_access,
)
from .globus_transfer import SYNC_LEVELS, FakeGlobusTransfer

__all__ = [
    "AUTH_RS",
    "GROUPS_RS",
    "GROUPS_SCOPE",
    "SYNC_LEVELS",
    "TRANSFER_RS",
    "TRANSFER_SCOPE",
    "FakeGlobusAuth",
    "FakeGlobusTransfer",
    "FakeIdentity",
    "TokenInfo",
    "data_access_scope",
    "parse_scope_string",
    "transfer_scope_with_data_access",
]
