"""transfers.clients: Globus clients from the vault, refresh and saving,
the portal's own client, and Globus failures as the portal's typed errors.

Runs the real globus-sdk against the loopback Globus Auth and Transfer fakes.
"""

import datetime

import globus_sdk
import pytest
import requests
from django.contrib.auth import get_user_model

from archive_portal import vault
from archive_portal.models import GlobusToken
from tests.fakes import TRANSFER_RS, TRANSFER_SCOPE, FakeGlobusAuth, FakeGlobusTransfer
from tests.fakes.globus_auth import transfer_scope_with_data_access
from tests.test_login import ARCHIVE, CLIENT_ID, CLIENT_SECRET, globus_login, use_globus_client
from transfers import clients
from transfers.errors import ConsentRequired, LoginRequired, PermanentError, TransientError
from transfers.models import TransferJob


@pytest.fixture
def fake_auth():
    with FakeGlobusAuth(clients={CLIENT_ID: CLIENT_SECRET}, identities=["ada@janelia.org"]) as fake:
        yield fake


@pytest.fixture
def fake_transfer(fake_auth, tmp_path):
    with FakeGlobusTransfer(auth=fake_auth, collections={ARCHIVE: tmp_path / "archive"}) as fake:
        (tmp_path / "archive" / "dl59").mkdir(parents=True)
        yield fake


@pytest.fixture
def globus(settings, monkeypatch, fake_auth, fake_transfer, db):
    use_globus_client(settings)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", fake_auth.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_GROUPS", fake_auth.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", fake_transfer.url)
    return fake_auth


@pytest.fixture
def ada(client, globus):
    """A user who logged in with Globus (tokens in the vault)."""
    globus_login(client, globus)
    return get_user_model().objects.get(username="ada@janelia.org")


def ls_names(transfer_client):
    return [entry["name"] for entry in transfer_client.operation_ls(ARCHIVE, path="/")]


def stored(user):
    return vault.get_token(user, TRANSFER_RS)


# ------------------------------------------------------------- user clients
def test_a_user_without_tokens_must_log_in(globus, viewer):
    with pytest.raises(LoginRequired) as caught:
        clients.transfer_client_for(viewer)
    assert caught.value.scopes == (TRANSFER_SCOPE,)


def test_a_logged_in_user_gets_a_working_transfer_client(ada):
    assert ls_names(clients.transfer_client_for(ada)) == ["dl59"]


def test_an_expired_access_token_is_refreshed_and_saved_encrypted(ada, globus):
    before = stored(ada)
    GlobusToken.objects.filter(user=ada).update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))

    transfer_client = clients.transfer_client_for(ada)

    after = stored(ada)
    assert after.access_token != before.access_token
    assert after.refresh_token == before.refresh_token
    assert after.expires_at > datetime.datetime.now(tz=datetime.UTC)
    assert globus.validate_access_token(after.access_token, TRANSFER_RS) is not None
    assert ls_names(transfer_client) == ["dl59"]


def test_a_token_the_service_rejects_is_refreshed_during_the_call(ada, globus):
    before = stored(ada)
    transfer_client = clients.transfer_client_for(ada)
    globus.expire_access_tokens("ada@janelia.org")

    assert ls_names(transfer_client) == ["dl59"]
    assert stored(ada).access_token != before.access_token


def test_rotated_refresh_tokens_are_saved(ada, globus):
    globus.rotate_refresh_tokens = True
    before = stored(ada)
    GlobusToken.objects.filter(user=ada).update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    clients.transfer_client_for(ada)
    after = stored(ada)
    assert after.refresh_token != before.refresh_token
    assert globus.token_info(before.refresh_token).revoked
    # And the next refresh uses the new one.
    GlobusToken.objects.filter(user=ada).update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    assert ls_names(clients.transfer_client_for(ada)) == ["dl59"]


