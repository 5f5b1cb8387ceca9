"""Data-safety checks: the ways a transfer could be lost, miscounted or counted
as a success it was not, each shown against the loopback Globus fake over real
HTTP or real directories."""

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from catalog.models import (
    DiscoveryRun,
    LocationRole,
    Replica,
    ReplicaState,
    RunKind,
    RunState,
    UnmatchedCategory,
)
from catalog.registry import FileRecord, Registry
from tests.factories import SessionFactory
from tests.transfer_factories import (
    add_files,
    archived_session,
    ensure_file_types,
    fake_transfer_client,
    filesystem_location,
    point_sdk_at,
    start_globus,
    stop_globus,
)
from transfers import jobs as runner
from transfers.backends.globus import GlobusBackend
from transfers.errors import ConsentRequired, PermanentError, TransientError
from transfers.models import ItemState, JobState, TaskState, TransferJob
from transfers.services import cancel_job, request_archive, request_retrieval

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path, monkeypatch, settings):
    world = start_globus(tmp_path, auth=False)
    point_sdk_at(world, monkeypatch, settings)
    yield world
    stop_globus(world)


@pytest.fixture
def backend(world):
    return GlobusBackend(fake_transfer_client(world.transfer))


@pytest.fixture
def places(world):
    return world.location("rig-globus"), world.location("petrel", role=LocationRole.ARCHIVE)


def archive_job(world, local, user, *, count):
    session = SessionFactory()
    files = add_files(session, local, count=count, size=10, on_disk=world.directory(local))
    [job] = request_archive(session=session, user=user)
    return job, files


class AnswerLost(GlobusBackend):
    """Globus creates the task, but its answer never reaches the portal."""

    def submit(self, job, task):
        super().submit(job, task)
        raise TransientError("Globus is unavailable (the connection dropped).")


# ------------------------------------------------------------ cancellation


def test_a_cancel_after_a_lost_submit_answer_stops_the_task_globus_made(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=AnswerLost(backend.client))
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    [globus_task] = world.transfer.tasks
    assert globus_task["status"] == "ACTIVE"

    cancel_job(job=job, user=archivist)
    job.refresh_from_db()
    # A job whose task may be running at Globus is not canceled on the portal's word alone.
    assert job.state != JobState.CANCELED
    runner.submit_job(job.pk, backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert [task["status"] for task in world.transfer.tasks] == ["FAILED"]
    assert world.transfer.tasks[0]["fatal_error"]["code"] == "CANCELED"
    assert not Replica.objects.filter(location=archive).exists()


def test_a_cancel_during_submission_starts_no_further_tasks(world, places, backend, archivist, settings):
    settings.PORTAL_TASK_MAX_FILES = 1
    local, _ = places
    job, _ = archive_job(world, local, archivist, count=3)

    class UserCancelsMeanwhile(GlobusBackend):
        def submit(self, job, task):
            task_id = super().submit(job, task)
            cancel_job(job=TransferJob.objects.get(pk=job.pk), user=archivist)
            return task_id

    runner.submit_job(job.pk, backend=UserCancelsMeanwhile(backend.client))
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert len(world.transfer.tasks) == 1
    assert world.transfer.tasks[0]["fatal_error"]["code"] == "CANCELED"
    assert set(job.tasks.values_list("state", flat=True)) == {TaskState.CANCELED}
    assert not job.items.filter(state=ItemState.PENDING).exists()


# ------------------------------------------------------------- giving up


def test_a_job_given_up_mid_submission_still_records_its_running_task(
    world, places, backend, archivist, settings
):
    settings.PORTAL_TASK_MAX_FILES = 1
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)

    class SecondNeverGoesThrough(GlobusBackend):
        def submit(self, job, task):
            if task.number == 2:
                raise TransientError("Globus is unavailable (503).")
            return super().submit(job, task)

    runner.submit_job(job.pk, backend=SecondNeverGoesThrough(backend.client))
    TransferJob.objects.filter(pk=job.pk).update(
        attempts=runner.MAX_ATTEMPTS, retry_at=timezone.now() - timedelta(seconds=1)
    )
    runner.requeue_due_jobs()
    world.transfer.run_tasks()
    runner.poll_active_jobs(backend=backend)

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "gave_up")
    # The first task ran at Globus: what it copied is known to the catalog.
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]
    assert job.items.get(file=files[0]).state == ItemState.SUCCEEDED
    assert job.items.get(file=files[1]).state == ItemState.FAILED
    assert set(job.tasks.values_list("state", flat=True)) == {TaskState.SUCCEEDED, TaskState.FAILED}


