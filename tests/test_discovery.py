"""Discovery and local scans, end to end: realistic trees walked through the filesystem and
through the loopback Globus Transfer fake over real HTTP, registered in the catalog."""

import datetime as dt
import io
import re
import shutil
import time

import globus_sdk
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from catalog.models import (
    Backend,
    DiscoveryRun,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    RunKind,
    RunState,
    Session,
    Subject,
    UnmatchedCategory,
    UnmatchedPath,
)
from tests.discovery_trees import ephys_tree, remove, video_tree
from tests.factories import RawFileFactory, ReplicaFactory, StorageLocationFactory
from tests.fakes import FakeGlobusAuth, FakeGlobusTransfer
from transfers import discovery, discovery_tasks
from transfers.backends import walk
from transfers.backends.walk import walk_filesystem, walk_globus

pytestmark = pytest.mark.django_db

COLLECTION = "5b875fda-4185-11e8-bb52-0ac6873fc732"
LS = f"/v0.10/operation/endpoint/{COLLECTION}/ls"
NO_WAIT = {"retry_delays": (0, 0, 0)}


class Crash(BaseException):
    """Stands in for a worker process killed mid-run: nothing in the run catches it."""


@pytest.fixture
def fake_transfer(tmp_path):
    fake = FakeGlobusTransfer(collections={COLLECTION: tmp_path / "collection"})
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def transfer_client(fake_transfer, monkeypatch):
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", fake_transfer.url)
    client = globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer("discovery-test"))
    # globus-sdk's own backoff before it gives up on 5xx answers, shortened for the tests.
    client.retry_config.max_sleep = 0
    return client


class Setup:
    """A location over a tree, and how to walk it."""

    def __init__(self, location, tree, *, client=None, fake=None, walk_options=None):
        self.location = location
        self.tree = tree
        self.client = client
        self.fake = fake
        self.walk_options = walk_options or {}

    def run(self, **options):
        run, _ = discovery.request_run(location=self.location)
        options.setdefault("walk_options", self.walk_options)
        return discovery.execute_run(run.pk, client=self.client, **options)

    def resume(self, run, **options):
        options.setdefault("walk_options", self.walk_options)
        return discovery.execute_run(run.pk, client=self.client, **options)

    def ls_calls(self):
        return self.fake.calls(LS) if self.fake else 0


def _filesystem(tmp_path, role, build=ephys_tree, dataset_type="raw-ephys", alias="ephys-archive"):
    tree = build(tmp_path / "storage")
    location = StorageLocationFactory(
        alias=alias, role=role, dataset_type=dataset_type, local_path=str(tree.root)
    )
    return Setup(location, tree)


def _globus(tmp_path, role, fake, client, build=ephys_tree, dataset_type="raw-ephys", **walk_options):
    tree = build(tmp_path / "collection" / "ePhys")
    location = StorageLocationFactory(
        alias="ephys-archive",
        role=role,
        dataset_type=dataset_type,
        backend=Backend.GLOBUS,
        collection_id=COLLECTION,
        root_path="/ePhys",
        local_path="",
    )
    return Setup(location, tree, client=client, fake=fake, walk_options={**NO_WAIT, **walk_options})


@pytest.fixture(params=["filesystem", "globus"])
def archive(request, tmp_path):
    if request.param == "filesystem":
        return _filesystem(tmp_path, LocationRole.ARCHIVE)
    fake = request.getfixturevalue("fake_transfer")
    return _globus(tmp_path, LocationRole.ARCHIVE, fake, request.getfixturevalue("transfer_client"))


