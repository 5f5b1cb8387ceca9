"""The catalog's registry: plain records in, subjects, sessions, raw files and replicas out."""

import datetime as dt

import pytest
from django.utils import timezone

from catalog import naming
from catalog.models import (
    DiscoveryRun,
    FileType,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    RunKind,
    Session,
    Subject,
    UnmatchedCategory,
    UnmatchedPath,
)
from catalog.registry import FileRecord, Registry, Skipped, categorize, folder_problem
from tests.factories import RawFileFactory, ReplicaFactory, StorageLocationFactory, SubjectFactory

pytestmark = pytest.mark.django_db

MODIFIED = dt.datetime(2019, 7, 31, 14, 5, tzinfo=dt.UTC)
SESSION = "dl59/catgt_dl59_073119_g0"
RECORDS = [
    FileRecord(f"{SESSION}/dl59_073119_g0_tcat.nidq.bin", 1000, MODIFIED),
    FileRecord(f"{SESSION}/dl59_073119_g0_imec0/dl59_073119_g0_tcat.imec0.ap.bin", 5000, MODIFIED),
    FileRecord(f"{SESSION}/dl59_073119_g0_imec0/imec0_ks2/rez.mat", 300, MODIFIED),
    FileRecord("dl59/catgt_dl59_073119_surface_g0/dl59_073119_surface_imec1/x.lf.meta", 20, None),
    FileRecord("SC026/catgt_SC026_080219_1_g0/SC026_080219_1_g0_imec0/y.ap.meta", 30, MODIFIED),
]


@pytest.fixture
def archive():
    return StorageLocationFactory(alias="ephys-archive", role=LocationRole.ARCHIVE)


@pytest.fixture
def rig():
    return StorageLocationFactory(alias="rig-ephys", role=LocationRole.LOCAL)


def test_register_creates_subjects_sessions_files_and_replicas(archive):
    result = Registry(archive).register(RECORDS)

    assert (result.registered, result.unchanged, result.unmatched) == (5, 0, [])
    assert sorted(Subject.objects.values_list("water_restriction_number", flat=True)) == ["SC026", "dl59"]
    sessions = {(s.subject.water_restriction_number, s.session_date, s.ident) for s in Session.objects.all()}
    assert sessions == {
        ("dl59", dt.date(2019, 7, 31), ""),
        ("dl59", dt.date(2019, 7, 31), "surface"),
        ("SC026", dt.date(2019, 8, 2), "1"),
    }
    ap = RawFile.objects.get(subpath=RECORDS[1].subpath)
    assert (ap.size, ap.modified_at, ap.probe_insertion, ap.dataset_type) == (5000, MODIFIED, 1, "raw-ephys")
    assert ap.file_type.name == "ephys-raw-neuropixels-ap-bin"
    assert RawFile.objects.get(subpath=RECORDS[2].subpath).file_type.name == "ephys-raw-ks2-results"
    assert RawFile.objects.get(subpath=RECORDS[3].subpath).probe_insertion == 2
    assert RawFile.objects.get(subpath=RECORDS[0].subpath).probe_insertion is None
    replicas = Replica.objects.filter(location=archive)
    assert replicas.count() == 5
    assert set(replicas.values_list("state", "source")) == {(ReplicaState.PRESENT, ReplicaSource.DISCOVER)}


def test_local_locations_record_scanned_copies(rig):
    Registry(rig).register(RECORDS[:1])
    assert Replica.objects.get().source == ReplicaSource.SCAN


def test_registering_again_changes_nothing(archive):
    registry = Registry(archive)
    registry.register(RECORDS)
    again = Registry(archive).register(RECORDS)

    assert (again.registered, again.unchanged) == (0, 5)
    assert (Subject.objects.count(), Session.objects.count(), RawFile.objects.count()) == (2, 3, 5)
    assert Replica.objects.count() == 5


def test_a_second_location_adds_a_replica_not_a_file(archive, rig):
    Registry(rig).register(RECORDS)
    result = Registry(archive).register(RECORDS)

    assert result.registered == 5
    assert RawFile.objects.count() == 5
    assert Replica.objects.filter(location=archive).count() == 5


def test_existing_subjects_are_found_whatever_the_case(archive):
    subject = SubjectFactory(water_restriction_number="DL59", subject_id=407513)
    Registry(archive).register(RECORDS[:1])
    assert Subject.objects.count() == 1
    assert RawFile.objects.get().session.subject == subject


