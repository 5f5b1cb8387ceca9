"""Exporting the catalog for scripts (`export_catalog`)."""

import csv
import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.exports import FIELDS, iter_records
from catalog.models import LocationRole, ReplicaState
from tests.factories import (
    GlobusLocationFactory,
    RawFileFactory,
    ReplicaFactory,
    SessionFactory,
    StorageLocationFactory,
    SubjectFactory,
    file_type_for,
)

pytestmark = pytest.mark.django_db

EXPECTED_FIELDS = [
    "subject_id",
    "water_restriction_number",
    "session_date",
    "ident",
    "session_number",
    "dataset_type",
    "subpath",
    "file_type",
    "probe",
    "size",
    "checksum",
    "locations",
    "archived",
]


def export(*args):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("export_catalog", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def export_jsonl(*args):
    return [json.loads(line) for line in export(*args).splitlines()]


@pytest.fixture
def catalog():
    """dl59 with one archived probe file and one local-only file; SC026 with a video file."""
    archive = GlobusLocationFactory(alias="raw-ephys-archive", role=LocationRole.ARCHIVE)
    rig = StorageLocationFactory(alias="rig-3")
    lab = StorageLocationFactory(alias="lab-share")
    dl59 = SubjectFactory(water_restriction_number="dl59", subject_id=407513)
    session = SessionFactory(subject=dl59, session_date=datetime.date(2019, 7, 31), session_number=3)
    folder = "dl59/catgt_dl59_073119_g0"
    probe_file = RawFileFactory(
        session=session,
        subpath=f"{folder}/dl59_073119_g0_imec0/dl59_073119_g0_t0.imec0.ap.bin",
        file_type=file_type_for("raw-ephys", "x.ap.bin"),
        probe_insertion=1,
        size=123_456_789_012,
        checksum="d41d8cd98f00b204e9800998ecf8427e",
    )
    ReplicaFactory(file=probe_file, location=archive)
    ReplicaFactory(file=probe_file, location=rig)
    ReplicaFactory(file=probe_file, location=lab, state=ReplicaState.MISSING)
    nidq = RawFileFactory(session=session, subpath=f"{folder}/dl59_073119_g0_t0.nidq.bin", size=10)
    ReplicaFactory(file=nidq, location=rig)
    ReplicaFactory(file=nidq, location=archive, state=ReplicaState.MISSING)
    sc026 = SubjectFactory(water_restriction_number="SC026", subject_id=None)
    video_session = SessionFactory(subject=sc026, session_date=datetime.date(2019, 8, 8), ident="1")
    RawFileFactory(
        session=video_session,
        dataset_type="raw-video",
        subpath="SC026/20190808_1/video/SC026_side_735-0001.avi",
        file_type=file_type_for("raw-video", "SC026_side_735-0001.avi"),
        size=5,
    )
    return {"dl59": dl59, "sc026": sc026}


def test_fields_are_exactly_the_documented_ones():
    assert list(FIELDS) == EXPECTED_FIELDS


def test_jsonl_is_the_default_with_one_record_per_file(catalog):
    records = export_jsonl()

    assert [list(record) for record in records] == [EXPECTED_FIELDS] * 3
    probe_file, nidq, video = records
    assert probe_file == {
        "subject_id": 407513,
        "water_restriction_number": "dl59",
        "session_date": "2019-07-31",
        "ident": "",
        "session_number": 3,
        "dataset_type": "raw-ephys",
        "subpath": "dl59/catgt_dl59_073119_g0/dl59_073119_g0_imec0/dl59_073119_g0_t0.imec0.ap.bin",
        "file_type": "ephys-raw-neuropixels-ap-bin",
        "probe": 1,
        "size": 123_456_789_012,
        "checksum": "d41d8cd98f00b204e9800998ecf8427e",
        "locations": ["raw-ephys-archive", "rig-3"],
        "archived": True,
    }
    # A missing copy at the archive neither counts as a location nor archives the file.
    assert (nidq["subpath"], nidq["locations"], nidq["archived"]) == (
        "dl59/catgt_dl59_073119_g0/dl59_073119_g0_t0.nidq.bin",
        ["rig-3"],
        False,
    )
    assert (nidq["probe"], nidq["checksum"], nidq["file_type"]) == (None, None, "ephys-raw-nidq")
    assert video == {
        "subject_id": None,
        "water_restriction_number": "SC026",
        "session_date": "2019-08-08",
        "ident": "1",
        "session_number": None,
        "dataset_type": "raw-video",
        "subpath": "SC026/20190808_1/video/SC026_side_735-0001.avi",
        "file_type": "tracking-video-trial",
        "probe": None,
        "size": 5,
        "checksum": None,
        "locations": [],
        "archived": False,
    }


def test_csv_has_a_header_and_joins_locations_with_semicolons(catalog):
    rows = list(csv.reader(io.StringIO(export("--format", "csv"))))

    assert rows[0] == EXPECTED_FIELDS
    assert rows[1] == [
        "407513",
        "dl59",
        "2019-07-31",
        "",
        "3",
        "raw-ephys",
        "dl59/catgt_dl59_073119_g0/dl59_073119_g0_imec0/dl59_073119_g0_t0.imec0.ap.bin",
        "ephys-raw-neuropixels-ap-bin",
        "1",
        "123456789012",
        "d41d8cd98f00b204e9800998ecf8427e",
        "raw-ephys-archive;rig-3",
        "true",
    ]
    assert rows[2][-2:] == ["rig-3", "false"]
    assert rows[3][0] == "" and rows[3][-2:] == ["", "false"]
    assert len(rows) == 4


def test_csv_of_an_empty_catalog_is_the_header_alone():
    assert export("--format", "csv") == ",".join(EXPECTED_FIELDS) + "\n"


def test_jsonl_of_an_empty_catalog_is_empty():
    assert export() == ""


@pytest.mark.parametrize("key", ["dl59", "DL59", "407513"])
def test_subject_selects_by_water_restriction_number_or_subject_id(catalog, key):
    records = export_jsonl("--subject", key)

    assert len(records) == 2
    assert {record["water_restriction_number"] for record in records} == {"dl59"}


def test_unknown_subject_is_an_error_with_a_clear_message(catalog):
    with pytest.raises(CommandError, match="No subject with water restriction number or subject id 'xx99'"):
        export("--subject", "xx99")


def test_unknown_format_is_refused():
    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        export("--format", "xml")


def test_the_number_of_queries_does_not_grow_with_the_number_of_files():
    archive = GlobusLocationFactory(alias="raw-ephys-archive", role=LocationRole.ARCHIVE)
    rig = StorageLocationFactory(alias="rig-1")

    def add_files(count):
        session = SessionFactory()
        for _ in range(count):
            raw_file = RawFileFactory(session=session)
            ReplicaFactory(file=raw_file, location=archive)
            ReplicaFactory(file=raw_file, location=rig)

    add_files(2)
    with CaptureQueriesContext(connection) as few:
        assert len(export_jsonl()) == 2
    add_files(40)
    with CaptureQueriesContext(connection) as many:
        records = export_jsonl()

    assert len(records) == 42
    assert all(
        record["locations"] == ["raw-ephys-archive", "rig-1"] and record["archived"] for record in records
    )
    assert len(many.captured_queries) == len(few.captured_queries) <= 2


def test_help_documents_every_field_and_both_formats():
    from catalog.management.commands.export_catalog import Command

    parser = Command().create_parser("manage.py", "export_catalog")
    text = parser.format_help()

    for name in EXPECTED_FIELDS:
        assert f"\n  {name} " in text
    assert "jsonl (default)" in text
    assert "locations joined with ';'" in text


def test_files_with_several_copies_stay_whole_across_chunk_boundaries():
    archive = GlobusLocationFactory(alias="raw-ephys-archive", role=LocationRole.ARCHIVE)
    rig = StorageLocationFactory(alias="rig-1")
    session = SessionFactory()
    for _ in range(5):
        raw_file = RawFileFactory(session=session)
        ReplicaFactory(file=raw_file, location=archive)
        ReplicaFactory(file=raw_file, location=rig)

    records = list(iter_records(chunk_size=3))

    assert len(records) == 5
    assert all(record["locations"] == ["raw-ephys-archive", "rig-1"] for record in records)