def _assert_catalog_matches(setup, run):
    tree = setup.tree
    assert run.state == RunState.SUCCEEDED, run.error_message
    assert run.directories_listed == len(tree.folders)
    assert run.files_seen == tree.files_seen
    assert run.registered + run.unchanged == len(tree.files)
    files = {f.subpath: f for f in RawFile.objects.select_related("file_type")}
    assert files.keys() == tree.files.keys()
    for subpath, expected in tree.files.items():
        raw_file = files[subpath]
        assert (raw_file.file_type.name, raw_file.probe_insertion, raw_file.size) == (
            expected.file_type,
            expected.probe,
            expected.size,
        ), subpath
        assert raw_file.modified_at is not None
    unmatched = dict(UnmatchedPath.objects.filter(run=run).values_list("subpath", "category"))
    assert unmatched == tree.unmatched
    assert run.unmatched == len(tree.unmatched)
    reported = set(UnmatchedPath.objects.filter(run=run).values_list("subpath", flat=True))
    assert not tree.never_listed & (files.keys() | reported)


# ----------------------------------------------------------------------------- walking


def test_a_first_walk_registers_the_tree(archive):
    run = archive.run()

    _assert_catalog_matches(archive, run)
    assert run.registered == len(archive.tree.files)
    assert (run.kind, run.marked_missing, run.cursor, run.claim) == (RunKind.DISCOVER, 0, {}, "")
    assert run.started_at <= run.finished_at
    assert sorted(Subject.objects.values_list("water_restriction_number", flat=True)) == [
        "SC026",
        "dl59",
        "tw5",
    ]
    dl59_sessions = Session.objects.filter(subject__water_restriction_number="dl59")
    assert set(dl59_sessions.values_list("ident", flat=True)) == {"", "1", "surface"}
    assert set(Replica.objects.values_list("state", "source")) == {
        (ReplicaState.PRESENT, ReplicaSource.DISCOVER)
    }
    assert Replica.objects.count() == len(archive.tree.files)


def test_a_globus_walk_lists_each_folder_once_and_no_pruned_one(tmp_path, fake_transfer, transfer_client):
    setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, transfer_client)
    run = setup.run()

    listed = [request["query"]["path"] for request in fake_transfer.requests_to(LS)]
    expected = {f"/ePhys/{folder}" if folder else "/ePhys/" for folder in setup.tree.folders}
    assert sorted(listed) == sorted(expected)
    assert run.directories_listed == len(listed)
    assert not any("scratch" in path or "old_runs" in path or "Trash" in path for path in listed)
    assert fake_transfer.calls("/v0.10/operation/endpoint", method="GET") == len(listed)  # no per-file stat


def test_large_folders_are_read_in_pages(tmp_path, fake_transfer, transfer_client):
    setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, transfer_client, page_size=4)
    run = setup.run()

    _assert_catalog_matches(setup, run)
    pages = fake_transfer.requests_to(LS)
    assert len(pages) > len(setup.tree.folders)
    assert {int(request["query"]["limit"]) for request in pages} == {4}
    assert any(int(request["query"].get("offset", 0)) >= 4 for request in pages)


def test_video_trees_are_walked_with_their_own_conventions(tmp_path, fake_transfer, transfer_client):
    setup = _globus(
        tmp_path,
        LocationRole.ARCHIVE,
        fake_transfer,
        transfer_client,
        build=video_tree,
        dataset_type="raw-video",
    )
    run = setup.run()
    _assert_catalog_matches(setup, run)
    assert Session.objects.get(ident="surface").session_date == dt.date(2019, 8, 2)


def test_a_local_scan_records_scanned_copies(tmp_path):
    setup = _filesystem(tmp_path, LocationRole.LOCAL, alias="rig-ephys")
    run = setup.run()
    _assert_catalog_matches(setup, run)
    assert run.kind == RunKind.SCAN
    assert set(Replica.objects.values_list("source", flat=True)) == {ReplicaSource.SCAN}


def test_walking_again_registers_nothing_twice(archive):
    first = archive.run()
    counts = _catalog_counts()

    second = archive.run()

    _assert_catalog_matches(archive, second)
    assert second.pk != first.pk
    assert (second.registered, second.unchanged, second.marked_missing) == (0, len(archive.tree.files), 0)
    assert _catalog_counts() == counts