def test_a_revoked_refresh_token_means_log_in_again_and_is_dropped(ada, globus):
    transfer_client = clients.transfer_client_for(ada)
    globus.revoke_all("ada@janelia.org")

    with pytest.raises(LoginRequired) as caught:
        transfer_client.operation_ls(ARCHIVE, path="/")

    assert caught.value.scopes == (TRANSFER_SCOPE,)
    assert stored(ada) is None
    with pytest.raises(LoginRequired):
        clients.transfer_client_for(ada)


def test_a_revoked_refresh_token_found_when_building_the_client(ada, globus):
    globus.revoke_all("ada@janelia.org")
    GlobusToken.objects.filter(user=ada).update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(LoginRequired):
        clients.transfer_client_for(ada)
    assert stored(ada) is None


def test_an_old_client_does_not_drop_tokens_of_a_newer_login(ada, globus, client):
    old_client = clients.transfer_client_for(ada)
    client.post("/accounts/logout/")  # revokes the old grant
    globus_login(client, globus)  # fresh tokens
    fresh = stored(ada)
    globus.expire_access_tokens("ada@janelia.org")

    with pytest.raises(LoginRequired):
        old_client.operation_ls(ARCHIVE, path="/")

    assert stored(ada) == fresh
    assert ls_names(clients.transfer_client_for(ada)) == ["dl59"]


def test_an_old_refresh_does_not_overwrite_a_newer_login(ada):
    token = stored(ada)
    newer = {"resource_server": TRANSFER_RS, "access_token": "newer-access", "refresh_token": "newer-refresh"}
    vault.save_token(ada, {**newer, "expires_in": 100})
    assert not vault.save_refreshed_token(
        ada,
        {"resource_server": TRANSFER_RS, "access_token": "from-old-grant", "expires_in": 100},
        refreshed_with=token.refresh_token,
    )
    assert stored(ada).access_token == "newer-access"


def test_consent_required_names_the_missing_scope(ada, fake_transfer):
    fake_transfer.require_consent(ARCHIVE)
    with pytest.raises(ConsentRequired) as caught:
        clients.call_globus(clients.transfer_client_for(ada).operation_ls, ARCHIVE, path="/")
    assert caught.value.scopes == (transfer_scope_with_data_access(ARCHIVE),)
    assert isinstance(caught.value, LoginRequired)


def test_after_consent_the_new_tokens_reach_the_collection(ada, fake_transfer, globus, client):
    from django.urls import reverse
    from django.utils.http import urlencode

    fake_transfer.require_consent(ARCHIVE)
    with pytest.raises(ConsentRequired) as caught, clients.globus_errors():
        clients.transfer_client_for(ada).operation_ls(ARCHIVE, path="/")
    url = (
        reverse("globus_login")
        + "?"
        + urlencode({"process": "login", "scope": ",".join(caught.value.scopes)})
    )
    globus_login(client, globus, url=url)
    assert ls_names(clients.transfer_client_for(ada)) == ["dl59"]


def test_other_refusals_are_permanent_with_the_globus_code(ada):
    with pytest.raises(PermanentError) as caught:
        clients.call_globus(
            clients.transfer_client_for(ada).operation_ls, "00000000-0000-4000-8000-000000000000", path="/"
        )
    assert caught.value.code == "ClientError.NotFound"
    assert "ClientError.NotFound" in str(caught.value)


def test_an_unreachable_globus_is_transient(ada, monkeypatch):
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", "http://127.0.0.1:9/")
    transfer_client = clients.transfer_client_for(ada)
    transfer_client.retry_config.max_retries = 0
    with pytest.raises(TransientError):
        clients.call_globus(transfer_client.operation_ls, ARCHIVE, path="/")


