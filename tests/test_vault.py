"""The token vault: encryption at rest, key rotation, the start-up checks, and
tokens kept out of repr(), logs and error reports."""

import base64
import datetime
import io
import logging
import sys

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from archive_portal import checks, vault
from archive_portal.models import GlobusToken
from tests.fakes import TRANSFER_RS, FakeGlobusAuth
from tests.test_login import CLIENT_ID, CLIENT_SECRET, globus_login, use_globus_client
from transfers import clients
from transfers.errors import PermanentError

ACCESS = "AgSecretAccessToken0123456789abcdef"
REFRESH = "ArSecretRefreshToken0123456789abcdef"
LONG_AGO = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def save_sample(user, access=ACCESS, refresh=REFRESH):
    return vault.save_token(
        user,
        {
            "resource_server": TRANSFER_RS,
            "access_token": access,
            "refresh_token": refresh,
            "expires_at_seconds": 2_000_000_000,
            "scope": "urn:globus:auth:scope:transfer.api.globus.org:all",
        },
    )


# --------------------------------------------------------- encryption at rest
def test_tokens_are_ciphertext_in_the_database(viewer):
    save_sample(viewer)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {GlobusToken._meta.db_table}")
        rows = cursor.fetchall()
    raw = repr(rows)
    assert len(rows) == 1
    assert ACCESS not in raw and REFRESH not in raw
    assert "gAAAAA" in raw  # Fernet tokens

    token = vault.get_token(viewer, TRANSFER_RS)
    assert (token.access_token, token.refresh_token) == (ACCESS, REFRESH)
    assert token.expires_at == datetime.datetime.fromtimestamp(2_000_000_000, tz=datetime.UTC)


def test_a_refresh_without_a_refresh_token_keeps_the_stored_one(viewer):
    save_sample(viewer)
    vault.save_token(viewer, {"resource_server": TRANSFER_RS, "access_token": "AgNewer", "expires_in": 60})
    token = vault.get_token(viewer, TRANSFER_RS)
    assert (token.access_token, token.refresh_token) == ("AgNewer", REFRESH)


def test_repr_and_str_show_no_token(viewer):
    row = save_sample(viewer)
    token = vault.get_token(viewer, TRANSFER_RS)
    for text in (repr(row), str(row), repr(token), str(token)):
        assert ACCESS not in text and REFRESH not in text
        assert "gAAAAA" not in text


def test_the_admin_has_no_page_for_tokens(admin_client, viewer):
    from allauth.socialaccount.models import SocialApp, SocialToken
    from django.contrib import admin

    save_sample(viewer)
    for model in (GlobusToken, SocialToken, SocialApp):
        assert model not in admin.site._registry
    for url in ("/admin/socialaccount/socialtoken/", "/admin/socialaccount/socialapp/"):
        assert admin_client.get(url).status_code == 404
    for url in (f"/admin/archive_portal/user/{viewer.pk}/change/", "/admin/archive_portal/user/", "/admin/"):
        page = admin_client.get(url).content.decode()
        assert ACCESS not in page and REFRESH not in page and "gAAAAA" not in page


def test_pop_tokens_removes_them(viewer):
    save_sample(viewer)
    (popped,) = vault.pop_tokens(viewer)
    assert popped.refresh_token == REFRESH
    assert not GlobusToken.objects.exists()


# ------------------------------------------------------------------- keys
def test_without_keys_a_key_derived_from_the_secret_key_is_used(viewer, settings):
    settings.PORTAL_TOKEN_KEYS = []
    save_sample(viewer)
    row = GlobusToken.objects.get()
    derived = Fernet(vault.development_key(settings.SECRET_KEY))
    assert derived.decrypt(row.access_token_encrypted.encode()).decode() == ACCESS
    assert vault.development_key("a") != vault.development_key("b")
    assert vault.development_key("a") == vault.development_key("a")


