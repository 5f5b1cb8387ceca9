"""Fixtures shared by the whole suite."""

import pytest

from archive_portal.models import Role
from tests.factories import UserFactory

pytest_plugins = ["tests.browser"]


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer@lab.example.org", role=Role.VIEWER)


@pytest.fixture
def archivist(db):
    return UserFactory(username="archivist@lab.example.org", role=Role.ARCHIVIST)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin@lab.example.org", role=Role.ADMIN, is_superuser=True)


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def archivist_client(client, archivist):
    client.force_login(archivist)
    return client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