# ------------------------------------------------------------ verification


def test_a_globus_retrieval_verifies_checksums(world, backend, viewer):
    archive = world.location("petrel", role=LocationRole.ARCHIVE)
    scratch = world.location("scratch", writable=True)
    session, _ = archived_session(archive, count=2, on_disk=world.directory(archive))
    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)
    runner.submit_job(job.pk, backend=backend)
    [task] = world.transfer.tasks
    assert (task["sync_level"], task["verify_checksum"]) == (0, True)


def test_a_local_file_that_changed_size_since_its_scan_is_not_archived(tmp_path, archivist):
    local = filesystem_location(tmp_path, "rig-1")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    files = add_files(session, local, count=2, size=100, on_disk=local.local_path)
    truncated = Path(local.local_path) / files[0].subpath
    truncated.write_bytes(truncated.read_bytes()[:60])
    [job] = request_archive(session=session, user=archivist)

    runner.submit_job(job.pk)
    runner.run_filesystem_job(job.pk)

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "100" in job.error_message and "60" in job.error_message
    assert not (Path(archive.local_path) / files[0].subpath).exists()
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[1].pk]
    files[0].refresh_from_db()
    assert not files[0].checksum


# ---------------------------------------------------------------- counters


def test_a_slow_poller_does_not_overwrite_the_counts_of_a_finished_task(
    world, places, backend, archivist, settings
):
    settings.PORTAL_TASK_MAX_FILES = 1
    local, _ = places
    job, _ = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    first, second = job.tasks.order_by("number")

    class OvertakenPoller(GlobusBackend):
        def poll(self, tasks):
            statuses = super().poll(tasks)
            # Meanwhile another poller sees the first task end and records it.
            world.transfer.run_tasks(first.task_id)
            runner.poll_jobs([job], backend=backend)
            return statuses

    runner.poll_jobs([job], backend=OvertakenPoller(backend.client))
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (job.files_done, job.bytes_done) == (2, 20)
    first.refresh_from_db()
    assert (first.files_done, first.nice_status) != (0, "Queued")
    assert first.files_done == 1


# ------------------------------------------------------- filesystem errors


def test_a_destination_folder_that_cannot_be_made_fails_the_items_in_words(tmp_path, viewer):
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session, files = archived_session(archive, count=2, on_disk=archive.local_path)
    # A file sits where the subject's folder should be.
    blocker = Path(scratch.local_path) / files[0].subpath.split("/")[0]
    blocker.write_bytes(b"not a folder")
    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)

    runner.submit_job(job.pk)
    runner.run_filesystem_job(job.pk)

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "copy_failed")
    assert files[0].subpath in job.error_message
    assert set(job.items.values_list("state", flat=True)) == {ItemState.FAILED}
    assert blocker.read_bytes() == b"not a folder"
    assert not Replica.objects.filter(location=scratch).exists()


# ---------------------------------------------------------------- discovery


def test_a_copy_a_transfer_recorded_during_a_scan_is_not_lost_to_the_scans_older_listing(tmp_path):
    ensure_file_types()
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session = SessionFactory()
    [file] = add_files(session, scratch, count=1, size=100)
    started = timezone.now() - timedelta(seconds=10)
    run = DiscoveryRun.objects.create(
        location=scratch, kind=RunKind.SCAN, state=RunState.RUNNING, claim="scan", started_at=started
    )
    # The scan listed the folder while Globus was still writing the file (60 of 100 bytes);
    # then the retrieval ended and recorded its copy, before the scan's batch was written.
    Replica.objects.filter(file=file).update(updated_at=timezone.now())

    result = Registry(scratch, run=run).register([FileRecord(file.subpath, 60)])

    assert Replica.objects.get(file=file, location=scratch).state == ReplicaState.PRESENT
    assert result.marked_missing == 0
    assert [skipped.category for skipped in result.unmatched] == [UnmatchedCategory.SIZE_CONFLICT]


