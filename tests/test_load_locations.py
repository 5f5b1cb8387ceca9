"""Loading storage locations from a file (`load_locations`)."""

import io
import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from catalog.models import Backend, LocationRole, StorageLocation
from tests.factories import GlobusLocationFactory, StorageLocationFactory

pytestmark = pytest.mark.django_db

FACILITY_FIXTURE = Path(settings.BASE_DIR) / "catalog" / "fixtures" / "facility_locations.json"
PETREL = "5b875fda-4185-11e8-bb52-0ac6873fc732"
RIG_ENDPOINT = "c40e971d-0075-4a82-b12f-8f9717762e7b"
VIDEO_ENDPOINT = "0d6e4c54-8c11-4a3b-9d7e-3f5a1b2c9e10"
SECRET = "AgXyzSecretTokenValue0123456789"


def write_json(tmp_path, data, name="locations.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def load(path):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("load_locations", str(path), stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def refused_load(path):
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("load_locations", str(path), stdout=stdout, stderr=stderr)
    return str(refused.value), stdout.getvalue() + stderr.getvalue()


def entry(**values):
    base = {
        "alias": "rig-3-ephys",
        "role": "local",
        "dataset_type": "raw-ephys",
        "backend": "filesystem",
        "path": "/",
        "local_path": "/data/rig3/ephys",
        "writable": True,
    }
    return {**base, **values}


def dj_local_conf():
    """A dj_local_conf.json as the original pipeline's users kept it."""
    return {
        "database.host": "mesoscale-activity.datajoint.io",
        "database.user": "lab",
        "globus.local_endpoint": RIG_ENDPOINT,
        "globus.local_endpoint_subdir": "map/raw",
        "globus.local_endpoint_local_path": "/globus/map/raw",
        "custom": {
            "globus.token": SECRET,
            "globus.storage_locations": [
                ["raw-ephys", PETREL, "/ePhys"],
                ["raw-video", PETREL, "/Videos"],
            ],
            "globus.local_endpoints": {
                "raw-video": {
                    "endpoint": VIDEO_ENDPOINT,
                    "endpoint_subdir": "/videos",
                    "endpoint_path": "/mnt/videos",
                }
            },
        },
    }


def test_the_facility_fixture_holds_the_original_archive_locations():
    out, err = load(FACILITY_FIXTURE)

    assert err == ""
    assert out.splitlines() == [
        "created raw-ephys-archive: role='archive', dataset_type='raw-ephys', backend='globus', "
        f"collection_id='{PETREL}', root_path='/ePhys', local_path='', writable=false",
        "created raw-video-archive: role='archive', dataset_type='raw-video', backend='globus', "
        f"collection_id='{PETREL}', root_path='/Videos', local_path='', writable=false",
    ]
    ephys = StorageLocation.objects.get(alias="raw-ephys-archive")
    assert (ephys.role, ephys.dataset_type, ephys.backend) == ("archive", "raw-ephys", "globus")
    assert (ephys.collection_id, ephys.root_path) == (uuid.UUID(PETREL), "/ePhys")
    video = StorageLocation.objects.get(alias="raw-video-archive")
    assert (video.dataset_type, video.collection_id, video.root_path) == (
        "raw-video",
        uuid.UUID(PETREL),
        "/Videos",
    )


def test_loading_the_same_file_again_changes_nothing():
    load(FACILITY_FIXTURE)
    before = list(StorageLocation.objects.values().order_by("pk"))

    out, _ = load(FACILITY_FIXTURE)

    assert out.splitlines() == ["unchanged raw-ephys-archive", "unchanged raw-video-archive"]
    assert list(StorageLocation.objects.values().order_by("pk")) == before


def test_an_update_reports_the_fields_that_changed(tmp_path):
    GlobusLocationFactory(
        alias="raw-video-archive",
        role=LocationRole.ARCHIVE,
        dataset_type="raw-video",
        collection_id=PETREL,
        root_path="/Video",
        writable=True,
    )

    out, _ = load(FACILITY_FIXTURE)

    assert "updated raw-video-archive: root_path '/Video' -> '/Videos', writable true -> false" in out
    location = StorageLocation.objects.get(alias="raw-video-archive")
    assert (location.root_path, location.writable) == ("/Videos", False)


def test_a_key_left_out_keeps_the_stored_value(tmp_path):
    StorageLocationFactory(alias="rig-3-ephys", local_path="/data/rig3/ephys", writable=True)
    first = entry()
    del first["writable"]
    path = write_json(tmp_path, [first])

    out, _ = load(path)

    assert out.strip() == "unchanged rig-3-ephys"
    assert StorageLocation.objects.get(alias="rig-3-ephys").writable is True


def test_paths_are_stored_in_normal_form(tmp_path):
    path = write_json(tmp_path, [entry(local_path="/data/rig3//ephys/", path="/ePhys/")])

    load(path)

    location = StorageLocation.objects.get(alias="rig-3-ephys")
    assert (location.root_path, location.local_path) == ("/ePhys", "/data/rig3/ephys")
    out, _ = load(path)
    assert out.strip() == "unchanged rig-3-ephys"


def test_unknown_and_missing_keys_and_wrong_values_are_refused(tmp_path):
    path = write_json(
        tmp_path,
        [
            entry(alias="a1", root="/ePhys"),
            {"alias": "a2", "role": "local", "backend": "filesystem"},
            entry(alias="a3", writable="yes"),
            entry(alias="a4", role="archival", dataset_type="raw-spikes", backend="s3"),
            entry(alias="a5", path=7),
            "raw-ephys",
        ],
    )

    message, output = refused_load(path)

    assert "No location was changed: 8 problems" in message
    assert "entry 1 (a1): unknown key(s) 'root'; allowed keys: alias, role, dataset_type, backend" in output
    assert "entry 2 (a2): missing dataset_type" in output
    assert "entry 3 (a3): writable must be true or false, not a string" in output
    assert "entry 4 (a4): role 'archival' is not one of archive, local" in output
    assert "entry 4 (a4): dataset_type 'raw-spikes' is not one of raw-ephys, raw-video" in output
    assert "entry 4 (a4): backend 's3' is not one of globus, filesystem" in output
    assert "entry 5 (a5): path must be a string, not a number" in output
    assert "entry 6: is not an object" in output
    assert not StorageLocation.objects.exists()


def test_invalid_locations_are_refused_with_the_reason_and_nothing_is_half_applied(tmp_path):
    path = write_json(
        tmp_path,
        [
            entry(alias="good-one"),
            entry(alias="relative", path="ePhys"),
            entry(alias="backslash", local_path="C:\\data\\rig3"),
            entry(alias="no-local-path", local_path=""),
            entry(alias="no-collection", backend="globus", collection_id=None),
            entry(alias="bad-uuid", backend="globus", collection_id="petrel#ephys"),
            entry(alias="not a slug"),
        ],
    )

    _, output = refused_load(path)

    assert "entry 2 (relative): root_path: 'ePhys' is relative; a root path starts with '/'" in output
    assert "entry 3 (backslash): local_path: 'C:\\\\data\\\\rig3' contains a backslash" in output
    assert "entry 4 (no-local-path): local_path: A filesystem location needs its local path." in output
    assert "entry 5 (no-collection): collection_id: A Globus location needs its collection UUID." in output
    assert "entry 6 (bad-uuid): collection_id: “petrel#ephys” is not a valid UUID." in output
    assert "entry 7 (not a slug): alias: Enter a valid “slug”" in output
    assert not StorageLocation.objects.exists()


def test_a_second_archive_for_a_dataset_type_is_refused(tmp_path):
    load(FACILITY_FIXTURE)
    path = write_json(
        tmp_path, [entry(alias="new-archive", role="archive", backend="globus", collection_id=PETREL)]
    )

    _, output = refused_load(path)

    assert "entry 1 (new-archive): There is already an archive location for this dataset type." in output
    assert not StorageLocation.objects.filter(alias="new-archive").exists()


def test_the_same_alias_twice_is_refused(tmp_path):
    path = write_json(tmp_path, [entry(), entry(local_path="/data/other")])

    _, output = refused_load(path)

    assert "entry 2 (rig-3-ephys): alias 'rig-3-ephys' is also given by entry 1 (rig-3-ephys)" in output
    assert not StorageLocation.objects.exists()


def test_dj_local_conf_becomes_archive_and_local_globus_locations(tmp_path):
    path = write_json(tmp_path, dj_local_conf(), name="dj_local_conf.json")

    out, err = load(path)

    assert [line.split(":")[0] for line in out.splitlines()] == [
        "created raw-ephys-archive",
        "created raw-video-archive",
        "created raw-video-local",
        "created raw-ephys-local",
    ]
    ephys_archive = StorageLocation.objects.get(alias="raw-ephys-archive")
    assert (ephys_archive.role, ephys_archive.dataset_type, ephys_archive.backend) == (
        LocationRole.ARCHIVE,
        "raw-ephys",
        Backend.GLOBUS,
    )
    assert (str(ephys_archive.collection_id), ephys_archive.root_path) == (PETREL, "/ePhys")
    assert StorageLocation.objects.get(alias="raw-video-archive").root_path == "/Videos"
    video_local = StorageLocation.objects.get(alias="raw-video-local")
    assert (video_local.role, video_local.dataset_type, video_local.backend) == (
        "local",
        "raw-video",
        "globus",
    )
    assert (str(video_local.collection_id), video_local.root_path, video_local.local_path) == (
        VIDEO_ENDPOINT,
        "/videos",
        "/mnt/videos",
    )
    assert video_local.writable is False
    # The machine's one local endpoint serves the dataset type the map leaves out;
    # a relative subdir is taken from the top of the collection.
    ephys_local = StorageLocation.objects.get(alias="raw-ephys-local")
    assert (ephys_local.role, ephys_local.dataset_type, ephys_local.writable) == ("local", "raw-ephys", False)
    assert (str(ephys_local.collection_id), ephys_local.root_path, ephys_local.local_path) == (
        RIG_ENDPOINT,
        "/map/raw",
        "/globus/map/raw",
    )


def test_a_token_in_dj_local_conf_is_not_imported_and_never_printed(tmp_path):
    conf = dj_local_conf()
    conf["globus.refresh_Token"] = SECRET + "-refresh"
    path = write_json(tmp_path, conf, name="dj_local_conf.json")

    out, err = load(path)

    assert "Warning: The file holds a token under 'custom > globus.token'; it was not imported" in err
    assert "Warning: The file holds a token under 'globus.refresh_Token'" in err
    assert SECRET not in out + err
    assert not any(SECRET in str(value) for value in StorageLocation.objects.values_list())


def test_the_token_warning_is_shown_and_kept_secret_when_the_file_is_refused(tmp_path):
    conf = dj_local_conf()
    conf["custom"]["globus.storage_locations"].append(["raw-spikes", PETREL, "/"])
    path = write_json(tmp_path, conf, name="dj_local_conf.json")

    message, output = refused_load(path)

    assert "Warning: The file holds a token under 'custom > globus.token'" in output
    assert SECRET not in output + message


def test_reloading_dj_local_conf_keeps_the_writable_flag_an_admin_set(tmp_path):
    path = write_json(tmp_path, dj_local_conf(), name="dj_local_conf.json")
    load(path)
    StorageLocation.objects.filter(alias="raw-ephys-local").update(writable=True)

    out, _ = load(path)

    assert out.splitlines() == [
        "unchanged raw-ephys-archive",
        "unchanged raw-video-archive",
        "unchanged raw-video-local",
        "unchanged raw-ephys-local",
    ]
    assert StorageLocation.objects.get(alias="raw-ephys-local").writable is True


def test_dj_local_conf_matches_the_facility_fixture(tmp_path):
    load(FACILITY_FIXTURE)
    conf = {"custom": {"globus.storage_locations": dj_local_conf()["custom"]["globus.storage_locations"]}}

    out, _ = load(write_json(tmp_path, conf))

    assert out.splitlines() == ["unchanged raw-ephys-archive", "unchanged raw-video-archive"]


def test_dj_local_conf_entries_whose_dataset_type_cannot_be_told_are_refused(tmp_path):
    conf = {
        "custom": {
            "globus.storage_locations": [
                ["raw-ephys", PETREL, "/ePhys"],
                ["publication", PETREL, "/"],
                ["raw-ephys-video", PETREL, "/"],
                ["raw-tracking", "anl#petrel", "/"],
            ],
            "globus.local_endpoints": {"rig3": {"endpoint": RIG_ENDPOINT, "endpoint_subdir": "/data"}},
        }
    }

    _, output = refused_load(write_json(tmp_path, conf))

    assert (
        "globus.storage_locations[1] (publication): cannot tell whether alias 'publication' with path '/' "
        "holds raw-ephys or raw-video"
    ) in output
    assert (
        "globus.storage_locations[2] (raw-ephys-video): alias 'raw-ephys-video' and path '/' name both"
        in output
    )
    assert (
        "globus.storage_locations[3] (raw-tracking): the endpoint 'anl#petrel' is not a collection UUID"
        in output
    )
    assert "globus.local_endpoints > rig3: cannot tell whether alias 'rig3'" in output
    assert not StorageLocation.objects.exists()


def test_dj_local_conf_local_paths_are_validated(tmp_path):
    conf = {
        "globus.local_endpoint": RIG_ENDPOINT,
        "globus.local_endpoint_subdir": "/map/raw",
        "globus.local_endpoint_local_path": "C:\\globus\\map",
    }

    _, output = refused_load(write_json(tmp_path, conf))

    assert "globus.local_endpoint: local_path: 'C:\\\\globus\\\\map' contains a backslash" in output
    assert not StorageLocation.objects.exists()


def test_a_local_endpoint_subdir_without_its_endpoint_is_refused(tmp_path):
    conf = {"globus.local_endpoint_subdir": "map/raw"}

    _, output = refused_load(write_json(tmp_path, conf))

    assert "globus.local_endpoint_subdir given without globus.local_endpoint" in output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[{'alias': 'x'}]", "The file is not valid JSON: Expecting property name enclosed in double quotes"),
        ('"raw-ephys"', "The file must hold a JSON list of locations or a dj_local_conf.json object"),
        ('{"database.host": "db"}', "The file names no storage locations"),
        ("[]", "The file lists no locations."),
    ],
)
def test_files_that_hold_no_locations_are_refused(tmp_path, content, reason):
    path = tmp_path / "locations.json"
    path.write_text(content)

    message, output = refused_load(path)

    assert reason in output
    assert "No location was changed: 1 problem in" in message


def test_a_missing_file_is_reported():
    with pytest.raises(CommandError, match="Cannot read /nonexistent/locations.json: No such file"):
        load("/nonexistent/locations.json")


def test_help_documents_both_formats_and_the_mapping():
    from catalog.management.commands.load_locations import Command

    text = Command().create_parser("manage.py", "load_locations").format_help()

    for key in (
        "alias",
        "role",
        "dataset_type",
        "backend",
        "collection_id",
        "path",
        "local_path",
        "writable",
    ):
        assert f"\n  {key} " in text
    assert "globus.storage_locations" in text and "<alias>-archive" in text
    assert "globus.local_endpoints" in text and "<alias>-local" in text
    assert "never imported" in text
