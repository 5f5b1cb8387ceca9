"""The Globus backend and the job runner against Globus: first with
globus-sdk's canned responses, then against the loopback FakeGlobusTransfer
over real HTTP, which validates every body and really copies files."""

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import globus_sdk
import pytest
import responses
from django.utils import timezone
from globus_sdk.testing import get_last_request, get_response_set, load_response

from catalog.models import LocationRole, Replica, ReplicaSource
from tests.factories import SessionFactory
from tests.transfer_factories import (
    add_files,
    archived_session,
    fake_transfer_client,
    fast_retries,
    globus_location,
    point_sdk_at,
    start_globus,
    stop_globus,
)
from transfers import jobs as runner
from transfers.backends.base import TaskOutcome
from transfers.backends.globus import POLL_BATCH, GlobusBackend, status_of, task_label
from transfers.clients import service_transfer_client
from transfers.errors import TransientError
from transfers.models import ItemState, JobState, TaskState, TransferJob, TransferTask
from transfers.services import cancel_job, request_archive, request_retrieval

pytestmark = pytest.mark.django_db


# ------------------------------------------------------ canned responses


@pytest.fixture
def canned(monkeypatch):
    """globus-sdk's canned responses, served by the module-level ``responses`` mock."""
    monkeypatch.delenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", raising=False)
    responses.start()
    yield responses.mock
    responses.stop()
    responses.reset()


@pytest.fixture
def canned_client(canned):
    return fast_retries(globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer("token")))


@pytest.fixture
def globus_archive_job(archivist):
    local = globus_location("rig-globus")
    globus_location("petrel", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=3, size=1000)
    [job] = request_archive(session=session, user=archivist)
    return job


def test_submission_id_is_committed_before_the_transfer_is_submitted(
    canned, canned_client, globus_archive_job
):
    job = globus_archive_job
    ids = get_response_set("transfer.get_submission_id").metadata
    accepted = get_response_set("transfer.submit_transfer").metadata
    load_response("transfer.get_submission_id")
    stored_when_submitted = []

    def submit(request):
        stored_when_submitted.append(TransferTask.objects.get(job=job).submission_id)
        body = {"code": "Accepted", "task_id": accepted["task_id"], "submission_id": ids["submission_id"]}
        return 202, {}, json.dumps(body)

    canned.add_callback("POST", canned_client.base_url + "v0.10/transfer", callback=submit)
    # The archive's folder is listed first: it holds none of the files yet.
    canned.add(
        "GET",
        re.compile(re.escape(canned_client.base_url) + r"v0\.10/operation/endpoint/[^/]+/ls"),
        json={"DATA_TYPE": "file_list", "DATA": [], "length": 0, "total": 0, "offset": 0, "limit": 10000},
    )

    assert runner.submit_job(job.pk, backend=GlobusBackend(canned_client)) == f"Job {job.pk} submitted."

    assert stored_when_submitted == [ids["submission_id"]]
    task = TransferTask.objects.get(job=job)
    assert (task.task_id, task.state) == (accepted["task_id"], TaskState.ACTIVE)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE and job.submitted_at and job.retry_at is None

    body = json.loads(get_last_request().body)
    assert body["submission_id"] == ids["submission_id"]
    assert (body["sync_level"], body["verify_checksum"], body["notify_on_succeeded"]) == (3, True, False)
    deadline = timezone.datetime.fromisoformat(body["deadline"])
    assert abs(deadline - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert body["label"] == task_label(job, task)
    assert body["label"].startswith(f"Portal job {job.pk} Archive ")
    subpaths = sorted(job.items.values_list("file__subpath", flat=True))
    assert [item["source_path"] for item in body["DATA"]] == [f"/ePhys/{path}" for path in subpaths]
    assert [item["destination_path"] for item in body["DATA"]] == [f"/ePhys/{path}" for path in subpaths]


def test_retrieval_never_overwrites(canned, canned_client, viewer):
    archive = globus_location("petrel", role=LocationRole.ARCHIVE)
    scratch = globus_location("scratch", writable=True, root_path="/data/retrieved")
    session, files = archived_session(archive, count=2)
    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)
    load_response("transfer.get_submission_id")
    load_response("transfer.submit_transfer")
    runner.submit_job(job.pk, backend=GlobusBackend(canned_client))
    body = json.loads(get_last_request().body)
    assert body["sync_level"] == 0
    assert body["verify_checksum"] is True and "deadline" not in body
    assert body["DATA"][0]["destination_path"] == f"/data/retrieved/{files[0].subpath}"