def test_file_types_come_from_the_database(archive):
    FileType.objects.create(name="ephys-raw-aaa-notes", dataset_type="raw-ephys", glob="notes*.txt")
    Registry(archive).register([FileRecord(f"{SESSION}/notes_day1.txt", 1)])
    assert RawFile.objects.get().file_type.name == "ephys-raw-aaa-notes"


def test_unknown_names_get_the_unknown_type(archive):
    Registry(archive).register([FileRecord(f"{SESSION}/Thumbs.db", 1)])
    assert RawFile.objects.get().file_type.name == naming.UNKNOWN_FILE_TYPE["raw-ephys"]


def test_unmatched_paths_are_stored_on_the_run_with_reason_and_category(archive):
    run = DiscoveryRun.objects.create(location=archive, kind=RunKind.DISCOVER)
    records = [
        FileRecord("README.md", 1),
        FileRecord("dl59/notes.txt", 1),
        FileRecord(f"{SESSION}/.DS_Store", 1),
        FileRecord(f"{SESSION}/dl59_073119_1_g0_imec0/a.ap.bin", 1),
        FileRecord("junk/a.bin", 1),
    ]
    result = Registry(archive, run=run).register(records)

    assert RawFile.objects.count() == 0
    assert len(result.unmatched) == 5
    stored = {path.subpath: path for path in UnmatchedPath.objects.filter(run=run)}
    assert {subpath: path.category for subpath, path in stored.items()} == {
        "README.md": UnmatchedCategory.OUTSIDE_SUBJECT,
        "dl59/notes.txt": UnmatchedCategory.OUTSIDE_SESSION,
        f"{SESSION}/.DS_Store": UnmatchedCategory.HIDDEN,
        f"{SESSION}/dl59_073119_1_g0_imec0/a.ap.bin": UnmatchedCategory.IN_SESSION,
        "junk/a.bin": UnmatchedCategory.OUTSIDE_SUBJECT,
    }
    assert "is hidden" in stored[f"{SESSION}/.DS_Store"].reason
    assert "does not belong to session folder" in stored[f"{SESSION}/dl59_073119_1_g0_imec0/a.ap.bin"].reason
    assert "not a water restriction number" in stored["junk/a.bin"].reason


def test_names_the_database_cannot_store_are_unmatched_in_printable_form(archive):
    run = DiscoveryRun.objects.create(location=archive, kind=RunKind.DISCOVER)
    bad_bytes = f"{SESSION}/caf\udce9.bin"  # a Latin-1 file name read with surrogateescape
    control = f"{SESSION}/a\x00b.bin"
    Registry(archive, run=run).register([FileRecord(bad_bytes, 1), FileRecord(control, 1)])

    assert RawFile.objects.count() == 0
    stored = dict(UnmatchedPath.objects.values_list("subpath", "category"))
    assert stored == {
        f"{SESSION}/caf\\xe9.bin": UnmatchedCategory.INVALID,
        f"{SESSION}/a\\x00b.bin": UnmatchedCategory.INVALID,
    }


def test_a_size_that_differs_from_the_catalog_is_not_a_copy(archive, rig):
    Registry(rig).register(RECORDS[:2])
    run = DiscoveryRun.objects.create(location=archive, kind=RunKind.DISCOVER)
    partial = FileRecord(RECORDS[0].subpath, 10, MODIFIED)  # a transfer still writing it

    result = Registry(archive, run=run).register([partial, RECORDS[1]])

    assert (result.registered, len(result.unmatched)) == (1, 1)
    assert RawFile.objects.get(subpath=partial.subpath).size == 1000
    assert not Replica.objects.filter(location=archive, file__subpath=partial.subpath).exists()
    conflict = UnmatchedPath.objects.get(run=run)
    assert conflict.category == UnmatchedCategory.SIZE_CONFLICT
    assert "10 bytes but the catalog records 1,000 bytes" in conflict.reason


def test_a_present_copy_whose_size_changed_is_marked_missing(archive):
    Registry(archive).register(RECORDS[:1])
    result = Registry(archive).register([FileRecord(RECORDS[0].subpath, 999, MODIFIED)])
    assert result.marked_missing == 1
    assert Replica.objects.get().state == ReplicaState.MISSING
    assert RawFile.objects.count() == 1


def test_a_missing_copy_found_again_is_present_again(archive):
    raw_file = RawFileFactory(subpath=RECORDS[0].subpath, size=1000)
    replica = ReplicaFactory(file=raw_file, location=archive, state=ReplicaState.MISSING)
    result = Registry(archive).register(RECORDS[:1])
    replica.refresh_from_db()
    assert result.registered == 1
    assert (replica.state, replica.source) == (ReplicaState.PRESENT, ReplicaSource.DISCOVER)


