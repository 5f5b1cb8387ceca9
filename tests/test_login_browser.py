"""Logging in, being refused, giving consent and logging out, in Chromium.

The portal runs in pytest-django's live server; Globus Auth is the loopback
fake in this process, which the browser visits for real.
"""

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model

from archive_portal import vault
from archive_portal.models import GlobusToken
from tests.factories import UserFactory
from tests.fakes import TRANSFER_RS, FakeGlobusAuth, FakeIdentity, transfer_scope_with_data_access
from tests.test_login import ARCHIVE, CLIENT_ID, CLIENT_SECRET, use_globus_client

pytest_plugins = ["tests.browser"]
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_auth():
    fake = FakeGlobusAuth(
        clients={CLIENT_ID: CLIENT_SECRET},
        identities=[FakeIdentity("ada@janelia.org", name="Ada Lovelace"), "eve@example.com"],
    )
    with fake:
        yield fake


@pytest.fixture
def globus(settings, monkeypatch, fake_auth):
    use_globus_client(settings)
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", fake_auth.url)
    return fake_auth


def log_in_with_globus(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("button", name="Log in with Globus").click()
    page.wait_for_url(f"{live_server.url}/")


def test_password_login_without_globus(page, live_server, screenshot, settings):
    settings.GLOBUS_CLIENT_ID = settings.GLOBUS_CLIENT_SECRET = ""
    UserFactory(username="demo", role="archivist")

    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/accounts/login/?next=/")
    assert page.get_by_role("button", name="Log in with Globus").count() == 0
    screenshot("login-password")

    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    screenshot("login-password-wrong")

    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    assert "demo · archivist" in page.locator("header").inner_text()


def test_globus_login_keeps_the_tokens_and_logout_revokes_them(page, live_server, screenshot, globus):
    page.goto(f"{live_server.url}/accounts/login/")
    screenshot("login-globus")

    log_in_with_globus(page, live_server)

    assert "ada@janelia.org · viewer" in page.locator("header").inner_text()
    screenshot("logged-in-with-globus")
    user = get_user_model().objects.get(username="ada@janelia.org")
    token = vault.get_token(user, TRANSFER_RS)
    assert globus.validate_access_token(token.access_token, TRANSFER_RS) is not None
    assert globus.authorize_requests[-1]["access_type"] == "offline"

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/")
    assert not GlobusToken.objects.filter(user=user).exists()
    assert globus.token_info(token.refresh_token).revoked


def test_an_identity_outside_the_lab_sees_why_it_is_refused(page, live_server, screenshot, globus):
    globus.login_as("eve@example.com")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("button", name="Log in with Globus").click()

    page.get_by_role("heading", name="This portal is not open to you").wait_for()
    assert "eve@example.com" in page.content()
    screenshot("not-allowed")
    assert not get_user_model().objects.filter(username="eve@example.com").exists()

    globus.login_as("ada@janelia.org")
    page.get_by_role("button", name="Log in with a different Globus identity").click()
    page.wait_for_url(f"{live_server.url}/")
    assert globus.authorize_requests[-1]["prompt"] == "login"


def test_consent_for_a_collection_is_one_click_and_comes_back(page, live_server, screenshot, globus):
    log_in_with_globus(page, live_server)
    scope = transfer_scope_with_data_access(ARCHIVE)
    query = urlencode({"reason": "consent", "scope": scope, "next": "/transfers/"})

    page.goto(f"{live_server.url}/accounts/globus/login-again/?{query}")
    assert ARCHIVE in page.locator("main").inner_text()
    screenshot("consent-required")
    page.get_by_role("button", name="Give consent at Globus").click()

    page.wait_for_url(f"{live_server.url}/transfers/")
    assert scope in globus.authorize_requests[-1]["scopes"]
    assert ARCHIVE in globus.consents("ada@janelia.org", CLIENT_ID)
    user = get_user_model().objects.get(username="ada@janelia.org")
    token = vault.get_token(user, TRANSFER_RS)
    assert ARCHIVE in globus.token_info(token.access_token).data_access


def test_login_again_after_a_revoked_grant(page, live_server, screenshot, globus):
    log_in_with_globus(page, live_server)
    globus.revoke_all("ada@janelia.org")
    page.goto(f"{live_server.url}/accounts/globus/login-again/?reason=login&next=/")
    screenshot("login-again")
    page.get_by_role("button", name="Log in with Globus").click()
    page.wait_for_url(f"{live_server.url}/")
    user = get_user_model().objects.get(username="ada@janelia.org")
    token = vault.get_token(user, TRANSFER_RS)
    assert globus.validate_access_token(token.access_token, TRANSFER_RS) is not None
