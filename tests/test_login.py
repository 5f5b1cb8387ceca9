"""Globus login end to end through Django's test client and the loopback
Globus Auth fake: authorize redirect, callback, code exchange, userinfo, the
vault, the allow-list, logging in again for consent, and logout revocation.

The portal talks to the fake over real HTTP (GLOBUS_SDK_SERVICE_URL_AUTH);
the browser's part (following the redirect to Globus and back) is played by
``requests``.
"""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.urls import path, reverse

from archive_portal import signals, vault
from archive_portal.models import GlobusToken, Role
from archive_portal.urls import urlpatterns as portal_urlpatterns
from tests.factories import UserFactory
from tests.fakes import (
    AUTH_RS,
    GROUPS_SCOPE,
    TRANSFER_RS,
    TRANSFER_SCOPE,
    FakeGlobusAuth,
    FakeIdentity,
    transfer_scope_with_data_access,
)
from transfers.errors import ConsentRequired, LoginRequired

CLIENT_ID = "0c7a8f4e-3b1d-4a54-9f3e-7d2c1b6a5e10"
CLIENT_SECRET = "portal-client-secret"
ARCHIVE = "5b875fda-4185-11e8-bb52-0ac6873fc732"
LAB_GROUP = "6f1e0f5c-2b8d-4f4e-9d1a-3c2b1a0f9e8d"


# ----------------------------------------------------------------- helpers
def use_globus_client(settings, client_id=CLIENT_ID, secret=CLIENT_SECRET):
    """Configure the portal's Globus client the way the environment would."""
    settings.GLOBUS_CLIENT_ID = client_id
    settings.GLOBUS_CLIENT_SECRET = secret
    settings.SOCIALACCOUNT_PROVIDERS = {
        "globus": {
            **settings.SOCIALACCOUNT_PROVIDERS["globus"],
            "APPS": [{"client_id": client_id, "secret": secret}],
        }
    }


@pytest.fixture
def fake_auth():
    fake = FakeGlobusAuth(
        clients={CLIENT_ID: CLIENT_SECRET},
        identities=[
            FakeIdentity("ada@janelia.org", name="Ada Lovelace"),
            FakeIdentity("eve@example.com", name="Eve Outsider"),
            FakeIdentity(
                "grace@uni.example.edu", name="Grace Hopper", groups=[{"name": "lab", "id": LAB_GROUP}]
            ),
        ],
    )
    with fake:
        yield fake


@pytest.fixture
def globus(settings, monkeypatch, fake_auth, db):
    """The portal configured with a Globus client, talking to the fake."""
    use_globus_client(settings)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", fake_auth.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_GROUPS", fake_auth.url)
    return fake_auth


def start_globus_login(client, url=None):
    """POST the login button; return the Globus authorize URL it redirects to."""
    response = client.post(url or reverse("globus_login") + "?process=login")
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def globus_login(client, fake, identity="ada@janelia.org", url=None):
    """The whole browser round trip; returns the portal's answer to the callback."""
    fake.login_as(identity)
    authorize_url = start_globus_login(client, url)
    at_globus = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert at_globus.status_code == 302, at_globus.text
    back = urlsplit(at_globus.headers["Location"])
    assert back.netloc == "testserver"
    return client.get(f"{back.path}?{back.query}")


def issued(fake, resource_server, kind):
    return [t for t in fake.issued_tokens if t["resource_server"] == resource_server and t["kind"] == kind]


