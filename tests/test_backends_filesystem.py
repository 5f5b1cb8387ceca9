"""The filesystem backend copies real files under tmp_path, verifies them and
never overwrites; jobs run through it end to end in the test process."""

import hashlib
import os

import pytest
from django.utils import timezone

from catalog.models import LocationRole, RawFile, Replica, ReplicaSource
from tests.factories import SessionFactory
from tests.transfer_factories import add_files, archived_session, content_of, filesystem_location
from transfers import jobs as runner
from transfers.backends import backend_for
from transfers.backends.filesystem import CopyOutcome, FilesystemBackend, parse_checksum
from transfers.models import ItemState, JobState, TaskState, TransferJob
from transfers.services import cancel_job, request_archive, request_retrieval

pytestmark = pytest.mark.django_db


@pytest.fixture
def fs(tmp_path):
    local = filesystem_location(tmp_path, "rig-1")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    return local, archive


def on_disk(location, file):
    return os.path.join(location.local_path, file.subpath)


def run(job):
    """What the workers do: submit, then copy."""
    runner.submit_job(job.pk)
    runner.run_filesystem_job(job.pk)
    job.refresh_from_db()
    return job


def test_copy_writes_verifies_and_keeps_the_modification_time(fs):
    local, archive = fs
    session = SessionFactory()
    [file] = add_files(session, local, count=1, size=5000, on_disk=local.local_path)
    os.utime(on_disk(local, file), (1_500_000_000, 1_500_000_000))

    result = FilesystemBackend().copy(local, archive, file.subpath)

    assert result.outcome == CopyOutcome.COPIED
    data = content_of(file.subpath, 5000)
    assert result.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    with open(on_disk(archive, file), "rb") as copied:
        assert copied.read() == data
    assert os.stat(on_disk(archive, file)).st_mtime == 1_500_000_000
    leftovers = [name for name in os.listdir(os.path.dirname(on_disk(archive, file))) if ".partial-" in name]
    assert leftovers == []


def test_an_existing_file_is_never_overwritten(fs):
    local, archive = fs
    session = SessionFactory()
    same, different = add_files(session, local, count=2, on_disk=local.local_path)
    for file, data in ((same, content_of(same.subpath, 100)), (different, b"the lab's own notes")):
        os.makedirs(os.path.dirname(on_disk(archive, file)), exist_ok=True)
        with open(on_disk(archive, file), "wb") as existing:
            existing.write(data)

    backend = FilesystemBackend()
    assert backend.copy(local, archive, same.subpath).outcome == CopyOutcome.IDENTICAL
    conflict = backend.copy(local, archive, different.subpath)
    assert conflict.outcome == CopyOutcome.CONFLICT
    assert "left untouched" in conflict.message
    with open(on_disk(archive, different), "rb") as untouched:
        assert untouched.read() == b"the lab's own notes"


def test_a_source_that_no_longer_matches_its_checksum_is_not_copied(fs):
    local, archive = fs
    session = SessionFactory()
    [file] = add_files(session, local, count=1, on_disk=local.local_path)
    result = FilesystemBackend().copy(local, archive, file.subpath, checksum="md5:" + "0" * 32)
    assert result.outcome == CopyOutcome.FAILED
    assert "no longer matches" in result.message
    assert not os.path.exists(on_disk(archive, file))
    assert os.listdir(os.path.dirname(on_disk(archive, file))) == []


def test_missing_source_fails_in_words(fs):
    local, archive = fs
    session = SessionFactory()
    [file] = add_files(session, local, count=1)
    result = FilesystemBackend().copy(local, archive, file.subpath)
    assert result.outcome == CopyOutcome.FAILED
    assert result.message == f"{file.subpath} is missing at rig-1."


def test_checksum_forms():
    assert parse_checksum("sha256:ABCD") == ("sha256", "abcd")
    assert parse_checksum("d41d8cd98f00b204e9800998ecf8427e") == ("md5", "d41d8cd98f00b204e9800998ecf8427e")
    assert parse_checksum("") is None
    assert parse_checksum("crc32:1234") is None


def test_backend_for_picks_the_filesystem(fs):
    local, archive = fs
    assert isinstance(backend_for(TransferJob(source=local, destination=archive)), FilesystemBackend)