def _catalog_counts():
    return tuple(model.objects.count() for model in (Subject, Session, RawFile, Replica))


def test_files_that_disappeared_are_marked_missing_not_deleted(archive):
    archive.run()
    tree = archive.tree
    gone_file = "dl59/catgt_dl59_073119_g0/dl59_073119_g0_tcat.nidq.meta"
    gone_session = "dl59/catgt_dl59_073119_1_g0"
    gone = {subpath for subpath in tree.files if subpath == gone_file or subpath.startswith(gone_session)}
    remove(tree, gone_file)
    remove(tree, gone_session)

    run = archive.run()

    assert run.state == RunState.SUCCEEDED
    assert run.marked_missing == len(gone)
    missing = set(Replica.objects.filter(state=ReplicaState.MISSING).values_list("file__subpath", flat=True))
    assert missing == gone
    assert RawFile.objects.count() == len(tree.files) + len(gone)

    # Files put back are present again.
    ephys_tree(tree.root)
    third = archive.run()
    assert (third.registered, third.marked_missing) == (len(gone), 0)
    assert not Replica.objects.filter(state=ReplicaState.MISSING).exists()


def test_a_folder_that_vanishes_mid_walk_is_reported_not_fatal(archive):
    archive.run()
    vanishing = "dl59/catgt_dl59_073119_1_g0"
    in_it = {subpath for subpath in archive.tree.files if subpath.startswith(vanishing)}
    folders_in_it = {folder for folder in archive.tree.folders if folder.startswith(vanishing)}

    def vanish_once_listed_parent(progress):
        if progress.folder == "dl59" and (archive.tree.root / vanishing).exists():
            shutil.rmtree(archive.tree.root / vanishing)

    run = archive.run(on_progress=vanish_once_listed_parent)

    assert run.state == RunState.SUCCEEDED
    vanished = UnmatchedPath.objects.get(run=run, category=UnmatchedCategory.VANISHED)
    assert (vanished.subpath, vanished.is_folder) == (vanishing, True)
    assert "disappeared" in vanished.reason
    assert run.marked_missing == len(in_it)
    missing = Replica.objects.filter(state=ReplicaState.MISSING).values_list("file__subpath", flat=True)
    assert set(missing) == in_it
    assert run.directories_listed == len(archive.tree.folders) - len(folders_in_it)


def test_folders_that_cannot_be_read_keep_their_copies(tmp_path, monkeypatch):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    setup.run()
    locked = str(setup.tree.root / "tw5")
    scandir = walk.os.scandir

    def permission_denied_on_tw5(path):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(walk.os, "scandir", permission_denied_on_tw5)
    run = setup.run()

    assert run.state == RunState.SUCCEEDED
    assert UnmatchedPath.objects.get(run=run, category=UnmatchedCategory.UNREADABLE).subpath == "tw5"
    assert run.marked_missing == 0
    assert not Replica.objects.filter(state=ReplicaState.MISSING).exists()


def test_bursts_of_503_are_retried(tmp_path, fake_transfer, transfer_client):
    setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, transfer_client)
    # More than globus-sdk retries on its own (5), fewer than it and the walk together.
    fake_transfer.fail_next(8, status=503, path_contains="/ls")
    run = setup.run()

    _assert_catalog_matches(setup, run)
    statuses = [request["status"] for request in fake_transfer.requests_to(LS)]
    assert statuses.count(503) == 8


def test_a_longer_outage_fails_the_run_with_a_message(tmp_path, fake_transfer, transfer_client):
    setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, transfer_client)
    setup.run()
    fake_transfer.fail_next(1000, status=503, path_contains="/ls")

    run = setup.run()

    assert run.state == RunState.FAILED
    assert "Globus is unavailable (503" in run.error_message
    assert run.finished_at is not None
    assert not Replica.objects.filter(state=ReplicaState.MISSING).exists()


