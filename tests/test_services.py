"""The transfer services and the job state machine, on factory-built catalogs."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import OrmQ

from archive_portal.models import Role
from archive_portal.signals import globus_tokens_updated
from catalog import naming
from catalog.models import LocationRole, Replica, ReplicaSource, ReplicaState
from tests.factories import SessionFactory, UserFactory
from tests.transfer_factories import add_files, archived_session, filesystem_location, globus_location
from transfers import jobs as runner
from transfers.models import (
    InvalidTransition,
    ItemState,
    JobKind,
    JobState,
    TaskState,
    TransferItem,
    TransferJob,
    TransferTask,
)
from transfers.services import (
    Refusal,
    cancel_job,
    preview_retrieval,
    request_archive,
    request_retrieval,
    resume_jobs_for,
    split_into_tasks,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def fs(tmp_path):
    local = filesystem_location(tmp_path, "rig-1")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    return local, archive


def queued_functions():
    return [q.task["func"] for q in OrmQ.objects.order_by("pk")]


# ------------------------------------------------------------------ archive


def test_request_archive_queues_one_job_after_commit(fs, archivist, django_capture_on_commit_callbacks):
    local, archive = fs
    session = SessionFactory()
    files = add_files(session, local, count=4, size=250)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs = request_archive(session=session, user=archivist)
        assert OrmQ.objects.count() == 0  # nothing is queued before the commit

    assert len(callbacks) == 1
    assert queued_functions() == ["transfers.tasks.submit_job"]
    [job] = jobs
    assert (job.kind, job.state, job.source, job.destination) == (
        JobKind.ARCHIVE,
        JobState.QUEUED,
        local,
        archive,
    )
    assert (job.files_total, job.bytes_total, job.requested_by) == (4, 1000, archivist)
    assert job.retry_at > timezone.now()
    assert set(job.items.values_list("file_id", flat=True)) == {file.pk for file in files}
    [task] = job.tasks.all()
    assert (task.number, task.files_total, task.bytes_total, task.state) == (1, 4, 1000, TaskState.NEW)


def test_archive_skips_files_already_archived(fs, archivist):
    local, archive = fs
    session = SessionFactory()
    files = add_files(session, local, count=3)
    Replica.objects.create(file=files[0], location=archive, source=ReplicaSource.DISCOVER)
    [job] = request_archive(session=session, user=archivist)
    assert set(job.items.values_list("file_id", flat=True)) == {files[1].pk, files[2].pk}


def test_archive_makes_one_job_per_source_and_dataset_type(tmp_path, archivist):
    ephys_local = filesystem_location(tmp_path, "ephys-rig")
    ephys_archive = filesystem_location(tmp_path, "ephys-archive", role=LocationRole.ARCHIVE)
    video_local = filesystem_location(tmp_path, "video-rig", dataset_type=naming.RAW_VIDEO)
    video_archive = filesystem_location(
        tmp_path, "video-archive", role=LocationRole.ARCHIVE, dataset_type=naming.RAW_VIDEO
    )
    session = SessionFactory()
    add_files(session, ephys_local, count=2)
    add_files(session, video_local, count=3)
    jobs = request_archive(session=session, user=archivist)
    pairs = sorted((job.source.alias, job.destination.alias, job.files_total) for job in jobs)
    assert pairs == [("ephys-rig", "ephys-archive", 2), ("video-rig", "video-archive", 3)]
    assert {job.destination for job in jobs} == {ephys_archive, video_archive}


def test_service_identity_may_archive(fs):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=None)
    assert job.requested_by is None


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("viewer", "no_permission"),
        ("no_files", "nothing_to_archive"),
        ("all_archived", "already_archived"),
        ("no_archive", "no_archive_location"),
        ("running", "already_running"),
        ("mismatch", "backend_mismatch"),
    ],
)
def test_archive_refusals(tmp_path, archivist, viewer, setup, code):
    session = SessionFactory()
    local = filesystem_location(tmp_path, "rig-1")
    user = viewer if setup == "viewer" else archivist
    if setup != "no_archive":
        if setup == "mismatch":
            globus_location("archive", role=LocationRole.ARCHIVE)
        else:
            archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    if setup != "no_files":
        files = add_files(session, local)
    if setup == "all_archived":
        for file in files:
            Replica.objects.create(file=file, location=archive, source=ReplicaSource.ARCHIVE)
    if setup == "running":
        request_archive(session=session, user=archivist)

    with pytest.raises(Refusal) as refusal:
        request_archive(session=session, user=user)
    assert refusal.value.code == code
    assert str(refusal.value)


def test_a_finished_archive_does_not_block_a_new_one(fs, archivist):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [first] = request_archive(session=session, user=archivist)
    assert TransferJob.transition(first.pk, from_states={JobState.QUEUED}, to_state=JobState.FAILED)
    [second] = request_archive(session=session, user=archivist)
    assert second.pk != first.pk


def test_the_database_refuses_a_second_unfinished_archive(fs, archivist):
    local, archive = fs
    session = SessionFactory()
    add_files(session, local)
    request_archive(session=session, user=archivist)
    with pytest.raises(IntegrityError), transaction.atomic():
        TransferJob.objects.create(
            kind=JobKind.ARCHIVE, source=local, destination=archive, session=session, label="again"
        )


def test_jobs_past_the_limits_are_split_into_tasks(fs, archivist, settings):
    settings.PORTAL_TASK_MAX_FILES = 4
    settings.PORTAL_TASK_MAX_BYTES = 10_000
    local, _ = fs
    session = SessionFactory()
    add_files(session, local, count=10, size=1000)
    [job] = request_archive(session=session, user=archivist)
    tasks = list(job.tasks.order_by("number"))
    assert [task.files_total for task in tasks] == [4, 4, 2]
    assert sum(task.items.count() for task in tasks) == 10
    assert not job.items.filter(task__isnull=True).exists()


def test_split_respects_the_byte_limit():
    class File:
        def __init__(self, subpath, size):
            self.subpath, self.size = subpath, size

    files = [File(f"a/{index}", size) for index, size in enumerate([600, 600, 300, 2000, 10])]
    groups = split_into_tasks(files, max_files=100, max_bytes=1000)
    assert [[file.size for file in group] for group in groups] == [[600], [600, 300], [2000], [10]]


# ---------------------------------------------------------------- retrieval


@pytest.fixture
def retrieval(tmp_path):
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session, files = archived_session(archive, count=4, size=10)
    return archive, scratch, session, files


def test_preview_counts_what_a_retrieval_would_copy(retrieval, tmp_path):
    archive, scratch, session, files = retrieval
    Replica.objects.create(file=files[0], location=scratch, source=ReplicaSource.RETRIEVE)
    rig = filesystem_location(tmp_path, "rig")
    [local_only] = add_files(session, rig, count=1, prefix="local")
    video_archive = filesystem_location(
        tmp_path, "video-archive", role=LocationRole.ARCHIVE, dataset_type=naming.RAW_VIDEO
    )
    [video] = add_files(session, video_archive, count=1, dataset_type=naming.RAW_VIDEO)

    preview = preview_retrieval(sessions=[session], destination=scratch)
    assert preview.file_count == 3
    assert preview.total_bytes == 30
    assert preview.already_at_destination == 1
    assert preview.not_archived == 1
    assert preview.other_dataset_type == 1
    assert [(summary.source, summary.file_count, summary.total_bytes) for summary in preview.sources] == [
        (archive, 3, 30)
    ]
    assert local_only not in preview.files and video not in preview.files
    assert preview.selected == 6


def test_request_retrieval_queues_the_archived_files(retrieval, viewer, django_capture_on_commit_callbacks):
    archive, scratch, session, files = retrieval
    with django_capture_on_commit_callbacks(execute=True):
        [job] = request_retrieval(files=files[:2], sessions=None, destination=scratch, user=viewer)
    assert (job.kind, job.source, job.destination, job.files_total) == (JobKind.RETRIEVE, archive, scratch, 2)
    assert job.label.startswith("Retrieve 2 files of ")
    assert queued_functions() == ["transfers.tasks.submit_job"]


@pytest.mark.parametrize(
    "problem", ["not_writable", "archive_destination", "nothing", "inactive", "mismatch"]
)
def test_retrieval_refusals(retrieval, tmp_path, viewer, problem):
    archive, scratch, session, files = retrieval
    destination, user, code = scratch, viewer, problem
    if problem == "not_writable":
        destination = filesystem_location(tmp_path, "read-only")
    elif problem == "archive_destination":
        destination, code = archive, "not_writable"
    elif problem == "nothing":
        for file in files:
            Replica.objects.create(file=file, location=scratch, source=ReplicaSource.RETRIEVE)
        code = "nothing_to_retrieve"
    elif problem == "inactive":
        user = UserFactory(is_active=False)
        user.is_active = False
        code = "no_permission"
    elif problem == "mismatch":
        destination, code = globus_location("globus-scratch", writable=True), "backend_mismatch"
    with pytest.raises(Refusal) as refusal:
        request_retrieval(sessions=[session], destination=destination, user=user)
    assert refusal.value.code == code


def test_nothing_archived_is_refused_in_words(tmp_path, viewer):
    rig = filesystem_location(tmp_path, "rig")
    filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session = SessionFactory()
    add_files(session, rig)
    with pytest.raises(Refusal, match="None of the selected files is archived") as refusal:
        request_retrieval(sessions=[session], destination=scratch, user=viewer)
    assert refusal.value.code == "nothing_to_retrieve"


# ------------------------------------------------------------------- cancel


def test_cancel_a_queued_job(fs, archivist):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=archivist)
    job = cancel_job(job=job, user=archivist)
    assert job.state == JobState.CANCELED
    assert job.finished_at is not None
    assert not job.tasks.exclude(state=TaskState.CANCELED).exists()
    # A submission that was already queued finds nothing to do.
    assert "nothing to submit" in runner.submit_job(job.pk)


def test_cancel_permissions_and_final_jobs(fs, archivist, viewer):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=archivist)
    with pytest.raises(Refusal) as refusal:
        cancel_job(job=job, user=viewer)
    assert refusal.value.code == "no_permission"
    cancel_job(job=job, user=archivist)
    with pytest.raises(Refusal) as refusal:
        cancel_job(job=job, user=archivist)
    assert refusal.value.code == "already_finished"


def test_requesters_cancel_their_own_retrievals(retrieval, viewer):
    _, scratch, session, _ = retrieval
    [job] = request_retrieval(sessions=[session], destination=scratch, user=viewer)
    assert cancel_job(job=job, user=viewer).state == JobState.CANCELED


# -------------------------------------------------------------------- resume


def test_resume_parked_jobs_when_tokens_arrive(fs, archivist, django_capture_on_commit_callbacks):
    local, _ = fs
    unsubmitted_session, submitted_session = SessionFactory(), SessionFactory()
    add_files(unsubmitted_session, local)
    add_files(submitted_session, local)
    [waiting] = request_archive(session=unsubmitted_session, user=archivist)
    [running] = request_archive(session=submitted_session, user=archivist)
    TransferTask.objects.filter(job=running).update(task_id="abc", state=TaskState.ACTIVE)
    for job, from_state in ((waiting, JobState.QUEUED), (running, JobState.QUEUED)):
        assert TransferJob.transition(
            job.pk,
            from_states={from_state},
            to_state=JobState.NEEDS_LOGIN,
            error_code="ConsentRequired",
            error_message="Consent needed",
        )
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        globus_tokens_updated.send(sender=type(archivist), user=archivist, resource_servers=[], request=None)

    waiting.refresh_from_db()
    running.refresh_from_db()
    assert (waiting.state, waiting.error_code, waiting.error_message) == (JobState.QUEUED, "", "")
    assert running.state == JobState.ACTIVE
    assert queued_functions() == ["transfers.tasks.submit_job"]
    assert resume_jobs_for(archivist) == []


# ------------------------------------------------------------- state machine


def test_transitions_are_conditional_and_checked(fs, archivist):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=archivist)
    assert TransferJob.transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUBMITTING)
    # The second worker loses the race.
    assert not TransferJob.transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUBMITTING)
    with pytest.raises(InvalidTransition):
        TransferJob.transition(job.pk, from_states={JobState.SUCCEEDED}, to_state=JobState.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        TransferJob.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)  # no finished_at


def test_stalled_jobs_are_queued_again_then_given_up(fs, archivist, django_capture_on_commit_callbacks):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=archivist)
    OrmQ.objects.all().delete()
    TransferJob.objects.filter(pk=job.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.requeue_due_jobs() == 1
    job.refresh_from_db()
    assert (job.attempts, job.state) == (1, JobState.QUEUED)
    assert job.retry_at > timezone.now()
    assert queued_functions() == ["transfers.tasks.submit_job"]
    assert runner.requeue_due_jobs() == 0  # the new lease has not run out

    TransferJob.objects.filter(pk=job.pk).update(
        retry_at=timezone.now() - timedelta(seconds=1), attempts=runner.MAX_ATTEMPTS
    )
    runner.requeue_due_jobs()
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "gave_up")


def test_roles_decide_who_archives(fs):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    admin = UserFactory(role=Role.ADMIN)
    assert request_archive(session=session, user=admin)


def test_items_start_pending(fs, archivist):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local, count=2)
    [job] = request_archive(session=session, user=archivist)
    assert set(TransferItem.objects.filter(job=job).values_list("state", flat=True)) == {ItemState.PENDING}
    assert Replica.objects.filter(state=ReplicaState.PRESENT, location=local).count() == 2


def test_admins_cancel_jobs_in_the_admin_site(fs, admin_client, admin_user):
    local, _ = fs
    session = SessionFactory()
    add_files(session, local)
    [job] = request_archive(session=session, user=admin_user)
    page = admin_client.get(f"/admin/transfers/transferjob/{job.pk}/change/")
    assert page.status_code == 200
    response = admin_client.post(
        "/admin/transfers/transferjob/",
        {"action": "cancel_jobs", "_selected_action": [job.pk]},
        follow=True,
    )
    assert "Asked 1 job(s) to stop." in response.content.decode()
    job.refresh_from_db()
    assert job.state == JobState.CANCELED


def test_viewers_do_not_see_jobs_in_the_admin_site(viewer_client):
    assert viewer_client.get("/admin/transfers/transferjob/").status_code in (302, 403)