def test_poll_reads_the_canned_task_list(canned, canned_client, globus_archive_job):
    job = globus_archive_job
    data = load_response("transfer.task_list").metadata["tasks"][0]
    TransferTask.objects.filter(job=job).update(task_id=data["task_id"], state=TaskState.ACTIVE)
    task = TransferTask.objects.get(job=job)
    statuses = GlobusBackend(canned_client).poll([task])
    assert statuses[task.pk].outcome == TaskOutcome.SUCCEEDED
    assert statuses[task.pk].files_done == 1
    query = parse_qs(urlsplit(get_last_request().url).query)
    assert query["filter"] == [f"task_id:{data['task_id']}"]
    assert query["limit"] == ["1"]


def test_successful_transfers_are_read_page_by_page(canned, canned_client, globus_archive_job):
    job = globus_archive_job
    TransferTask.objects.filter(job=job).update(task_id="4c4fd5f4-4b41-11e8-9a6d-0a6d4e044368")
    task = TransferTask.objects.select_related("job__destination").get(job=job)
    subpaths = sorted(job.items.values_list("file__subpath", flat=True))
    url = f"{canned_client.base_url}v0.10/task/{task.task_id}/successful_transfers"
    pages = [(None, subpaths[:2], "2"), ("2", subpaths[2:], None)]
    for marker, page, next_marker in pages:
        canned.add(
            "GET",
            url,
            json={
                "DATA_TYPE": "successful_transfers",
                "marker": marker,
                "next_marker": next_marker,
                "DATA": [
                    {"source_path": f"/ePhys/{path}", "destination_path": f"/ePhys/{path}"} for path in page
                ],
            },
            match=[responses.matchers.query_param_matcher({"marker": marker} if marker else {})],
        )
    assert GlobusBackend(canned_client).successful_paths(task) == subpaths


def test_task_documents_become_statuses():
    failed = status_of(
        {"status": "FAILED", "fatal_error": {"code": "PERMISSION_DENIED", "description": "Permission denied"}}
    )
    assert (failed.outcome, failed.error_code, failed.error_message) == (
        TaskOutcome.FAILED,
        "PERMISSION_DENIED",
        "Permission denied",
    )
    canceled = status_of({"status": "FAILED", "fatal_error": {"code": "CANCELED", "description": "canceled"}})
    assert canceled.outcome == TaskOutcome.CANCELED
    expired = status_of(
        {"status": "INACTIVE", "nice_status": "CREDENTIAL_EXPIRED", "deadline": "2001-01-01T00:00:00"}
    )
    assert (expired.outcome, expired.error_code) == (TaskOutcome.FAILED, "CREDENTIAL_EXPIRED")
    waiting = status_of(
        {"status": "INACTIVE", "nice_status": "PAUSED", "deadline": "2999-01-01T00:00:00+00:00"}
    )
    assert (waiting.outcome, waiting.nice_status) == (TaskOutcome.ACTIVE, "PAUSED")
    active = status_of(
        {"status": "ACTIVE", "nice_status": "OK", "files_transferred": 3, "bytes_transferred": 9}
    )
    assert (active.outcome, active.files_done, active.bytes_done) == (TaskOutcome.ACTIVE, 3, 9)


# ------------------------------------------------ loopback fake over HTTP


@pytest.fixture
def world(tmp_path, monkeypatch, settings):
    world = start_globus(tmp_path, auth=False, successful_transfers_page_size=100)
    point_sdk_at(world, monkeypatch, settings)
    yield world
    stop_globus(world)


@pytest.fixture
def backend(world):
    return GlobusBackend(fake_transfer_client(world.transfer))


@pytest.fixture
def places(world):
    local = world.location("rig-globus")
    archive = world.location("petrel", role=LocationRole.ARCHIVE)
    return local, archive


def archive_session_of(world, local, user, *, count, size=10):
    session = SessionFactory()
    files = add_files(session, local, count=count, size=size, on_disk=world.directory(local))
    [job] = request_archive(session=session, user=user)
    return job, files


def test_a_thousand_files_make_one_task_and_one_replica_each(world, places, backend, archivist):
    local, archive = places
    job, files = archive_session_of(world, local, archivist, count=1000)

    runner.submit_job(job.pk, backend=backend)
    assert world.calls("submission_id") == 1
    assert world.calls("transfer", "POST") == 1
    assert len(world.transfer.tasks) == 1
    assert world.transfer.tasks[0]["label"].startswith(f"Portal job {job.pk} Archive")

    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (job.files_done, job.bytes_done) == (1000, 10_000)
    assert world.calls("task_list") == 1
    assert world.calls(f"task/{job.tasks.get().task_id}/successful_transfers") == 10
    replicas = Replica.objects.filter(location=archive, source=ReplicaSource.ARCHIVE)
    assert replicas.count() == 1000
    assert not replicas.filter(verified_at__isnull=True).exists()
    assert set(job.items.values_list("state", flat=True)) == {ItemState.SUCCEEDED}
    assert world.path_of(archive, files[-1]).read_bytes() == world.path_of(local, files[-1]).read_bytes()