def test_a_copy_of_the_wrong_size_seen_by_a_scan_is_still_marked_missing(tmp_path):
    ensure_file_types()
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    [file] = add_files(SessionFactory(), scratch, count=1, size=100)
    Replica.objects.filter(file=file).update(updated_at=timezone.now() - timedelta(days=1))
    run = DiscoveryRun.objects.create(
        location=scratch, kind=RunKind.SCAN, state=RunState.RUNNING, claim="scan", started_at=timezone.now()
    )

    result = Registry(scratch, run=run).register([FileRecord(file.subpath, 60)])

    assert Replica.objects.get(file=file, location=scratch).state == ReplicaState.MISSING
    assert result.marked_missing == 1


def test_a_partial_file_left_by_a_killed_copy_run_is_cleared_by_the_next(tmp_path, archivist, settings):
    local = filesystem_location(tmp_path, "rig-1")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    [file] = add_files(session, local, count=1, size=100, on_disk=local.local_path)
    destination = Path(archive.local_path) / file.subpath
    destination.parent.mkdir(parents=True)
    leftover = destination.with_name(f".{destination.name}.partial-{'0' * 32}")
    leftover.write_bytes(b"half a file")
    long_ago = time.time() - 2 * settings.Q_CLUSTER["timeout"]
    os.utime(leftover, (long_ago, long_ago))
    # Another run's copy still being written is left alone.
    live = destination.with_name(f".{destination.name}.partial-{'1' * 32}")
    live.write_bytes(b"being written")
    [job] = request_archive(session=session, user=archivist)

    runner.submit_job(job.pk)
    runner.run_filesystem_job(job.pk)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert not leftover.exists()
    assert live.exists()
    assert destination.read_bytes() == (Path(local.local_path) / file.subpath).read_bytes()


# ------------------------------------------------------- tasks Globus forgot


def forget_task(world, task_id):
    """Globus no longer knows the task: it is in neither task_list nor task/<id>."""
    with world.transfer._lock:
        del world.transfer._tasks[task_id]


def test_a_task_globus_no_longer_knows_fails_instead_of_keeping_its_job_active(
    world, places, backend, archivist
):
    local, archive = places
    job, _ = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    [task] = job.tasks.all()
    forget_task(world, task.task_id)

    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    task.refresh_from_db()
    assert job.state == JobState.FAILED
    assert (task.state, task.error_code) == (TaskState.FAILED, "task_unknown")
    assert task.task_id in task.error_message and "discovery" in task.error_message
    assert job.error_code == "task_unknown"
    assert not job.items.filter(state=ItemState.PENDING).exists()
    assert world.calls(f"task/{task.task_id}", "GET") >= 1


def test_a_task_missing_from_the_task_list_is_looked_up_on_its_own(world, places, backend, archivist):
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    [task] = job.tasks.all()
    world.transfer.run_tasks()

    class ListMissesIt(GlobusBackend):
        def poll(self, tasks):
            real_task_list = self.client.task_list
            self.client.task_list = lambda **kwargs: []
            try:
                return super().poll(tasks)
            finally:
                self.client.task_list = real_task_list

    runner.poll_jobs([job], backend=ListMissesIt(backend.client))

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert Replica.objects.filter(location=archive).count() == 2


def test_a_failed_look_up_of_a_missing_task_is_tried_again_later(world, places, backend, archivist):
    local, _ = places
    job, _ = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    [task] = job.tasks.all()
    forget_task(world, task.task_id)
    world.transfer.fail_next(20, status=503, path_contains=f"/task/{task.task_id}")

    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    task.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert task.state == TaskState.ACTIVE


# ------------------------------------------------ giving up after a lost answer


def lose_first_answer(world, local, archivist, backend, settings):
    """A two-task job whose first task Globus made though its answer was lost."""
    settings.PORTAL_TASK_MAX_FILES = 1
    job, files = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=AnswerLost(backend.client))
    TransferJob.objects.filter(pk=job.pk).update(
        attempts=runner.MAX_ATTEMPTS, retry_at=timezone.now() - timedelta(seconds=1)
    )
    return job, files