def test_a_missing_root_fails_the_run(tmp_path):
    location = StorageLocationFactory(role=LocationRole.ARCHIVE, local_path=str(tmp_path / "not-mounted"))
    run, _ = discovery.request_run(location=location)
    run = discovery.execute_run(run.pk)
    assert run.state == RunState.FAILED
    assert "cannot be listed" in run.error_message


def test_an_empty_root_never_marks_everything_missing(tmp_path):
    (tmp_path / "mount").mkdir()
    location = StorageLocationFactory(role=LocationRole.ARCHIVE, local_path=str(tmp_path / "mount"))
    replica = ReplicaFactory(location=location)
    run, _ = discovery.request_run(location=location)

    run = discovery.execute_run(run.pk)

    assert run.state == RunState.FAILED
    assert "Is the storage mounted?" in run.error_message
    replica.refresh_from_db()
    assert replica.state == ReplicaState.PRESENT


def test_copies_recorded_by_transfers_during_the_walk_are_left_alone(archive):
    archive.run()
    before = ReplicaFactory(
        location=archive.location, file=RawFileFactory(subpath="dl59/catgt_dl59_073119_g0/old.nidq.bin")
    )
    during = []

    def transfer_records_a_copy(progress):
        if progress.folder == "tw5" and not during:
            # An archive job finishes a file in a folder the walk has already passed.
            during.append(
                ReplicaFactory(
                    location=archive.location,
                    file=RawFileFactory(subpath="dl59/catgt_dl59_073119_g0/new.nidq.bin"),
                    source=ReplicaSource.ARCHIVE,
                )
            )

    run = archive.run(on_progress=transfer_records_a_copy)

    assert run.marked_missing == 1
    before.refresh_from_db()
    during[0].refresh_from_db()
    assert (before.state, during[0].state) == (ReplicaState.MISSING, ReplicaState.PRESENT)


# ---------------------------------------------------------------------------- resuming


def test_a_run_interrupted_by_a_crash_carries_on_and_totals_are_right(archive):
    listed = []

    def crash_midway(progress):
        listed.append(progress.folder)
        if len(listed) == 12:
            raise Crash()

    with pytest.raises(Crash):
        archive.run(batch_size=5, on_progress=crash_midway)
    run = DiscoveryRun.objects.get()
    assert run.state == RunState.RUNNING
    assert run.cursor["pending"]
    assert 0 < run.directories_listed < 12
    calls_before = archive.ls_calls()

    with pytest.raises(discovery.RunNotClaimed, match="another process"):
        archive.resume(run)  # its worker may still be alive: too early to take over
    DiscoveryRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    run = archive.resume(run, batch_size=5)

    _assert_catalog_matches(archive, run)
    assert run.registered == len(archive.tree.files)
    assert run.unchanged == 0
    if archive.fake:
        assert archive.ls_calls() - calls_before < len(archive.tree.folders)


def test_a_run_taken_over_stops_its_first_worker(archive):
    def take_over_midway(progress):
        if progress.folder == "dl59":
            DiscoveryRun.objects.update(claim="other-worker")

    run = archive.run(batch_size=1, on_progress=take_over_midway)
    assert (run.state, run.claim) == (RunState.RUNNING, "other-worker")


def test_a_run_past_its_deadline_is_handed_back_and_carried_on(archive):
    run = archive.run(deadline=time.monotonic() - 1)
    assert (run.state, run.directories_listed) == (RunState.QUEUED, 1)
    assert run.cursor["pending"]
    attempts = 1
    while run.state == RunState.QUEUED:
        run = archive.resume(run, deadline=time.monotonic() - 1)
        attempts += 1
    _assert_catalog_matches(archive, run)
    assert attempts == len(archive.tree.folders)