# -------------------------------------------------------------- login page
def test_without_a_globus_client_the_login_page_offers_only_a_password(client, db, settings):
    settings.GLOBUS_CLIENT_ID = ""
    settings.GLOBUS_CLIENT_SECRET = ""
    UserFactory(username="demo")
    page = client.get(reverse("account_login")).content.decode()
    assert "Log in with Globus" not in page
    assert 'id="local-login"' in page

    response = client.post(
        reverse("account_login"), {"login": "demo", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get(reverse("catalog:subjects")).status_code == 200


def test_a_wrong_password_is_said_in_words(client, db):
    UserFactory(username="demo")
    response = client.post(reverse("account_login"), {"login": "demo", "password": "nope"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()


def test_local_signup_is_closed(client, db):
    response = client.get(reverse("account_signup"))
    assert "No self-service accounts" in response.content.decode()


def test_with_a_globus_client_the_login_page_offers_globus(client, globus):
    page = client.get(reverse("account_login") + "?next=/transfers/").content.decode()
    assert "Log in with Globus" in page
    assert "next=/transfers/" in page


def test_the_authorize_redirect_asks_for_the_transfer_scope_with_offline_access(client, globus):
    authorize_url = start_globus_login(client)
    parts = urlsplit(authorize_url)
    assert authorize_url.startswith(globus.url + "v2/oauth2/authorize")
    query = parse_qs(parts.query)
    assert set(query["scope"][0].split(" ")) == {"openid", "profile", "email", TRANSFER_SCOPE}
    assert query["access_type"] == ["offline"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["http://testserver/accounts/globus/login/callback/"]


def test_the_auth_url_follows_the_environment_at_request_time(client, globus, monkeypatch):
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", "http://127.0.0.1:9/")
    assert start_globus_login(client).startswith("http://127.0.0.1:9/v2/oauth2/authorize")


# ---------------------------------------------------------------- the login
def test_a_globus_login_makes_a_viewer_named_by_the_identity_and_keeps_the_transfer_tokens(client, globus):
    received = []

    def on_tokens(sender, user, resource_servers, **kwargs):
        received.append((user.username, resource_servers))

    signals.globus_tokens_updated.connect(on_tokens)
    try:
        response = globus_login(client, globus)
    finally:
        signals.globus_tokens_updated.disconnect(on_tokens)

    assert response.status_code == 302
    assert response["Location"] == reverse("catalog:subjects")
    user = get_user_model().objects.get()
    assert user.username == "ada@janelia.org"
    assert user.email == "ada@janelia.org"
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    assert user.role == Role.VIEWER and user.is_active and not user.is_staff
    assert client.get(reverse("catalog:subjects")).context["user"] == user

    token = vault.get_token(user, TRANSFER_RS)
    assert token.refresh_token and token.access_token
    assert token.scopes == TRANSFER_SCOPE
    assert token.expires_at is not None
    info = globus.validate_access_token(token.access_token, TRANSFER_RS)
    assert info is not None and info.username == "ada@janelia.org"
    assert globus.token_info(token.refresh_token).kind == "refresh"
    assert vault.get_token(user, AUTH_RS) is not None
    assert received == [("ada@janelia.org", [AUTH_RS, TRANSFER_RS])]


def test_userinfo_is_read_with_a_bearer_header_not_a_query_string(client, globus):
    globus_login(client, globus)
    (userinfo,) = globus.requests_to("/v2/oauth2/userinfo")
    assert userinfo["auth"] == "Bearer"
    assert userinfo["query"] == {}


def test_allauth_keeps_no_tokens_of_its_own(client, globus):
    from allauth.socialaccount.models import SocialAccount, SocialToken

    globus_login(client, globus)
    account = SocialAccount.objects.get()
    assert account.provider == "globus"
    assert SocialToken.objects.count() == 0
    assert "token" not in str(account.extra_data).lower()


def test_logging_in_again_reuses_the_account_and_replaces_the_tokens(client, globus):
    globus_login(client, globus)
    user = get_user_model().objects.get()
    first = vault.get_token(user, TRANSFER_RS)
    client.logout()
    globus_login(client, globus)
    assert get_user_model().objects.count() == 1
    second = vault.get_token(user, TRANSFER_RS)
    assert second.access_token != first.access_token
    assert GlobusToken.objects.filter(user=user, resource_server=TRANSFER_RS).count() == 1


def test_an_admins_role_survives_the_next_login(client, globus):
    globus_login(client, globus)
    user = get_user_model().objects.get()
    user.role = Role.ARCHIVIST
    user.save()
    client.logout()
    globus_login(client, globus)
    user.refresh_from_db()
    assert user.role == Role.ARCHIVIST


def test_a_denied_consent_at_globus_logs_nobody_in(client, globus):
    globus.deny_next_login()
    response = globus_login(client, globus)
    assert response.status_code == 302
    assert "Globus login cancelled" in client.get(response["Location"]).content.decode()
    assert not get_user_model().objects.exists()
    assert not GlobusToken.objects.exists()


def test_a_replayed_callback_is_refused(client, globus):
    globus.login_as("ada@janelia.org")
    at_globus = requests.get(start_globus_login(client), allow_redirects=False, timeout=10)
    back = urlsplit(at_globus.headers["Location"])
    client.get(f"{back.path}?{back.query}")
    client.logout()
    response = client.get(f"{back.path}?{back.query}")
    assert "Globus login failed" in response.content.decode()


def test_a_login_started_with_a_next_page_lands_there(client, globus):
    response = globus_login(client, globus, url=reverse("globus_login") + "?process=login&next=/transfers/")
    assert response["Location"] == "/transfers/"


# --------------------------------------------------------------- allow-list
def test_an_identity_outside_the_allowed_domains_is_refused_with_a_clear_page(client, globus, settings):
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    response = globus_login(client, globus, identity="eve@example.com")
    assert response.status_code == 403
    page = response.content.decode()
    assert "This portal is not open to you" in page
    assert "eve@example.com" in page and "janelia.org" in page
    assert not get_user_model().objects.exists()
    assert not GlobusToken.objects.exists()
    assert "_auth_user_id" not in client.session
    # The tokens Globus issued for the refused login are given back.
    refresh_tokens = issued(globus, TRANSFER_RS, "refresh")
    assert refresh_tokens and all(t["revoked"] for t in refresh_tokens)


def test_an_identity_from_an_allowed_domain_enters(client, globus, settings):
    settings.PORTAL_ALLOWED_DOMAINS = ["JANELIA.org"]
    assert globus_login(client, globus).status_code == 302
    assert get_user_model().objects.filter(username="ada@janelia.org").exists()


def test_a_member_of_the_allowed_group_enters_from_any_domain(client, globus, settings):
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    response = globus_login(client, globus, identity="grace@uni.example.edu")
    assert response.status_code == 302
    assert GROUPS_SCOPE in globus.authorize_requests[-1]["scopes"]
    assert get_user_model().objects.filter(username="grace@uni.example.edu").exists()


def test_a_non_member_of_the_allowed_group_is_refused(client, globus, settings):
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    response = globus_login(client, globus, identity="eve@example.com")
    assert response.status_code == 403
    assert "members of the lab&#x27;s Globus group" in response.content.decode()
    assert not get_user_model().objects.exists()


def test_an_existing_user_no_longer_allowed_is_refused_too(client, globus, settings):
    globus_login(client, globus, identity="eve@example.com")
    client.logout()
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    response = globus_login(client, globus, identity="eve@example.com")
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_refusal_page_offers_a_login_with_another_identity(client, globus, settings):
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    page = globus_login(client, globus, identity="eve@example.com").content.decode()
    assert "auth_params=prompt%3Dlogin" in page
    url = reverse("globus_login") + "?process=login&auth_params=prompt%3Dlogin"
    response = globus_login(client, globus, identity="ada@janelia.org", url=url)
    assert response.status_code == 302
    assert globus.authorize_requests[-1]["prompt"] == "login"


# ------------------------------------------------- logging in again for consent
def raise_consent_required(request):
    raise ConsentRequired("consent", scopes=[transfer_scope_with_data_access(ARCHIVE)])


def raise_login_required(request):
    raise LoginRequired("expired", scopes=[TRANSFER_SCOPE])


def archive_page(request):
    return HttpResponse("archive page")


urlpatterns = [
    path("test/consent/", raise_consent_required),
    path("test/login/", raise_login_required),
    path("test/archive-page/", archive_page),
    *portal_urlpatterns,
]


@pytest.mark.urls(__name__)
def test_consent_required_in_a_view_shows_what_to_do_and_a_button(client, globus):
    globus_login(client, globus)
    response = client.get("/test/consent/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Globus needs your consent" in page
    assert ARCHIVE in page
    assert "Give consent at Globus" in page
    action = response.context["globus_login_action"]
    query = parse_qs(urlsplit(action).query)
    assert query["scope"] == [transfer_scope_with_data_access(ARCHIVE)]
    assert query["next"] == ["/test/consent/"]


@pytest.mark.urls(__name__)
def test_the_consent_button_asks_globus_for_exactly_the_missing_scope_and_resumes(client, globus):
    globus_login(client, globus)
    user = get_user_model().objects.get()
    before = vault.get_token(user, TRANSFER_RS)
    resumed = []
    signals.globus_tokens_updated.connect(
        lambda sender, user, **kw: resumed.append(user.pk), weak=False, dispatch_uid="test-resume"
    )
    try:
        action = client.get("/test/consent/").context["globus_login_action"]
        response = globus_login(client, globus, url=action)
    finally:
        signals.globus_tokens_updated.disconnect(dispatch_uid="test-resume")

    requested = globus.authorize_requests[-1]["scopes"]
    assert sorted(requested) == sorted(
        ["openid", "profile", "email", transfer_scope_with_data_access(ARCHIVE)]
    )
    assert response["Location"] == "/test/consent/"
    assert ARCHIVE in globus.consents("ada@janelia.org", CLIENT_ID)
    after = vault.get_token(user, TRANSFER_RS)
    assert after.access_token != before.access_token
    assert ARCHIVE in globus.token_info(after.access_token).data_access
    assert resumed == [user.pk]
    assert get_user_model().objects.count() == 1
    # Logging in again is not logging out: the earlier grant is not revoked.
    assert not globus.token_info(before.refresh_token).revoked


@pytest.mark.urls(__name__)
def test_login_required_after_a_post_sends_the_user_back_to_the_page_they_came_from(client, globus):
    globus_login(client, globus)
    response = client.post("/test/login/", HTTP_REFERER="http://testserver/test/archive-page/")
    assert response.status_code == 403
    assert "Log in with Globus again" in response.content.decode()
    assert response.context["next_url"] == "/test/archive-page/"


@pytest.mark.urls(__name__)
def test_htmx_requests_are_redirected_to_the_login_again_page(client, globus):
    globus_login(client, globus)
    response = client.get(
        "/test/consent/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/test/archive-page/"
    )
    target = urlsplit(response["HX-Redirect"])
    assert target.path == reverse("globus_login_again")
    query = parse_qs(target.query)
    assert query == {
        "reason": ["consent"],
        "scope": [transfer_scope_with_data_access(ARCHIVE)],
        "next": ["/test/archive-page/"],
    }
    page = client.get(response["HX-Redirect"])
    assert "Globus needs your consent" in page.content.decode()


def test_the_login_again_page_ignores_foreign_next_urls_and_non_globus_scopes(client, globus):
    response = client.get(
        reverse("globus_login_again"),
        {
            "reason": "login",
            "scope": ["https://evil.example/scope", TRANSFER_SCOPE],
            "next": "https://evil.example/",
        },
    )
    assert response.context["next_url"] == ""
    query = parse_qs(urlsplit(response.context["globus_login_action"]).query)
    assert query["scope"] == [TRANSFER_SCOPE]


def test_the_login_again_page_without_a_globus_client_says_so(client, db):
    page = client.get(reverse("globus_login_again")).content.decode()
    assert "Globus login is not configured" in page


# -------------------------------------------------------------------- logout
def test_logging_out_revokes_the_globus_tokens_and_forgets_them(client, globus):
    globus_login(client, globus)
    user = get_user_model().objects.get()
    stored = [vault.get_token(user, rs) for rs in (AUTH_RS, TRANSFER_RS)]

    response = client.post(reverse("account_logout"))

    assert response.status_code == 302
    assert not GlobusToken.objects.exists()
    revoked = globus.requests_to("/v2/oauth2/token/revoke", method="POST")
    assert len(revoked) == 4
    assert all(r["auth"] == f"Basic {CLIENT_ID}" for r in revoked)
    for token in stored:
        assert globus.token_info(token.refresh_token).revoked
        assert globus.token_info(token.access_token).revoked


def test_logout_succeeds_when_globus_cannot_be_reached(client, globus):
    globus_login(client, globus)
    globus.fail_next(10, status=503, path_contains="/revoke")
    client.post(reverse("account_logout"))
    assert not GlobusToken.objects.exists()
    assert "_auth_user_id" not in client.session


def test_the_logout_page_explains_that_waiting_transfers_pause(client, globus):
    globus_login(client, globus)
    page = client.get(reverse("account_logout")).content.decode()
    assert "transfers still" in page and "running for you wait" in page
