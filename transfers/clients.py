"""The one module that builds Globus clients.

- ``transfer_client_for(user)``: a TransferClient acting for a lab member,
  from the tokens in the vault; refreshed tokens are saved back.
- ``service_transfer_client()``: the portal's own confidential client, for
  management commands and scheduled discovery.
- ``transfer_client_for_job(job)``: whichever of the two a job runs as.
- ``auth_client()``: the portal's ConfidentialAppAuthClient (login, revoke).
- ``globus_errors()`` / ``call_globus(fn, ...)``: turn globus-sdk failures
  into ``transfers.errors`` so jobs and pages can act on them.

Base URLs follow ``GLOBUS_SDK_SERVICE_URL_AUTH`` / ``_TRANSFER`` (read by
globus-sdk when a client is built), so everything runs against loopback fakes.
"""

import contextlib
import logging
import time

import globus_sdk
import globus_sdk.transport
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from archive_portal import vault
from transfers.errors import (
    ConsentRequired,
    LoginRequired,
    PermanentError,
    TransferError,
    TransientError,
)

logger = logging.getLogger(__name__)

TRANSFER_RESOURCE_SERVER = "transfer.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
AUTH_RESOURCE_SERVER = "auth.globus.org"

# Auth error codes meaning "this grant is dead": the user must log in again.
_DEAD_GRANT_CODES = {"invalid_grant", "invalid_token"}
# Auth error codes meaning the portal's own client is misconfigured.
_BAD_CLIENT_CODES = {"invalid_client", "unauthorized_client"}


def client_configured():
    return bool(settings.GLOBUS_CLIENT_ID and settings.GLOBUS_CLIENT_SECRET)


def auth_client(*, retry_config=None, transport=None):
    """The portal's confidential Globus Auth client."""
    if not client_configured():
        raise PermanentError(
            "The portal's Globus client is not configured: set GLOBUS_CLIENT_ID and GLOBUS_CLIENT_SECRET.",
            code="GlobusClientNotConfigured",
        )
    return globus_sdk.ConfidentialAppAuthClient(
        client_id=settings.GLOBUS_CLIENT_ID,
        client_secret=settings.GLOBUS_CLIENT_SECRET,
        retry_config=retry_config,
        transport=transport,
    )


def _auth_error_is(err, codes):
    return isinstance(err, globus_sdk.AuthAPIError) and (
        err.code in codes or (err.raw_json or {}).get("error") in codes
    )


def _is_dead_grant(err):
    return _auth_error_is(err, _DEAD_GRANT_CODES)


def translate(err):
    """The ``transfers.errors`` exception for a globus-sdk exception."""
    if isinstance(err, TransferError):
        return err
    if isinstance(err, globus_sdk.GlobusAPIError):
        code = err.code or "Error"
        message = err.message or err.http_reason or "Globus refused the request"
        if err.info.consent_required:
            return ConsentRequired(
                "Globus needs your consent before the portal can use this collection.",
                scopes=err.info.consent_required.required_scopes,
            )
        if _auth_error_is(err, _BAD_CLIENT_CODES):
            return PermanentError(
                "Globus Auth refused the portal's own client: "
                "check GLOBUS_CLIENT_ID and GLOBUS_CLIENT_SECRET.",
                code="invalid_client",
            )
        if _is_dead_grant(err) or err.http_status == 401:
            return LoginRequired(
                "Your Globus login has expired or was revoked; log in with Globus again.",
                scopes=(TRANSFER_SCOPE,),
            )
        if err.info.authorization_parameters:
            return LoginRequired(
                err.info.authorization_parameters.session_message
                or "Globus needs you to log in again for this collection.",
                scopes=(TRANSFER_SCOPE,),
            )
        if err.http_status >= 500 or err.http_status == 429:
            return TransientError(f"Globus is unavailable ({err.http_status} {code}): {message}", code=code)
        return PermanentError(f"{code}: {message}", code=code)
    if isinstance(err, globus_sdk.NetworkError):
        return TransientError(f"Globus could not be reached: {err}", code=type(err).__name__)
    return None


@contextlib.contextmanager
def globus_errors():
    """Raise globus-sdk failures inside the block as ``transfers.errors``."""
    try:
        yield
    except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError) as err:
        raise translate(err) from err