def test_the_worker_task_carries_on_in_slices(tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    monkeypatch.setattr(discovery_tasks, "_time_budget", lambda: -1)
    with django_capture_on_commit_callbacks(execute=True):
        run, created = discovery.queue_run(location=setup.location)
    assert created and OrmQ.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        outcome = discovery_tasks.run_discovery(run.pk)
    assert outcome == f"Run #{run.pk} queued."
    assert OrmQ.objects.count() == 2  # the continuation

    monkeypatch.setattr(discovery_tasks, "_time_budget", lambda: 600)
    assert discovery_tasks.run_discovery(run.pk) == f"Run #{run.pk} succeeded."
    _assert_catalog_matches(setup, DiscoveryRun.objects.get())
    assert discovery_tasks.run_discovery(run.pk) == f"Run #{run.pk} is already succeeded."


def test_one_unfinished_run_per_location(tmp_path):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    first, created = discovery.request_run(location=setup.location)
    again, created_again = discovery.request_run(location=setup.location)
    assert (created, created_again, again.pk) == (True, False, first.pk)


# -------------------------------------------------------------------------- the walkers


def test_walks_yield_one_listing_per_folder_and_resume_from_pending(tmp_path, fake_transfer, transfer_client):
    globus_setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, transfer_client)
    fs_location = StorageLocationFactory(local_path=str(globus_setup.tree.root))
    for make in (
        lambda pending=None: walk_filesystem(fs_location, pending=pending),
        lambda pending=None: walk_globus(transfer_client, globus_setup.location, pending=pending, **NO_WAIT),
    ):
        listings = list(make())
        assert [listing.subpath for listing in listings][:3] == ["", "SC026", "SC026/catgt_SC026_080219_g0"]
        assert {listing.subpath for listing in listings} == globus_setup.tree.folders
        walk = make()
        first = [next(iter(walk)) for _ in range(4)]
        rest = list(make(pending=walk.pending))
        assert [listing.subpath for listing in first + rest] == [listing.subpath for listing in listings]


# ---------------------------------------------------------------------------- commands