# ---------------------------------------------------------- error mapping
def api_error(status, body, error_class=globus_sdk.TransferAPIError, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = __import__("json").dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.headers.update(headers or {})
    response.request = requests.Request("GET", "https://transfer.api.globus.org/v0.10/x").prepare()
    response.url = response.request.url
    return error_class(response)


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (
            api_error(503, {"code": "ServiceUnavailable", "message": "down"}),
            TransientError,
            "ServiceUnavailable",
        ),
        (api_error(500, {"code": "InternalError", "message": "oops"}), TransientError, "InternalError"),
        (api_error(429, {"code": "RequestLimitExceeded", "message": "slow"}), TransientError, None),
        (
            api_error(404, {"code": "ClientError.NotFound", "message": "no"}),
            PermanentError,
            "ClientError.NotFound",
        ),
        (api_error(409, {"code": "Conflict", "message": "exists"}), PermanentError, "Conflict"),
        (api_error(401, {"code": "AuthenticationFailed", "message": "x"}), LoginRequired, None),
        (
            api_error(400, {"error": "invalid_grant"}, globus_sdk.AuthAPIError),
            LoginRequired,
            None,
        ),
        (
            api_error(
                403,
                {
                    "code": "ConsentRequired",
                    "message": "Missing required data_access consent",
                    "required_scopes": [transfer_scope_with_data_access(ARCHIVE)],
                },
            ),
            ConsentRequired,
            None,
        ),
        (
            globus_sdk.GlobusConnectionError("ConnectionError on request", Exception("refused")),
            TransientError,
            None,
        ),
        (globus_sdk.GlobusTimeoutError("TimeoutError on request", Exception("slow")), TransientError, None),
    ],
)
def test_globus_failures_become_the_portals_typed_errors(error, expected, code):
    with pytest.raises(expected) as caught, clients.globus_errors():
        raise error
    assert type(caught.value) is expected
    if code:
        assert caught.value.code == code
    assert caught.value.__cause__ is error


def test_errors_that_are_not_globus_pass_through():
    with pytest.raises(KeyError):
        clients.call_globus(lambda: {}["x"])


# ---------------------------------------------------------- service client
def test_the_service_client_needs_the_portal_client_configured(settings):
    settings.GLOBUS_CLIENT_ID = ""
    settings.GLOBUS_CLIENT_SECRET = ""
    with pytest.raises(PermanentError, match="not configured"):
        clients.service_transfer_client()
    with pytest.raises(PermanentError, match="not configured"):
        clients.auth_client()


def test_the_service_client_acts_as_the_portal(globus):
    transfer_client = clients.service_transfer_client()
    assert isinstance(transfer_client.authorizer, globus_sdk.ClientCredentialsAuthorizer)
    assert ls_names(transfer_client) == ["dl59"]
    (grant,) = globus.requests_to("/v2/oauth2/token")
    assert grant["body"]["grant_type"] == "client_credentials"
    assert grant["body"]["scope"] == TRANSFER_SCOPE


def test_a_wrong_client_secret_is_a_permanent_error(globus, settings):
    settings.GLOBUS_CLIENT_SECRET = "wrong"
    with pytest.raises(PermanentError, match="GLOBUS_CLIENT_SECRET") as caught:
        clients.service_transfer_client()
    assert caught.value.code == "invalid_client"


def test_a_wrong_client_secret_does_not_drop_user_tokens(ada, settings):
    GlobusToken.objects.filter(user=ada).update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    settings.GLOBUS_CLIENT_SECRET = "wrong"
    with pytest.raises(PermanentError):
        clients.transfer_client_for(ada)
    assert stored(ada) is not None


def test_jobs_run_as_their_requester_or_as_the_portal(ada, globus):
    user_client = clients.transfer_client_for_job(TransferJob(requested_by=ada))
    assert isinstance(user_client.authorizer, clients.VaultRefreshTokenAuthorizer)
    service_client = clients.transfer_client_for_job(TransferJob(requested_by=None))
    assert isinstance(service_client.authorizer, globus_sdk.ClientCredentialsAuthorizer)


def test_the_authorizer_repr_shows_no_token(ada):
    authorizer = clients.transfer_client_for(ada).authorizer
    token = stored(ada)
    assert token.refresh_token not in repr(authorizer)
    assert token.access_token not in repr(authorizer)


def test_tokens_under_a_lost_key_mean_log_in_again(ada, settings, caplog):
    from cryptography.fernet import Fernet

    settings.PORTAL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(LoginRequired):
        clients.transfer_client_for(ada)
    assert "cannot be decrypted" in caplog.text