def test_giving_up_first_recovers_a_task_whose_submit_answer_was_lost(
    world, places, backend, archivist, settings
):
    local, archive = places
    job, files = lose_first_answer(world, local, archivist, backend, settings)
    [globus_task] = world.transfer.tasks

    runner.requeue_due_jobs(backend=backend)
    world.transfer.run_tasks()
    runner.poll_active_jobs(backend=backend)

    job.refresh_from_db()
    first, second = job.tasks.order_by("number")
    assert first.task_id == globus_task["task_id"]
    assert len(world.transfer.tasks) == 1
    assert (job.state, job.error_code) == (JobState.FAILED, "gave_up")
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]
    assert (first.state, second.state) == (TaskState.SUCCEEDED, TaskState.FAILED)
    assert not job.items.filter(state=ItemState.PENDING).exists()


def test_a_task_that_may_run_at_globus_is_kept_while_it_cannot_be_recovered(
    world, places, backend, archivist, settings
):
    local, archive = places
    job, files = lose_first_answer(world, local, archivist, backend, settings)
    world.transfer.fail_next(50, status=503, path_contains="/transfer")

    runner.requeue_due_jobs(backend=backend)

    job.refresh_from_db()
    first = job.tasks.get(number=1)
    assert job.state not in (JobState.FAILED, JobState.CANCELED)
    assert first.state == TaskState.NEW and first.submission_id
    assert job.retry_at > timezone.now()

    world.transfer.clear_faults()
    TransferJob.objects.filter(pk=job.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    runner.requeue_due_jobs(backend=backend)
    world.transfer.run_tasks()
    runner.poll_active_jobs(backend=backend)

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "gave_up")
    assert len(world.transfer.tasks) == 1
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]


# ------------------------------------------- a later task refused for good


def test_a_refused_later_task_does_not_lose_what_an_earlier_task_copied(
    world, places, backend, archivist, settings
):
    settings.PORTAL_TASK_MAX_FILES = 1
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)

    class SecondRefused(GlobusBackend):
        def submit(self, job, task):
            if task.number == 2:
                # Meanwhile the first task finished at Globus.
                world.transfer.run_tasks()
                raise PermanentError("ClientError.Forbidden: no permission", code="ClientError.Forbidden")
            return super().submit(job, task)

    runner.submit_job(job.pk, backend=SecondRefused(backend.client))

    job.refresh_from_db()
    first, second = job.tasks.order_by("number")
    assert (job.state, job.error_code) == (JobState.FAILED, "ClientError.Forbidden")
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]
    assert job.items.get(file=files[0]).state == ItemState.SUCCEEDED
    assert (first.state, second.state) == (TaskState.SUCCEEDED, TaskState.FAILED)
    assert not job.items.filter(state=ItemState.PENDING).exists()


def test_a_refused_later_task_leaves_a_task_it_cannot_stop_to_the_poller(
    world, places, backend, archivist, settings
):
    settings.PORTAL_TASK_MAX_FILES = 1
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)

    class SecondRefusedCancelLost(GlobusBackend):
        def submit(self, job, task):
            if task.number == 2:
                raise PermanentError("ClientError.Forbidden: no permission", code="ClientError.Forbidden")
            return super().submit(job, task)

        def cancel(self, task):
            raise TransientError("Globus is unavailable (503).")

    runner.submit_job(job.pk, backend=SecondRefusedCancelLost(backend.client))
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert job.tasks.get(number=1).state == TaskState.ACTIVE

    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "ClientError.Forbidden")
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]
    assert not job.items.filter(state=ItemState.PENDING).exists()


# ------------------------------------------- canceling a job parked for a login


def park(job):
    assert TransferJob.transition(
        job.pk, from_states={JobState.ACTIVE}, to_state=JobState.NEEDS_LOGIN, nice_status="Waiting for login"
    )


def test_canceling_a_parked_job_records_what_its_running_task_copied(
    world, places, backend, archivist, monkeypatch
):
    monkeypatch.setattr("transfers.backends.globus.transfer_client_for_job", lambda job: backend.client)
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    park(job)
    world.transfer.run_tasks()

    job = cancel_job(job=job, user=archivist)

    assert job.is_final
    assert not job.tasks.filter(state=TaskState.ACTIVE).exists()
    assert Replica.objects.filter(location=archive).count() == 2
    assert not job.items.filter(state=ItemState.PENDING).exists()