def _call(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_scan_local_walks_in_the_foreground_and_summarizes(tmp_path):
    setup = _filesystem(tmp_path, LocationRole.LOCAL, alias="rig-ephys")
    out, err = _call("scan_local", "rig-ephys")

    run = DiscoveryRun.objects.get()
    _assert_catalog_matches(setup, run)
    assert f"Run #{run.pk} (local scan of rig-ephys): succeeded" in out
    assert re.search(rf"copies registered +{len(setup.tree.files)}\n", out)
    assert "Unmatched paths by reason:" in out
    assert "Hidden file or folder: 3" in out
    assert "scratch/ — Top-level folder 'scratch' is not a water restriction number" in out
    assert "folders" in err and "files" in err


def test_discover_archive_uses_the_portals_globus_client(tmp_path, fake_transfer, monkeypatch, settings):
    auth = FakeGlobusAuth(clients={"portal-client": "portal-secret"})
    auth.start()
    try:
        fake_transfer.auth = auth
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", auth.url)
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", fake_transfer.url)
        settings.GLOBUS_CLIENT_ID, settings.GLOBUS_CLIENT_SECRET = "portal-client", "portal-secret"
        setup = _globus(tmp_path, LocationRole.ARCHIVE, fake_transfer, None)

        out, _ = _call("discover_archive", "ephys-archive")
    finally:
        auth.stop()
    _assert_catalog_matches(setup, DiscoveryRun.objects.get())
    assert "(archive discovery of ephys-archive): succeeded" in out
    assert {request["auth"] for request in fake_transfer.requests_to(LS)} == {"Bearer"}


def test_commands_exit_non_zero_when_the_walk_cannot_finish(tmp_path):
    StorageLocationFactory(
        alias="ephys-archive", role=LocationRole.ARCHIVE, local_path=str(tmp_path / "gone")
    )
    with pytest.raises(CommandError, match="did not finish: The root of ephys-archive"):
        _call("discover_archive", "ephys-archive")


def test_commands_refuse_the_other_role_and_unknown_aliases(tmp_path):
    _filesystem(tmp_path, LocationRole.LOCAL, alias="rig-ephys")
    with pytest.raises(CommandError, match="rig-ephys is a local location; walk it with scan_local"):
        _call("discover_archive", "rig-ephys")
    with pytest.raises(CommandError, match="no storage location 'nope'. Local locations: rig-ephys"):
        _call("scan_local", "nope")


def test_queue_hands_the_run_to_the_workers_and_prints_its_id(tmp_path, django_capture_on_commit_callbacks):
    _filesystem(tmp_path, LocationRole.ARCHIVE)
    with django_capture_on_commit_callbacks(execute=True):
        out, err = _call("discover_archive", "ephys-archive", "--queue")
    run = DiscoveryRun.objects.get()
    assert out.strip() == str(run.pk)
    assert run.state == RunState.QUEUED
    assert f"Queued run #{run.pk}" in err
    assert OrmQ.objects.count() == 1


def test_a_live_run_is_not_walked_twice_unless_taken_over(tmp_path):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    run, _ = discovery.request_run(location=setup.location)
    discovery.claim_run(run.pk)  # another process is on it
    with pytest.raises(CommandError, match="another process.*--take-over"):
        _call("discover_archive", "ephys-archive")
    out, _ = _call("discover_archive", "ephys-archive", "--take-over")
    assert "succeeded" in out


# ------------------------------------------------------------------------------- pages


def test_the_run_list_shows_runs_and_offers_admins_a_start_button(tmp_path, client, viewer, admin_user):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    setup.run()
    client.force_login(viewer)
    page = client.get(reverse("transfers:discovery_runs")).content.decode()
    assert "ephys-archive" in page and "Start a run" not in page
    client.force_login(admin_user)
    page = client.get(reverse("transfers:discovery_runs")).content.decode()
    assert "Start a run" in page


def test_admins_start_runs_others_may_not(
    tmp_path, client, archivist, admin_user, django_capture_on_commit_callbacks
):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    url = reverse("transfers:discovery_start")
    client.force_login(archivist)
    refused = client.post(url, {"location": setup.location.pk})
    assert refused["Location"] == reverse("transfers:discovery_runs")
    assert not DiscoveryRun.objects.exists()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"location": setup.location.pk})
    run = DiscoveryRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("transfers:discovery_run", args=[run.pk])
    assert (run.requested_by, run.state) == (admin_user, RunState.QUEUED)
    assert OrmQ.objects.count() == 1
    again = client.post(url, {"location": setup.location.pk}, follow=True)
    assert "already queued" in again.content.decode()
    assert DiscoveryRun.objects.count() == 1


def test_the_run_page_shows_progress_and_unmatched_paths(tmp_path, client, viewer):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    run = setup.run()
    client.force_login(viewer)
    url = reverse("transfers:discovery_run", args=[run.pk])

    page = client.get(url).content.decode()
    assert "Hidden file or folder" in page
    assert "scratch/" in page and "is not a water restriction number" in page
    assert "hx-get" not in page  # final: nothing to poll

    hidden_only = client.get(url, {"category": "hidden"}).content.decode()
    assert ".DS_Store" in hidden_only and "scratch/" not in hidden_only

    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment["HX-Refresh"] == "true"


def test_the_progress_of_a_running_run_polls_every_two_seconds(tmp_path, client, viewer):
    setup = _filesystem(tmp_path, LocationRole.ARCHIVE)
    run, _ = discovery.request_run(location=setup.location)
    discovery.claim_run(run.pk)
    client.force_login(viewer)
    fragment = client.get(reverse("transfers:discovery_run", args=[run.pk]), headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert 'hx-trigger="every 2s' in body
    assert "HX-Refresh" not in fragment
    assert "<html" not in body