def call_globus(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with globus-sdk failures as ``transfers.errors``."""
    with globus_errors():
        return fn(*args, **kwargs)


class VaultRefreshTokenAuthorizer(globus_sdk.RefreshTokenAuthorizer):
    """A refresh-token authorizer tied to one user's vault entry.

    Refreshed tokens are saved back (encrypted). A revoked or expired refresh
    token is dropped from the vault (it can never work again) and surfaces as
    ``LoginRequired`` wherever the refresh happens, even inside a
    TransferClient call. An authorizer whose refresh token was replaced by a
    newer login neither overwrites nor deletes the newer tokens.
    """

    def __init__(
        self, refresh_token, auth_client, *, user, resource_server=TRANSFER_RESOURCE_SERVER, **kwargs
    ):
        self._user = user
        self._resource_server = resource_server
        super().__init__(refresh_token, auth_client, on_refresh=self._save, **kwargs)

    def __repr__(self):
        return f"<VaultRefreshTokenAuthorizer user={self._user.pk} resource_server={self._resource_server}>"

    @sensitive_variables()
    def _get_token_response(self):
        used = self.refresh_token
        try:
            return super()._get_token_response()
        except globus_sdk.AuthAPIError as err:
            if _is_dead_grant(err):
                if vault.delete_token_if_refresh_token(self._user, self._resource_server, used):
                    logger.info("Globus refresh token of user %s is no longer valid; dropped", self._user.pk)
                raise LoginRequired(
                    "Your Globus login has expired or was revoked; log in with Globus again.",
                    scopes=(TRANSFER_SCOPE,),
                ) from err
            raise translate(err) from err
        except globus_sdk.NetworkError as err:
            raise translate(err) from err

    @sensitive_variables()
    def _save(self, token_response):
        # By now the authorizer may hold a rotated refresh token; the vault
        # still holds the one this refresh started from.
        for data in token_response.by_resource_server.values():
            if data["resource_server"] == self._resource_server:
                vault.save_refreshed_token(self._user, data, refreshed_with=self._refreshed_with)

    @sensitive_variables()
    def _get_new_access_token(self):
        self._refreshed_with = self.refresh_token
        super()._get_new_access_token()


@sensitive_variables()
def transfer_client_for(user):
    """A TransferClient acting for ``user``; ``LoginRequired`` without usable tokens."""
    if user is None or not getattr(user, "pk", None):
        raise LoginRequired("Log in with Globus to use the archive.", scopes=(TRANSFER_SCOPE,))
    try:
        token = vault.get_token(user, TRANSFER_RESOURCE_SERVER)
    except vault.VaultError:
        # A new login stores tokens under the current keys; the operator must
        # still hear that keys went missing.
        logger.error("Globus tokens of user %s cannot be decrypted with PORTAL_TOKEN_KEYS", user.pk)
        token = None
    if token is None or not token.refresh_token:
        raise LoginRequired(
            "The portal has no Globus transfer permission for you yet; log in with Globus.",
            scopes=(TRANSFER_SCOPE,),
        )
    kwargs = {}
    # A token about to expire is refreshed now, so a dead grant shows up here
    # rather than in the middle of the caller's work.
    if token.access_token and token.expires_at_seconds and token.expires_at_seconds > time.time() + 300:
        kwargs = {"access_token": token.access_token, "expires_at": token.expires_at_seconds}
    with globus_errors():
        authorizer = VaultRefreshTokenAuthorizer(token.refresh_token, auth_client(), user=user, **kwargs)
    return globus_sdk.TransferClient(authorizer=authorizer)


def service_transfer_client():
    """A TransferClient acting as the portal's own confidential client."""
    with globus_errors():
        authorizer = globus_sdk.ClientCredentialsAuthorizer(auth_client(), TRANSFER_SCOPE)
    return globus_sdk.TransferClient(authorizer=authorizer)


def transfer_client_for_job(job):
    """The client a job runs as: its requester's, or the portal's for system jobs."""
    if job.requested_by_id is None:
        return service_transfer_client()
    return transfer_client_for(job.requested_by)


@sensitive_variables()
def revoke_tokens(token_data):
    """Revoke tokens at Globus Auth (refresh tokens first); failures are
    logged, not raised: the portal forgets the tokens either way."""
    if not client_configured():
        return
    values = []
    for data in token_data:
        values.extend(v for v in (data.get("refresh_token"), data.get("access_token")) if v)
    if not values:
        return
    # Logout waits for this: one quick try each, no minute-long back-off.
    client = auth_client(
        retry_config=globus_sdk.transport.RetryConfig(max_retries=0),
        transport=globus_sdk.transport.RequestsTransport(http_timeout=10),
    )
    for value in values:
        try:
            client.oauth2_revoke_token(value)
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError) as err:
            logger.warning("Globus token revocation failed: %s", type(err).__name__)


def revoke_tokens_of(user):
    """Revoke and forget all of ``user``'s Globus tokens (logout)."""
    stored = vault.pop_tokens(user)
    revoke_tokens({"refresh_token": t.refresh_token, "access_token": t.access_token} for t in stored)
    return len(stored)