def test_a_job_past_the_limit_is_split_into_labelled_tasks(world, places, backend, archivist, settings):
    settings.PORTAL_TASK_MAX_FILES = 400
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=1000)
    runner.submit_job(job.pk, backend=backend)
    labels = [task["label"] for task in world.transfer.tasks]
    assert [label.split(" Archive")[0] for label in labels] == [
        f"Portal job {job.pk} part {number}" for number in (1, 2, 3)
    ]
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert Replica.objects.filter(location=archive).count() == 1000


def test_polling_batches_task_ids(world, places, backend, archivist):
    local, _ = places
    jobs = []
    for _ in range(POLL_BATCH + 20):
        job, _files = archive_session_of(world, local, archivist, count=1)
        runner.submit_job(job.pk, backend=backend)
        jobs.append(job)
    world.transfer.run_tasks()
    world.transfer.reset_requests()

    assert runner.poll_active_jobs(backend=backend)["polled"] == POLL_BATCH + 20

    requests = world.transfer.requests_to("/v0.10/task_list")
    assert len(requests) == 2
    sizes = sorted(
        len(request["query"]["filter"].removeprefix("task_id:").split(",")) for request in requests
    )
    assert sizes == [20, POLL_BATCH]
    assert not TransferJob.objects.exclude(state=JobState.SUCCEEDED).exists()


def test_skipped_files_of_an_archive_are_recorded_as_present(world, places, backend, archivist):
    local, archive = places
    job, files = archive_session_of(world, local, archivist, count=3)
    runner.submit_job(job.pk, backend=backend)
    # The same bytes reach the archive after the portal listed it (a file it knew
    # of before would not have been sent): Globus' checksum sync skips it.
    already = world.path_of(archive, files[0])
    already.parent.mkdir(parents=True)
    already.write_bytes(world.path_of(local, files[0]).read_bytes())
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)
    job.refresh_from_db()
    assert (job.state, job.files_done, job.files_skipped) == (JobState.SUCCEEDED, 2, 1)
    assert job.items.get(file=files[0]).state == ItemState.SKIPPED
    assert Replica.objects.filter(location=archive).count() == 3


def test_a_retrieval_through_the_fake(world, backend, viewer):
    archive = world.location("petrel", role=LocationRole.ARCHIVE)
    scratch = world.location("scratch", writable=True)
    session, files = archived_session(archive, count=5, on_disk=world.directory(archive))
    existing = world.path_of(scratch, files[0])
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"kept as it is")

    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)
    runner.submit_job(job.pk, backend=backend)
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)

    job.refresh_from_db()
    assert (job.state, job.files_done, job.files_skipped) == (JobState.SUCCEEDED, 4, 1)
    assert existing.read_bytes() == b"kept as it is"
    assert set(Replica.objects.filter(location=scratch).values_list("file_id", flat=True)) == {
        file.pk for file in files[1:]
    }
    assert job.items.get(file=files[0]).state == ItemState.SKIPPED