def test_archive_job_copies_records_replicas_and_checksums(fs, archivist, settings):
    settings.PORTAL_TASK_MAX_FILES = 2
    local, archive = fs
    session = SessionFactory()
    files = add_files(session, local, count=5, size=300, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    assert job.tasks.count() == 3

    job = run(job)

    assert job.state == JobState.SUCCEEDED
    assert (job.files_done, job.files_skipped, job.bytes_done) == (5, 0, 1500)
    assert set(job.tasks.values_list("state", flat=True)) == {TaskState.SUCCEEDED}
    assert set(job.items.values_list("state", flat=True)) == {ItemState.SUCCEEDED}
    replicas = Replica.objects.filter(location=archive)
    assert replicas.count() == 5
    assert {replica.source for replica in replicas} == {ReplicaSource.ARCHIVE}
    assert all(replica.verified_at for replica in replicas)
    for file in files:
        file.refresh_from_db()
        assert file.checksum == "sha256:" + hashlib.sha256(content_of(file.subpath, 300)).hexdigest()
        with open(on_disk(archive, file), "rb") as copied:
            assert copied.read() == content_of(file.subpath, 300)


def test_retrieval_skips_identical_files_and_fails_on_conflicts(tmp_path, viewer):
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session, files = archived_session(archive, count=3, size=64, on_disk=archive.local_path)
    identical, conflicting, fresh = files
    for file, data in ((identical, content_of(identical.subpath, 64)), (conflicting, b"edited")):
        os.makedirs(os.path.dirname(on_disk(scratch, file)), exist_ok=True)
        with open(on_disk(scratch, file), "wb") as existing:
            existing.write(data)

    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)
    job = run(job)

    assert job.state == JobState.FAILED
    assert job.error_code == "conflict"
    assert conflicting.subpath in job.error_message
    states = dict(job.items.values_list("file_id", "state"))
    assert states == {
        identical.pk: ItemState.SKIPPED,
        conflicting.pk: ItemState.FAILED,
        fresh.pk: ItemState.SUCCEEDED,
    }
    present = set(Replica.objects.filter(location=scratch).values_list("file_id", flat=True))
    assert present == {identical.pk, fresh.pk}
    assert Replica.objects.get(location=scratch, file=fresh).source == ReplicaSource.RETRIEVE
    with open(on_disk(scratch, conflicting), "rb") as untouched:
        assert untouched.read() == b"edited"


def test_a_run_killed_part_way_is_finished_by_the_next_run(fs, archivist, monkeypatch):
    local, archive = fs
    session = SessionFactory()
    add_files(session, local, count=4, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    runner.submit_job(job.pk)
    monkeypatch.setattr(runner, "PROGRESS_FILES", 1)

    class WorkerKilled(BaseException):
        pass

    class DiesAfterTwoCopies(FilesystemBackend):
        copies = 0

        def copy(self, *args, **kwargs):
            if self.copies == 2:
                raise WorkerKilled
            self.copies += 1
            return super().copy(*args, **kwargs)

    with pytest.raises(WorkerKilled):
        runner.run_filesystem_job(job.pk, backend=DiesAfterTwoCopies())
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert job.files_done == 2

    # The copy of the third file may or may not have landed; the next run copes either way.
    runner.run_filesystem_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.files_done + job.files_skipped == 4
    assert Replica.objects.filter(location=archive).count() == 4


def test_cancel_stops_a_filesystem_job_before_its_copy_run(fs, archivist):
    local, archive = fs
    session = SessionFactory()
    add_files(session, local, count=3, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    runner.submit_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE

    job = cancel_job(job=job, user=archivist)
    assert job.cancel_requested and job.state == JobState.ACTIVE
    runner.run_filesystem_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert not Replica.objects.filter(location=archive).exists()
    assert not os.path.exists(os.path.join(archive.local_path, session.subject.water_restriction_number))


def test_a_stalled_copy_run_is_queued_again(fs, archivist, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    local, _ = fs
    session = SessionFactory()
    add_files(session, local, count=1, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    runner.submit_job(job.pk)
    OrmQ.objects.all().delete()
    TransferJob.objects.filter(pk=job.pk).update(retry_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.requeue_due_jobs() == 1
    assert [q.task["func"] for q in OrmQ.objects.all()] == ["transfers.tasks.run_filesystem_job"]


def test_checksum_is_kept_when_already_known(fs, archivist):
    local, archive = fs
    session = SessionFactory()
    [file] = add_files(session, local, count=1, size=10, on_disk=local.local_path)
    known = hashlib.md5(content_of(file.subpath, 10)).hexdigest()  # noqa: S324 - as Globus records it
    RawFile.objects.filter(pk=file.pk).update(checksum=known)
    [job] = request_archive(session=session, user=archivist)
    assert run(job).state == JobState.SUCCEEDED
    file.refresh_from_db()
    assert file.checksum == known


def test_a_long_run_hands_over_to_a_new_run_before_the_worker_timeout(
    fs, archivist, settings, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 0}  # every run's budget is spent after one file
    local, archive = fs
    session = SessionFactory()
    add_files(session, local, count=3, on_disk=local.local_path)
    [job] = request_archive(session=session, user=archivist)
    runner.submit_job(job.pk)
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        assert runner.run_filesystem_job(job.pk) == f"Job {job.pk} goes on in a new run."
    job.refresh_from_db()
    assert (job.state, job.files_done) == (JobState.ACTIVE, 1)
    assert [q.task["func"] for q in OrmQ.objects.all()] == ["transfers.tasks.run_filesystem_job"]

    runner.run_filesystem_job(job.pk)
    assert runner.run_filesystem_job(job.pk) == f"Job {job.pk} succeeded."
    assert Replica.objects.filter(location=archive).count() == 3
