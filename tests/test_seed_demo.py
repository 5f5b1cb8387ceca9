"""``manage.py seed_demo``: the demo catalog ``make run`` starts from."""

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from archive_portal.models import Role
from catalog.management.commands import seed_demo
from catalog.models import (
    Backend,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    Session,
    StorageLocation,
    Subject,
)
from tests.factories import GlobusLocationFactory, SubjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def _seed():
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_seed_demo_builds_locations_trees_subjects_copies_and_accounts(var_dir):
    out, _ = _seed()

    locations = {location.alias: location for location in StorageLocation.objects.all()}
    assert set(locations) == {
        "rig-ephys",
        "rig-video",
        "ephys-archive",
        "video-archive",
        "retrieval-ephys",
        "retrieval-video",
    }
    for location in locations.values():
        assert location.backend == Backend.FILESYSTEM
        assert location.local_path.startswith(str(var_dir / "demo"))
        assert (var_dir / "demo").joinpath(location.local_path).is_dir()
    assert (locations["rig-ephys"].role, locations["rig-ephys"].writable) == (LocationRole.LOCAL, False)
    assert (locations["ephys-archive"].role, locations["video-archive"].role) == (LocationRole.ARCHIVE,) * 2
    retrieval = locations["retrieval-video"]
    assert (retrieval.role, retrieval.writable) == (LocationRole.LOCAL, True)

    assert dict(Subject.objects.values_list("water_restriction_number", "subject_id")) == {
        "dl59": 407513,
        "SC026": 446270,
        "tw5": 440959,
    }
    assert {"", "1", "surface"} <= set(Session.objects.values_list("ident", flat=True))
    files = RawFile.objects.select_related("file_type")
    types = {raw_file.file_type.name for raw_file in files}
    assert {
        "ephys-raw-neuropixels-ap-bin",
        "ephys-raw-neuropixels-lf-meta",
        "ephys-raw-nidq",
        "ephys-raw-ks2-spike-times",
        "ephys-raw-ks2-results",
        "tracking-video-trial",
        "tracking-video-map",
    } <= types
    assert not any(name.endswith("-unknown") for name in types)
    assert {raw_file.probe_insertion for raw_file in files} == {None, 1, 2}
    for raw_file in files:
        rig = locations["rig-ephys" if raw_file.dataset_type == "raw-ephys" else "rig-video"]
        on_disk = (var_dir / "demo").joinpath(rig.local_path, raw_file.subpath)
        assert on_disk.stat().st_size == raw_file.size > 0
    replicas = Replica.objects.all()
    assert replicas.count() == files.count()
    assert set(replicas.values_list("location__alias", flat=True)) == {"rig-ephys", "rig-video"}
    assert set(replicas.values_list("state", "source")) == {(ReplicaState.PRESENT, ReplicaSource.SCAN)}

    users = {user.username: user for user in get_user_model().objects.all()}
    assert {name: user.role for name, user in users.items()} == {
        "archivist": Role.ARCHIVIST,
        "viewer": Role.VIEWER,
        "admin": Role.ADMIN,
    }
    assert users["admin"].is_superuser and users["admin"].is_staff
    passwords_file = var_dir / "demo_passwords"
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    passwords = dict(line.split(" ", 1) for line in passwords_file.read_text().splitlines())
    assert set(passwords) == {"archivist", "viewer", "admin"}
    assert len(set(passwords.values())) == 3
    source = Path(seed_demo.__file__).read_text()
    assert all(len(password) >= 16 and password not in source for password in passwords.values())
    for name, password in passwords.items():
        assert users[name].check_password(password)
        assert password in out
    assert "http://127.0.0.1:8000" in out


def test_seed_demo_twice_changes_nothing_and_says_so(var_dir):
    _seed()
    passwords = (var_dir / "demo_passwords").read_text()
    counts = _counts()
    mtimes = _mtimes(var_dir / "demo")

    out, _ = _seed()

    assert "nothing changed" in out
    assert (var_dir / "demo_passwords").read_text() == passwords
    assert _counts() == counts
    assert _mtimes(var_dir / "demo") == mtimes


def _counts():
    return [model.objects.count() for model in (StorageLocation, Subject, Session, RawFile, Replica)]


def _mtimes(folder):
    return sorted((path, path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file())


def test_seed_demo_refuses_a_catalog_with_its_own_archive(var_dir):
    GlobusLocationFactory(alias="petrel-ephys", role=LocationRole.ARCHIVE, dataset_type="raw-ephys")

    with pytest.raises(CommandError, match="archive location for raw-ephys, 'petrel-ephys'") as refused:
        _seed()

    assert "Nothing was changed" in str(refused.value)
    assert StorageLocation.objects.count() == 1
    assert not get_user_model().objects.exists()
    assert not (var_dir / "demo").exists()
    assert not (var_dir / "demo_passwords").exists()


def test_seed_demo_leaves_existing_accounts_and_subject_ids_alone(var_dir, django_user_model):
    admin = django_user_model.objects.create_user(username="admin", password="the lab's own", role=Role.ADMIN)
    SubjectFactory(water_restriction_number="other1", subject_id=407513)

    out, err = _seed()

    admin.refresh_from_db()
    assert admin.check_password("the lab's own")
    assert "admin exists and was not made by seed_demo" in err
    assert "admin" not in (var_dir / "demo_passwords").read_text()
    assert Subject.objects.get(water_restriction_number="dl59").subject_id is None