def test_injected_503s_are_retried_without_failing_the_job(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=2)
    world.transfer.fail_next(2, status=503, path_contains="/transfer")
    runner.submit_job(job.pk, backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert world.calls("transfer", "POST") == 3
    assert len(world.transfer.tasks) == 1

    world.transfer.run_tasks()
    world.transfer.fail_next(50, status=503, path_contains="/task_list")
    runner.poll_active_jobs(backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE  # Globus unreachable: nothing is concluded

    world.transfer.clear_faults()
    runner.poll_active_jobs(backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED


def test_globus_down_at_submission_requeues_with_backoff(world, places, backend, archivist):
    local, _ = places
    job, _ = archive_session_of(world, local, archivist, count=2)
    world.transfer.fail_next(50, status=503, path_contains="/transfer")
    world.transfer.drop_next(1, path_contains="/submission_id")

    assert "will be retried" in runner.submit_job(job.pk, backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.nice_status.startswith("Retrying: Globus is unavailable (503")
    assert job.retry_at > timezone.now()
    task = job.tasks.get()
    assert task.submission_id and not task.task_id
    assert world.transfer.tasks == []

    world.transfer.clear_faults()
    runner.submit_job(job.pk, backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert world.calls("submission_id") == 2  # the dropped one, then one that was answered
    assert [t["task_id"] for t in world.transfer.tasks] == [job.tasks.get().task_id]


def test_a_4xx_fails_the_job_with_the_globus_code(world, places, backend, archivist):
    local, _ = places
    job, _ = archive_session_of(world, local, archivist, count=2)
    world.transfer.fail_next(
        1, status=403, path_contains="/transfer", code="PermissionDenied", message="No write access"
    )
    runner.submit_job(job.pk, backend=backend)
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "PermissionDenied")
    assert "No write access" in job.error_message
    assert world.calls("transfer", "POST") == 1  # a refusal is not retried
    assert set(job.items.values_list("state", flat=True)) == {ItemState.FAILED}


def test_a_failed_globus_task_keeps_its_code_and_message(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    world.transfer.fail_task(job.tasks.get().task_id, "PERMISSION_DENIED", "Permission denied on /ePhys")
    runner.poll_jobs([job], backend=backend)
    job.refresh_from_db()
    assert (job.state, job.error_code, job.error_message) == (
        JobState.FAILED,
        "PERMISSION_DENIED",
        "Permission denied on /ePhys",
    )
    assert not Replica.objects.filter(location=archive).exists()


def test_consent_required_parks_the_job_for_its_user(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=1)
    world.transfer.require_consent(archive.collection_id)
    runner.submit_job(job.pk, backend=backend)
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.NEEDS_LOGIN, "ConsentRequired")
    assert "consent" in job.error_message


def test_a_worker_killed_between_submit_and_commit_makes_no_second_task(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=3)

    class WorkerKilled(BaseException):
        pass

    class DiesAfterSubmitting(GlobusBackend):
        def submit(self, job, task):
            super().submit(job, task)
            raise WorkerKilled

    with pytest.raises(WorkerKilled):
        runner.submit_job(job.pk, backend=DiesAfterSubmitting(backend.client))
    job.refresh_from_db()
    task = job.tasks.get()
    assert job.state == JobState.SUBMITTING
    assert task.submission_id and not task.task_id
    assert len(world.transfer.tasks) == 1

    runner.submit_job(job.pk, backend=backend)

    job.refresh_from_db()
    task.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert len(world.transfer.tasks) == 1
    assert task.task_id == world.transfer.tasks[0]["task_id"]
    assert world.calls("submission_id") == 1
    assert world.calls("transfer", "POST") == 2
    world.transfer.run_tasks()
    runner.poll_jobs([job], backend=backend)
    assert Replica.objects.filter(location=archive).count() == 3


def test_cancel_through_globus(world, places, backend, archivist):
    local, archive = places
    job, _ = archive_session_of(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    TransferJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    runner.poll_jobs([job], backend=backend)
    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert world.calls("task/", "POST") == 1
    assert world.transfer.tasks[0]["fatal_error"]["code"] == "CANCELED"
    assert not Replica.objects.filter(location=archive).exists()


# ------------------------------------- the portal's own identity, end to end


@pytest.fixture
def service_world(tmp_path, monkeypatch, settings):
    world = start_globus(tmp_path, auth=True, successful_transfers_page_size=50)
    point_sdk_at(world, monkeypatch, settings)
    yield world
    stop_globus(world)


def test_the_service_identity_archives_cancels_and_retries(service_world, settings):
    world = service_world
    local = world.location("rig-globus")
    world.location("petrel", role=LocationRole.ARCHIVE)
    job, _ = archive_session_of(world, local, None, count=120)

    runner.submit_job(job.pk)  # the job's own client: client credentials from Globus Auth
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert world.auth.calls("/v2/oauth2/token") >= 1
    assert world.transfer.requests_to("/v0.10/transfer")[0]["auth"] == "Bearer"

    job = cancel_job(job=job, user=None)
    assert job.state == JobState.CANCELED
    assert world.transfer.tasks[0]["status"] == "FAILED"


def test_transient_errors_surface_as_transient(service_world):
    world = service_world
    client = fast_retries(service_transfer_client())
    world.transfer.fail_next(20, status=502, path_contains="/task_list")
    with pytest.raises(TransientError):
        GlobusBackend(client).poll([TransferTask(pk=1, task_id="4c4fd5f4-4b41-11e8-9a6d-0a6d4e044368")])


def test_unreadable_file_lists_and_refused_cancels_do_not_stall_polling(world, places, backend, archivist):
    local, archive = places
    job, files = archive_session_of(world, local, archivist, count=2)
    runner.submit_job(job.pk, backend=backend)
    world.transfer.run_tasks()
    TransferJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    world.transfer.fail_next(1, status=404, path_contains="/cancel", code="ClientError.NotFound")
    world.transfer.fail_next(
        1, status=404, path_contains="/successful_transfers", code="ClientError.NotFound"
    )

    runner.poll_active_jobs(backend=backend)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED  # it ended before the cancel could stop it
    assert set(job.items.values_list("state", flat=True)) == {ItemState.SKIPPED}
    assert Replica.objects.filter(location=archive).count() == 2