def test_canceling_a_parked_job_with_an_unsent_task_ends_every_task(
    world, places, backend, archivist, monkeypatch, settings
):
    settings.PORTAL_TASK_MAX_FILES = 1
    monkeypatch.setattr("transfers.backends.globus.transfer_client_for_job", lambda job: backend.client)
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)

    class SecondNeedsConsent(GlobusBackend):
        def submit(self, job, task):
            if task.number == 2:
                world.transfer.run_tasks()
                raise ConsentRequired("Globus needs your consent.")
            return super().submit(job, task)

    runner.submit_job(job.pk, backend=SecondNeedsConsent(backend.client))
    job.refresh_from_db()
    assert job.state == JobState.NEEDS_LOGIN

    cancel_job(job=job, user=archivist)
    runner.submit_job(job.pk, backend=backend)

    job.refresh_from_db()
    assert job.is_final
    assert not job.tasks.filter(state__in=[TaskState.NEW, TaskState.ACTIVE]).exists()
    assert list(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == [files[0].pk]
    assert not job.items.filter(state=ItemState.PENDING).exists()
    assert len(world.transfer.tasks) == 1


# ------------------------------------------------------------- canceled tasks


def test_the_tasks_of_a_job_canceled_before_submission_show_as_canceled(world, places, archivist, client):
    local, _ = places
    job, _ = archive_job(world, local, archivist, count=2)

    cancel_job(job=job, user=archivist)

    [task] = job.tasks.all()
    assert (task.state, task.get_state_display()) == (TaskState.CANCELED, "Canceled")
    assert task.finished_at is not None
    assert not job.items.filter(state=ItemState.PENDING).exists()
    client.force_login(archivist)
    page = client.get(f"/transfers/jobs/{job.pk}/").content.decode()
    assert "Failed" not in page


def test_a_canceled_filesystem_copy_leaves_its_task_canceled(tmp_path, archivist):
    local = filesystem_location(tmp_path, "rig-1")
    filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=2, size=10, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    runner.submit_job(job.pk)
    TransferJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    runner.run_filesystem_job(job.pk)

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert set(job.tasks.values_list("state", flat=True)) == {TaskState.CANCELED}


# --------------------------------------------- a file the archive holds already


def ls_calls(world, location):
    return world.calls(f"operation/endpoint/{location.collection_id}/ls")


def test_an_archive_never_replaces_a_file_the_catalog_does_not_know_at_the_archive(
    world, places, backend, archivist
):
    local, archive = places
    job, files = archive_job(world, local, archivist, count=3)
    stranger = world.path_of(archive, files[0])
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"an older recording")

    runner.submit_job(job.pk, backend=backend)
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    assert stranger.read_bytes() == b"an older recording"
    assert ls_calls(world, archive) == 1
    blocked = job.items.get(file=files[0])
    assert blocked.state == ItemState.FAILED
    assert "already holds a different file" in blocked.error_message and "discovery" in blocked.error_message
    assert set(Replica.objects.filter(location=archive).values_list("file_id", flat=True)) == {
        files[1].pk,
        files[2].pk,
    }
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert files[0].subpath in job.error_message
    [globus_task] = world.transfer.tasks
    assert globus_task["files"] == 2


def test_a_task_whose_every_file_is_already_at_the_archive_is_not_sent(world, places, backend, archivist):
    local, archive = places
    job, files = archive_job(world, local, archivist, count=2)
    for file in files:
        path = world.path_of(archive, file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"something else")

    runner.submit_job(job.pk, backend=backend)
    runner.poll_active_jobs(backend=backend)

    job.refresh_from_db()
    assert not world.transfer.tasks
    assert job.state == JobState.FAILED
    assert job.tasks.get().state == TaskState.FAILED
    assert not job.items.exclude(state=ItemState.FAILED).exists()
    assert not Replica.objects.filter(location=archive).exists()


def test_an_archive_into_a_folder_not_yet_at_the_archive_lists_it_once(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_job(world, local, archivist, count=3)

    runner.submit_job(job.pk, backend=backend)
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert ls_calls(world, archive) == 1
    assert Replica.objects.filter(location=archive).count() == 3