def test_configured_keys_encrypt_with_the_first(viewer, settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_TOKEN_KEYS = [first, second]
    save_sample(viewer)
    row = GlobusToken.objects.get()
    assert Fernet(first).decrypt(row.refresh_token_encrypted.encode()).decode() == REFRESH


def test_rotation_reencrypts_with_the_new_key(viewer, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_TOKEN_KEYS = [old]
    save_sample(viewer)

    settings.PORTAL_TOKEN_KEYS = [new, old]
    assert vault.get_token(viewer, TRANSFER_RS).access_token == ACCESS  # old ciphertext still reads
    out = io.StringIO()
    call_command("rotate_token_keys", stdout=out)
    assert "1 vault entries" in out.getvalue()

    settings.PORTAL_TOKEN_KEYS = [new]
    token = vault.get_token(viewer, TRANSFER_RS)
    assert (token.access_token, token.refresh_token) == (ACCESS, REFRESH)
    settings.PORTAL_TOKEN_KEYS = [old]
    with pytest.raises(vault.VaultError, match="rotate_token_keys"):
        vault.get_token(viewer, TRANSFER_RS)


def test_rotation_without_the_old_key_stops_and_says_so(viewer, settings):
    settings.PORTAL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    save_sample(viewer)
    settings.PORTAL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="put the old key back"):
        call_command("rotate_token_keys")


def test_a_malformed_key_is_refused(viewer, settings):
    settings.PORTAL_TOKEN_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        save_sample(viewer)


# ---------------------------------------------------------------- checks
def ids(problems):
    return sorted(problem.id for problem in problems)


def test_missing_keys_in_production_are_an_error(settings):
    settings.DEBUG = False
    settings.PORTAL_DEVELOPMENT = False
    settings.PORTAL_TOKEN_KEYS = []
    assert ids(checks.check_token_keys(None)) == ["portal.E001"]


def test_missing_keys_on_a_workstation_are_fine(settings):
    settings.PORTAL_TOKEN_KEYS = []
    settings.PORTAL_DEVELOPMENT = True
    assert checks.check_token_keys(None) == []
    settings.PORTAL_DEVELOPMENT = False
    settings.DEBUG = True
    assert checks.check_token_keys(None) == []


def test_malformed_keys_are_an_error(settings):
    settings.PORTAL_TOKEN_KEYS = [Fernet.generate_key().decode(), "short"]
    problems = checks.check_token_keys(None)
    assert ids(problems) == ["portal.E002"]
    assert "Entry 2" in problems[0].msg


def test_a_client_id_without_a_secret_is_an_error(settings):
    settings.GLOBUS_CLIENT_ID = CLIENT_ID
    settings.GLOBUS_CLIENT_SECRET = ""
    assert "portal.E003" in ids(checks.check_globus_client(None))


def test_a_secret_without_a_client_id_is_a_warning(settings):
    settings.GLOBUS_CLIENT_ID = ""
    settings.GLOBUS_CLIENT_SECRET = "secret"
    assert ids(checks.check_globus_client(None)) == ["portal.W001"]


def test_allauth_storing_tokens_is_an_error(settings):
    settings.SOCIALACCOUNT_STORE_TOKENS = True
    assert "portal.E004" in ids(checks.check_globus_client(None))


def test_globus_login_open_to_everyone_in_production_is_a_warning(settings):
    settings.DEBUG = False
    settings.PORTAL_DEVELOPMENT = False
    settings.GLOBUS_CLIENT_ID, settings.GLOBUS_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.PORTAL_ALLOWED_DOMAINS, settings.PORTAL_ALLOWED_GLOBUS_GROUP = [], ""
    assert ids(checks.check_globus_client(None)) == ["portal.W002"]
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    assert checks.check_globus_client(None) == []


def test_the_checks_run_with_manage_py_check(settings):
    settings.GLOBUS_CLIENT_ID = CLIENT_ID
    settings.GLOBUS_CLIENT_SECRET = ""
    with pytest.raises(Exception, match="portal.E003"):
        call_command("check")


# ------------------------------------------------------ logs and error pages
@pytest.fixture
def globus(settings, monkeypatch, db):
    fake = FakeGlobusAuth(clients={CLIENT_ID: CLIENT_SECRET}, identities=["ada@janelia.org"])
    with fake:
        use_globus_client(settings)
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", fake.url)
        yield fake


def all_token_values(fake):
    return [t["token"] for t in fake.issued_tokens]


def all_secrets(fake):
    """Every credential a log line must not carry: the tokens Globus issued, the
    client secret, and the client's Basic authorization header."""
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return [*all_token_values(fake), CLIENT_SECRET, basic]


def log_everything(caplog):
    # Even with every library at DEBUG, which production never runs.
    for name in ("", "globus_sdk", "urllib3", "requests", "allauth", "django", "archive_portal", "transfers"):
        caplog.set_level(logging.DEBUG, logger=name)


def test_login_refresh_and_logout_log_no_token(client, globus, caplog):
    log_everything(caplog)
    globus_login(client, globus)
    user = get_user_model().objects.get()
    GlobusToken.objects.filter(user=user).update(expires_at=LONG_AGO)
    clients.transfer_client_for(user)
    # The portal's own identity (client credentials) gets its token too.
    clients.service_transfer_client().authorizer.get_authorization_header()
    client.post("/accounts/logout/")

    assert len(all_token_values(globus)) >= 6
    assert caplog.records
    for value in all_secrets(globus):
        assert value not in caplog.text


def test_failed_refreshes_log_no_token_and_say_none_in_their_errors(client, globus, caplog):
    log_everything(caplog)
    globus_login(client, globus)
    user = get_user_model().objects.get()
    errors = []
    for status, code in ((400, "INVALID_REQUEST"), (401, "UNAUTHORIZED"), (400, "invalid_grant")):
        GlobusToken.objects.filter(user=user).update(expires_at=LONG_AGO)
        globus.fail_next(1, status=status, path_contains="/token", code=code)
        try:
            clients.transfer_client_for(user)
        except Exception as err:  # noqa: BLE001 - each is logged and shown somewhere
            errors.append(err)
            logging.getLogger("transfers.jobs").error("Job 1 failed: %s", err)
        globus.clear_faults()
    assert len(errors) == 3
    text = caplog.text + "\n".join(repr(err) + str(err) for err in errors)
    for value in all_secrets(globus):
        assert value not in text


def test_an_error_report_shows_no_token(client, globus, settings):
    settings.DEBUG = False
    globus_login(client, globus)
    user = get_user_model().objects.get()
    token = vault.get_token(user, TRANSFER_RS)
    GlobusToken.objects.filter(user=user).update(expires_at=LONG_AGO)
    globus.fail_next(1, status=400, path_contains="/token", code="INVALID_REQUEST")

    request = RequestFactory().get("/transfers/")
    request.user = user
    try:
        clients.transfer_client_for(user)
    except PermanentError:
        report = ExceptionReporter(request, *sys.exc_info())
        html = report.get_traceback_html()
        text = report.get_traceback_text()
    else:
        pytest.fail("the refresh should have failed")

    assert "VaultRefreshTokenAuthorizer" in text  # the report does show the frames
    for value in (token.access_token, token.refresh_token, CLIENT_SECRET):
        assert value not in html
        assert value not in text


def test_error_reports_hide_database_and_redis_urls(settings):
    from archive_portal.middleware import TokenSafeExceptionReporterFilter

    url = "redis://:hunter2-redis-password@127.0.0.1:6379/0"
    settings.REDIS_URL = url
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": url}
    request = RequestFactory().get("/", DATABASE_URL="postgres://portal:hunter2-db-password@db/portal")
    report_filter = TokenSafeExceptionReporterFilter()
    shown = repr(report_filter.get_safe_settings()) + repr(report_filter.get_safe_request_meta(request))
    assert "hunter2" not in shown
    assert "Q_CLUSTER" in shown and "workers" in shown  # the rest stays readable
