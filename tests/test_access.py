"""Who may enter (allow-list by identity domain and Globus group) and what
each role may do in the admin site."""

import pytest
from django.contrib.auth import get_user_model

from archive_portal import access
from archive_portal.models import Role
from tests.factories import UserFactory
from tests.fakes import GROUPS_RS, FakeGlobusAuth, FakeIdentity
from tests.test_login import CLIENT_ID, CLIENT_SECRET, LAB_GROUP

OTHER_GROUP = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def fake_groups(monkeypatch):
    """Globus Groups (served by the Auth fake) and a way to get a groups token."""
    fake = FakeGlobusAuth(
        clients={CLIENT_ID: CLIENT_SECRET},
        identities=[
            FakeIdentity("grace@uni.example.edu", groups=[{"name": "lab", "id": LAB_GROUP}]),
            FakeIdentity("eve@example.com", groups=[{"name": "other", "id": OTHER_GROUP}]),
        ],
    )
    with fake:
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_GROUPS", fake.url)
        yield fake


def groups_tokens(fake, identity):
    """A login's token response for ``identity``, by resource server (groups only)."""
    import requests

    from tests.fakes import GROUPS_SCOPE

    fake.login_as(identity)
    redirect = requests.get(
        fake.url + "v2/oauth2/authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": "http://testserver/cb",
            "response_type": "code",
            "scope": GROUPS_SCOPE,
        },
        allow_redirects=False,
        timeout=10,
    )
    code = redirect.headers["Location"].split("code=")[1].split("&")[0]
    body = requests.post(
        fake.url + "v2/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://testserver/cb"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()
    assert body["resource_server"] == GROUPS_RS
    return {GROUPS_RS: body}


# ------------------------------------------------------------- allow-list
def test_without_an_allow_list_every_identity_enters(settings):
    settings.PORTAL_ALLOWED_DOMAINS, settings.PORTAL_ALLOWED_GLOBUS_GROUP = [], ""
    assert access.check_identity("anyone@anywhere.example", {}).allowed
    assert not access.restricted()


@pytest.mark.parametrize(
    ("username", "allowed"),
    [
        ("ada@janelia.org", True),
        ("ADA@Janelia.ORG", True),
        ("ada@hhmi.org", True),
        ("ada@notjanelia.org", False),
        ("ada@janelia.org.evil.example", False),
        ("ada@sub.janelia.org", False),
        ("janelia.org", False),
        ("", False),
    ],
)
def test_domains_match_the_identity_username_exactly(settings, username, allowed):
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org", "@HHMI.org"]
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = ""
    assert access.check_identity(username, {}).allowed is allowed


def test_group_members_enter(settings, fake_groups):
    settings.PORTAL_ALLOWED_DOMAINS = []
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    assert access.needs_groups_scope()
    assert access.check_identity(
        "grace@uni.example.edu", groups_tokens(fake_groups, "grace@uni.example.edu")
    ).allowed
    refused = access.check_identity("eve@example.com", groups_tokens(fake_groups, "eve@example.com"))
    assert not refused.allowed and refused.reason == ""


def test_a_domain_or_the_group_is_enough(settings, fake_groups):
    settings.PORTAL_ALLOWED_DOMAINS = ["janelia.org"]
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    assert access.check_identity("ada@janelia.org", {}).allowed
    assert access.check_identity(
        "grace@uni.example.edu", groups_tokens(fake_groups, "grace@uni.example.edu")
    ).allowed
    assert (
        access.describe_allow_list()
        == "Globus identities from janelia.org and members of the lab's Globus group"
    )


def test_without_a_groups_token_group_membership_cannot_be_checked(settings):
    settings.PORTAL_ALLOWED_DOMAINS = []
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    decision = access.check_identity("grace@uni.example.edu", {})
    assert not decision.allowed
    assert "group memberships" in decision.reason


def test_an_unreachable_groups_service_refuses_and_says_try_later(settings, fake_groups):
    settings.PORTAL_ALLOWED_DOMAINS = []
    settings.PORTAL_ALLOWED_GLOBUS_GROUP = LAB_GROUP
    tokens = groups_tokens(fake_groups, "grace@uni.example.edu")
    fake_groups.fail_next(1, status=403, path_contains="/v2/groups/")
    decision = access.check_identity("grace@uni.example.edu", tokens)
    assert not decision.allowed
    assert "try again later" in decision.reason


# ---------------------------------------------------------------- roles
def test_new_users_start_as_viewers(db):
    user = get_user_model().objects.create_user("new@janelia.org")
    assert user.role == Role.VIEWER
    assert not user.can_archive and not user.can_administer and user.can_retrieve


def test_admins_reach_the_admin_site_and_change_roles(admin_client, viewer):
    response = admin_client.get("/admin/archive_portal/user/")
    assert response.status_code == 200
    assert viewer.username in response.content.decode()

    response = admin_client.post(
        f"/admin/archive_portal/user/{viewer.pk}/change/",
        {
            "username": viewer.username,
            "email": viewer.email,
            "role": Role.ARCHIVIST,
            "is_active": "on",
            "date_joined_0": "2024-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    viewer.refresh_from_db()
    assert viewer.role == Role.ARCHIVIST
    assert viewer.can_archive


def test_a_role_admin_without_superuser_uses_the_admin_site(client, db):
    admin = UserFactory(username="lab-admin@janelia.org", role=Role.ADMIN)
    assert admin.is_staff and not admin.is_superuser
    client.force_login(admin)
    assert client.get("/admin/archive_portal/user/").status_code == 200


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST])
def test_other_roles_do_not_reach_the_admin_site(client, db, role):
    client.force_login(UserFactory(role=role))
    assert client.get("/admin/archive_portal/user/").status_code == 302