def test_mark_missing_marks_only_copies_not_seen_since_and_never_deletes(archive, rig):
    Registry(archive).register(RECORDS)
    Registry(rig).register(RECORDS)
    started = timezone.now()
    registry = Registry(archive)
    registry.register(RECORDS[:2])  # the walk saw only these

    marked = registry.mark_missing(not_seen_since=started, keep_under=["SC026/catgt_SC026_080219_1_g0"])

    assert marked == 2  # RECORDS[2] and RECORDS[3]; RECORDS[4] lies under a folder that could not be read
    states = dict(Replica.objects.filter(location=archive).values_list("file__subpath", "state"))
    assert [states[record.subpath] for record in RECORDS] == [
        ReplicaState.PRESENT,
        ReplicaState.PRESENT,
        ReplicaState.MISSING,
        ReplicaState.MISSING,
        ReplicaState.PRESENT,
    ]
    assert RawFile.objects.count() == 5
    assert not Replica.objects.filter(location=rig, state=ReplicaState.MISSING).exists()


def test_record_unmatched_keeps_one_row_per_path(archive):
    run = DiscoveryRun.objects.create(location=archive, kind=RunKind.DISCOVER)
    registry = Registry(archive, run=run)
    registry.record_unmatched([Skipped("scratch", "not a subject", True)])
    registry.record_unmatched([Skipped("scratch", "not a subject", True)])
    path = UnmatchedPath.objects.get()
    assert (path.is_folder, path.category) == (True, UnmatchedCategory.OUTSIDE_SUBJECT)


def test_a_batch_takes_a_fixed_number_of_queries(archive, django_assert_max_num_queries):
    records = [
        FileRecord(f"tw{n % 7 + 1}/catgt_tw{n % 7 + 1}_0{n % 9 + 1}0119_g0/f{n}.nidq.bin", n, MODIFIED)
        for n in range(1000)
    ]
    registry = Registry(archive)
    # Not one per file: a few lookups, and inserts in the backend's largest batches.
    with django_assert_max_num_queries(30):
        registry.register(records)
    with django_assert_max_num_queries(6):
        result = registry.register(records)
    assert result.unchanged == 1000


@pytest.mark.parametrize(
    ("dataset_type", "subpath", "expected"),
    [
        ("raw-ephys", "dl59", None),
        ("raw-ephys", "scratch", "not a water restriction number"),
        ("raw-ephys", ".snapshot", "is hidden"),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0", None),
        ("raw-ephys", "dl59/catgt_dl59_073119_surface_g0", None),
        ("raw-ephys", "dl59/catgt_dl59_023019_g0", "not a real calendar date"),
        ("raw-ephys", "dl59/catgt_SC026_073119_g0", "names subject 'SC026'"),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0/dl59_073119_g0_imec0", None),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0/dl59_073119_g0_imec0/imec0_ks2", None),
        ("raw-ephys", f"{SESSION}/dl59_073119_g0_imec0/imec1_ks2", "lies in the folder of probe"),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0/dl59_073119_1_g0_imec0", "does not belong to session"),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0/extras", None),
        ("raw-ephys", "dl59/catgt_dl59_073119_g0/.git", "is hidden"),
        ("raw-video", "dl59/20190731_1", None),
        ("raw-video", "dl59/2019-07-31", "not a raw-video session folder"),
        ("raw-video", "dl59/20190731/video", None),
    ],
)
def test_folder_problem_prunes_folders_that_cannot_hold_sessions(dataset_type, subpath, expected):
    problem = folder_problem(dataset_type, subpath)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem
        assert "any-file" not in problem


def test_categorize_by_where_a_path_lies():
    assert categorize("raw-ephys", "dl59/x/.hidden") == UnmatchedCategory.HIDDEN
    assert categorize("raw-ephys", "a\\b") == UnmatchedCategory.INVALID
    assert categorize("raw-ephys", "top.txt") == UnmatchedCategory.OUTSIDE_SUBJECT
    assert categorize("raw-ephys", "dl59/x.txt") == UnmatchedCategory.OUTSIDE_SESSION
    assert categorize("raw-ephys", "dl59/catgt_dl59_023019_g0/x") == UnmatchedCategory.OUTSIDE_SESSION
    assert categorize("raw-ephys", f"{SESSION}/bad_imec0/x") == UnmatchedCategory.IN_SESSION
