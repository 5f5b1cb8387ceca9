"""Carrying out transfer jobs: submitting, polling, copying, recording results.

The background tasks in ``transfers.tasks`` call these functions with ids.
Every state change of a job is a conditional update (``TransferJob.transition``)
so that two workers never both act on one change. Slow calls to Globus or the
disk happen outside transactions; what they found is recorded in short ones.

A worker may be killed at any point. What keeps that harmless:

- a task's Globus ``submission_id`` is committed before the task is submitted,
  so a repeated submission gets Globus' "Duplicate" and the existing task;
- queued, submitting and filesystem jobs carry a lease (``retry_at``); when it
  runs out with nobody having moved the job on, the poller queues it again;
- recording a finished task happens once, under a lock on the task row;
- filesystem copies never overwrite, so a repeated run finds what the last one
  copied and counts it as already there.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django_q.tasks import async_task

from catalog.models import Backend, RawFile, Replica, ReplicaSource, ReplicaState
from transfers.backends import backend_for
from transfers.backends.base import TaskOutcome
from transfers.backends.filesystem import CopyOutcome, FilesystemBackend
from transfers.backends.globus import GlobusBackend
from transfers.errors import LoginRequired, PermanentError, TransferError, TransientError
from transfers.models import (
    TASK_ENDED_STATES,
    ItemState,
    JobKind,
    JobState,
    TaskState,
    TransferItem,
    TransferJob,
    TransferTask,
)
from transfers.services import Refusal, queue_submission, submission_lease

logger = logging.getLogger(__name__)

# A job whose submission or copy run was requeued this often is failed.
MAX_ATTEMPTS = 10
MAX_BACKOFF_SECONDS = 3600
# Filesystem copy runs record their progress in batches.
PROGRESS_FILES = 50
PROGRESS_SECONDS = 2.0
_ID_CHUNK = 500

_TASK_PROGRESS_FIELDS = ["nice_status", "files_done", "files_skipped", "bytes_done", "faults"]


def backoff(attempts):
    return timedelta(seconds=min(settings.PORTAL_POLL_SECONDS * 2**attempts, MAX_BACKOFF_SECONDS))


def _chunks(values, size=_ID_CHUNK):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _load(job_id):
    return (
        TransferJob.objects.select_related("source", "destination", "requested_by", "session__subject")
        .filter(pk=job_id)
        .first()
    )


def _queue(func, job_id):
    name = func.rsplit(".", 1)[-1].replace("_", "-")
    transaction.on_commit(lambda: async_task(func, job_id, task_name=f"{name}-{job_id}"))


def queue_filesystem_run(job_id):
    _queue("transfers.tasks.run_filesystem_job", job_id)


# ------------------------------------------------------------------ submit


def submit_job(job_id, *, backend=None):
    """Submit the job's backend tasks; the job ends ACTIVE, QUEUED (retry later),
    NEEDS_LOGIN, FAILED or CANCELED. Returns a line for the task log."""
    job = _load(job_id)
    if job is None:
        return f"Job {job_id} no longer exists."
    now = timezone.now()
    if job.state == JobState.QUEUED:
        if not TransferJob.transition(
            job.pk,
            from_states={JobState.QUEUED},
            to_state=JobState.SUBMITTING,
            retry_at=now + submission_lease(),
            nice_status="Submitting",
        ):
            return f"Job {job.pk} was taken by another worker."
    elif job.state == JobState.SUBMITTING:
        # An earlier submitter stopped part-way; go on with the stored submission ids.
        TransferJob.objects.filter(pk=job.pk, state=JobState.SUBMITTING).update(
            retry_at=now + submission_lease(), updated_at=now
        )
        logger.info("Job %s resumes a submission that was interrupted", job.pk)
    else:
        return f"Job {job.pk} is {job.state}; nothing to submit."
    job.refresh_from_db()

    if job.cancel_requested and not job.tasks.exclude(task_id="", submission_id="").exists():
        _finish_unsubmitted(job, JobState.CANCELED, "CANCELED", "Canceled before submission.")
        return f"Job {job.pk} canceled before submission."

    try:
        backend = backend or backend_for(job)
        for task in job.tasks.filter(task_id="", state=TaskState.NEW).order_by("number"):
            if not task.submission_id and _cancel_requested(job):
                # Never sent to the backend: nothing to stop. One with a submission id may run there.
                _cancel_unsubmitted_task(task)
                continue
            if not task.submission_id and not _hold_back_unknown_archive_files(job, task, backend):
                continue
            task_id = backend.submit(job, task)
            TransferTask.objects.filter(pk=task.pk).update(
                task_id=task_id, state=TaskState.ACTIVE, submitted_at=timezone.now(), nice_status="Submitted"
            )
            logger.info("Job %s task %s submitted as %s", job.pk, task.number, task_id)
    except Refusal as err:
        _finish_unsubmitted(job, JobState.FAILED, err.code, str(err), backend=None)
        return f"Job {job.pk} refused: {err}"
    except TransientError as err:
        return _retry_later(job, err)
    except LoginRequired as err:
        return _park(job, err, from_states={JobState.SUBMITTING})
    except PermanentError as err:
        _finish_unsubmitted(job, JobState.FAILED, err.code, str(err), backend=backend)
        return f"Job {job.pk} failed: {err}"

    is_filesystem = isinstance(backend, FilesystemBackend)
    moved = TransferJob.transition(
        job.pk,
        from_states={JobState.SUBMITTING},
        to_state=JobState.ACTIVE,
        submitted_at=job.submitted_at or timezone.now(),
        retry_at=timezone.now() + submission_lease() if is_filesystem else None,
        nice_status="Copying" if is_filesystem else "Submitted",
    )
    if not moved:
        return f"Job {job.pk} moved on while it was submitted."
    if is_filesystem:
        queue_filesystem_run(job.pk)
    elif TransferJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        cancel_submitted(job.pk, backend=backend)
    return f"Job {job.pk} submitted."


def _cancel_unsubmitted_task(task):
    message = "Canceled before submission."
    with transaction.atomic():
        TransferTask.objects.filter(pk=task.pk, task_id="", state=TaskState.NEW).update(
            state=TaskState.CANCELED,
            error_code="CANCELED",
            error_message=message,
            nice_status="Canceled",
            finished_at=timezone.now(),
        )
        TransferItem.objects.filter(task=task, state=ItemState.PENDING).update(
            state=ItemState.CANCELED, error_message=message
        )


def _hold_back_unknown_archive_files(job, task, backend):
    """Fail the files of an archive task that would replace a file the catalog does not
    know at the archive (checksum sync replaces one that differs); False when
    nothing of the task is left to send, which ends the task."""
    if job.kind != JobKind.ARCHIVE:
        return True
    blocked = backend.unknown_files_at_destination(job, task)
    if not blocked:
        return True
    message = (
        "The archive already holds a different file at this path; "
        f"run discovery on {job.destination.alias} before archiving it again."
    )
    with transaction.atomic():
        for chunk in _chunks(sorted(blocked)):
            TransferItem.objects.filter(task=task, state=ItemState.PENDING, file__subpath__in=chunk).update(
                state=ItemState.FAILED, error_message=message
            )
        left = TransferItem.objects.filter(task=task, state=ItemState.PENDING).exists()
        if not left:
            TransferTask.objects.filter(pk=task.pk, task_id="", state=TaskState.NEW).update(
                state=TaskState.FAILED,
                error_code="archive_conflict",
                error_message=f"Every file of this task is already at the archive. {message}",
                nice_status="Not sent",
                finished_at=timezone.now(),
            )
    logger.warning("Job %s task %s: %d files already at the archive are not sent", job.pk, task.number, len(blocked))
    return left


def _retry_later(job, err):
    delay = backoff(job.attempts)
    TransferJob.transition(
        job.pk,
        from_states={JobState.SUBMITTING},
        to_state=JobState.QUEUED,
        retry_at=timezone.now() + delay,
        nice_status=f"Retrying: {err}"[:64],
    )
    logger.warning("Job %s: %s; retrying in %s s", job.pk, err, int(delay.total_seconds()))
    return f"Job {job.pk} will be retried: {err}"


def _park(job, err, *, from_states):
    if job.requested_by_id is None:
        # Nobody can log in for the portal itself: its client settings are wrong.
        return _fail_submitted_or_not(job, err, from_states)
    TransferJob.transition(
        job.pk,
        from_states=from_states,
        to_state=JobState.NEEDS_LOGIN,
        error_code=err.code,
        error_message=str(err),
        nice_status="Waiting for login",
        retry_at=None,
    )
    logger.info("Job %s waits for user %s to log in: %s", job.pk, job.requested_by_id, err.code)
    return f"Job {job.pk} waits for a login."


def _fail_submitted_or_not(job, err, from_states):
    TransferJob.transition(
        job.pk,
        from_states=from_states,
        to_state=JobState.FAILED,
        error_code=err.code,
        error_message=str(err),
        nice_status="Failed",
        retry_at=None,
    )
    logger.error("Job %s failed: %s", job.pk, err)
    return f"Job {job.pk} failed: {err}"


def _finish_unsubmitted(job, state, code, message, backend=None):
    """End a job during submission; tasks already running at the backend are canceled,
    and what they copied is recorded. While one's end is unknown, the job stays
    ACTIVE for the poller, with its unsent tasks failed."""
    if backend is not None:
        running = list(
            job.tasks.exclude(task_id="")
            .filter(state=TaskState.ACTIVE)
            .select_related("job__source", "job__destination")
        )
        for task in running:
            try:
                backend.cancel(task)
            except TransferError as err:
                logger.warning("Job %s: could not cancel task %s: %s", job.pk, task.task_id, err)
        if not _record_ended_tasks(job, running, backend):
            _give_up_unsubmitted_tasks(job, message, code=code[:64])
            return
    with transaction.atomic():
        if TransferJob.transition(
            job.pk,
            from_states={JobState.SUBMITTING},
            to_state=state,
            error_code=code[:64] if state == JobState.FAILED else "",
            error_message=message if state == JobState.FAILED else "",
            nice_status=state.label,
            retry_at=None,
        ):
            TransferTask.objects.filter(job=job, state__in=[TaskState.NEW, TaskState.ACTIVE]).update(
                state=TaskState.CANCELED if state == JobState.CANCELED else TaskState.FAILED,
                error_code=code[:64],
                error_message=message,
                finished_at=timezone.now(),
            )
            TransferItem.objects.filter(job=job, state=ItemState.PENDING).update(
                state=ItemState.CANCELED if state == JobState.CANCELED else ItemState.FAILED,
                error_message=message,
            )
    logger.info("Job %s ended during submission: %s %s", job.pk, state, code)


def _record_ended_tasks(job, tasks, backend):
    """Record the end of each of ``tasks`` (what it copied included); False unless all have ended."""
    try:
        statuses = backend.poll(tasks) if tasks else {}
    except TransferError as err:
        logger.warning("Job %s: how its running tasks ended is not known yet: %s", job.pk, err)
        return False
    ended = True
    for task in tasks:
        status = statuses.get(task.pk)
        if status is None or not status.is_final:
            ended = False
            continue
        try:
            finish_task(backend, task, status)
        except TransientError as err:
            logger.warning("Job %s: task %s ended; its file list is not read yet: %s", job.pk, task.task_id, err)
            ended = False
    return ended


# ------------------------------------------------------------------ cancel


def cancel_submitted(job_id, *, backend=None):
    """Ask the backend to stop a job's running tasks and record what it says."""
    job = _load(job_id)
    if job is None or job.is_final:
        return
    if job.source.backend == Backend.FILESYSTEM:
        return  # the copy run stops at the next file
    if job.state == JobState.NEEDS_LOGIN and job.tasks.filter(task_id="", state=TaskState.NEW).exists():
        # Its submitter cancels what was never sent, learns the ids of tasks whose
        # answer was lost, and stops and records those running at Globus.
        if TransferJob.transition(
            job.pk,
            from_states={JobState.NEEDS_LOGIN},
            to_state=JobState.QUEUED,
            retry_at=timezone.now() + submission_lease(),
            nice_status="Canceling",
        ):
            queue_submission(job)
        return
    try:
        backend = backend or backend_for(job)
        for task in job.tasks.filter(state=TaskState.ACTIVE).exclude(task_id=""):
            backend.cancel(task)
    except TransferError as err:
        logger.warning("Job %s: cancel not confirmed yet (%s); the poller tries again", job.pk, err)
        return
    # A parked job's tasks may have copied files before they stopped: the poller
    # records them and settles the job, as for any running job.
    if job.state == JobState.NEEDS_LOGIN and not TransferJob.transition(
        job.pk, from_states={JobState.NEEDS_LOGIN}, to_state=JobState.ACTIVE, nice_status="Canceling"
    ):
        return
    try:
        poll_jobs([job], backend=backend)
    except TransferError as err:
        logger.warning("Job %s: status after cancel unknown (%s); the poller tries again", job.pk, err)


# -------------------------------------------------------------------- poll


def requeue_due_jobs(*, backend=None):
    """Queue again the jobs whose lease ran out; fail those requeued too often."""
    now = timezone.now()
    count = 0
    due = TransferJob.objects.filter(
        retry_at__lte=now, state__in=[JobState.QUEUED, JobState.SUBMITTING, JobState.ACTIVE]
    ).select_related("source")
    for job in due:
        if job.attempts >= MAX_ATTEMPTS:
            _give_up(job, backend=backend)
            continue
        claimed = TransferJob.objects.filter(pk=job.pk, state=job.state, retry_at=job.retry_at).update(
            retry_at=now + submission_lease(), attempts=F("attempts") + 1, updated_at=now
        )
        if not claimed:
            continue
        count += 1
        if job.state == JobState.ACTIVE:
            if job.source.backend == Backend.FILESYSTEM:
                queue_filesystem_run(job.pk)
        else:
            _queue("transfers.tasks.submit_job", job.pk)
        logger.info("Job %s (%s) queued again after its lease ran out", job.pk, job.state)
    return count


def _give_up(job, *, backend=None):
    message = f"The portal gave up after {job.attempts} attempts." + (
        f" The last one said: {job.nice_status}" if job.nice_status else ""
    )
    if job.state == JobState.ACTIVE:
        # Only filesystem jobs hold a lease while active; their run keeps dying.
        TransferItem.objects.filter(job=job, state=ItemState.PENDING).update(
            state=ItemState.FAILED, error_message=message
        )
    elif job.source.backend == Backend.GLOBUS:
        if not _recover_lost_submissions(job, backend):
            return
        if job.tasks.exclude(task_id="").exists():
            _give_up_unsubmitted_tasks(job, message)
            return
    with transaction.atomic():
        if TransferJob.transition(
            job.pk,
            from_states={job.state},
            to_state=JobState.FAILED,
            error_code="gave_up",
            error_message=message,
            nice_status="Failed",
            retry_at=None,
        ):
            never_sent = TransferTask.objects.filter(job=job, task_id="", state=TaskState.NEW)
            TransferItem.objects.filter(task__in=never_sent, state=ItemState.PENDING).update(
                state=ItemState.FAILED, error_message=message
            )
            never_sent.update(
                state=TaskState.FAILED, error_code="gave_up", error_message=message, finished_at=timezone.now()
            )
    logger.error("Job %s: %s", job.pk, message)


def _recover_lost_submissions(job, backend):
    """Learn the Globus ids of tasks submitted without an answer, by submitting them again
    under their submission id (Globus answers "Duplicate" with the task it made).

    False while that is impossible: such a task may be running at Globus, so the
    job is kept and the next lease tries again (or it waits for its user's login).
    """
    lost = list(job.tasks.filter(task_id="", state=TaskState.NEW).exclude(submission_id="").order_by("number"))
    if not lost:
        return True
    try:
        backend = backend or backend_for(job)
        for task in lost:
            try:
                task_id = backend.submit(job, task)
            except PermanentError as err:
                # Refused for good under its submission id: Globus holds no task of it.
                logger.warning("Job %s: task %s could not be recovered: %s", job.pk, task.number, err)
                continue
            TransferTask.objects.filter(pk=task.pk, task_id="", state=TaskState.NEW).update(
                task_id=task_id, state=TaskState.ACTIVE, submitted_at=timezone.now(), nice_status="Submitted"
            )
            logger.info("Job %s task %s recovered as %s before giving up", job.pk, task.number, task_id)
    except LoginRequired as err:
        if job.requested_by_id is not None:
            _park(job, err, from_states={job.state})
            return False
        return _keep_for_next_run(job, err)
    except TransientError as err:
        return _keep_for_next_run(job, err)
    return True


def _keep_for_next_run(job, err):
    TransferJob.objects.filter(pk=job.pk, state=job.state).update(
        retry_at=timezone.now() + submission_lease(),
        nice_status=f"Retrying: {err}"[:64],
        updated_at=timezone.now(),
    )
    logger.warning("Job %s: a task may be running at Globus unrecorded; trying again later: %s", job.pk, err)
    return False


def _give_up_unsubmitted_tasks(job, message, *, code="gave_up"):
    """Fail the tasks that never reached Globus; the job stays ACTIVE for the ones running
    there, so that what they copy is recorded, and fails once they end."""
    now = timezone.now()
    with transaction.atomic():
        if job.state == JobState.QUEUED and not TransferJob.transition(
            job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUBMITTING
        ):
            return
        if not TransferJob.transition(
            job.pk,
            from_states={JobState.SUBMITTING},
            to_state=JobState.ACTIVE,
            submitted_at=job.submitted_at or now,
            retry_at=None,
            nice_status="Failed in part",
        ):
            transaction.set_rollback(True)
            return
        given_up = TransferTask.objects.filter(job=job, task_id="", state=TaskState.NEW)
        TransferItem.objects.filter(task__in=given_up, state=ItemState.PENDING).update(
            state=ItemState.FAILED, error_message=message
        )
        given_up.update(
            state=TaskState.FAILED, error_code=code, error_message=message, finished_at=now
        )
    logger.error("Job %s: %s Its tasks already at Globus are still followed.", job.pk, message)


def poll_active_jobs(*, backend=None):
    """One poll cycle: requeue stalled jobs, then poll every active Globus job.

    Jobs are grouped by the identity they run as (Globus lists only the
    caller's own tasks); each group costs one task_list call per 100 tasks,
    plus the successful_transfers pages of the tasks that finished.
    """
    requeued = requeue_due_jobs(backend=backend)
    active = list(
        TransferJob.objects.filter(state=JobState.ACTIVE, source__backend=Backend.GLOBUS)
        .select_related("source", "destination", "requested_by")
        .order_by("requested_by_id", "pk")
    )
    groups = {}
    for job in active:
        groups.setdefault(job.requested_by_id, []).append(job)
    for jobs in groups.values():
        try:
            poll_jobs(jobs, backend=backend or GlobusBackend(job=jobs[0]))
        except TransientError as err:
            logger.warning("Polling %d jobs failed for now: %s", len(jobs), err)
        except LoginRequired as err:
            if jobs[0].requested_by_id is None:
                logger.error("Polling the portal's own jobs failed, its Globus login was refused: %s", err)
                continue
            for job in jobs:
                _park(job, err, from_states={JobState.ACTIVE})
        except PermanentError as err:
            logger.error("Polling jobs %s failed: %s", [job.pk for job in jobs], err)
    return {"requeued": requeued, "polled": len(active)}


def poll_jobs(jobs, *, backend):
    """Poll the running tasks of ``jobs`` (one identity) and record what changed."""
    job_ids = [job.pk for job in jobs]
    tasks = list(
        TransferTask.objects.filter(job_id__in=job_ids, state=TaskState.ACTIVE)
        .exclude(task_id="")
        .select_related("job__source", "job__destination")
    )
    for task in tasks:
        if task.job.cancel_requested:
            try:
                backend.cancel(task)
            except LoginRequired:
                raise
            except TransferError as err:
                # The poll below still records how the task ends; cancel is asked again next cycle.
                logger.warning("Job %s: cancel not confirmed yet: %s", task.job_id, err)
    statuses = backend.poll(tasks) if tasks else {}
    running, finished = [], []
    for task in tasks:
        status = statuses.get(task.pk)
        if status is None:
            logger.warning("Globus did not report task %s of job %s", task.task_id, task.job_id)
            continue
        if status.is_final:
            finished.append((task, status))
        else:
            for name in _TASK_PROGRESS_FIELDS:
                setattr(task, name, getattr(status, name))
            running.append(task)
    if running:
        # Only tasks still active: another poller may have recorded one's end meanwhile.
        TransferTask.objects.filter(state=TaskState.ACTIVE).bulk_update(
            running, _TASK_PROGRESS_FIELDS, batch_size=200
        )
    for task, status in finished:
        try:
            finish_task(backend, task, status)
        except TransientError as err:
            logger.warning(
                "Job %s: task %s ended; its file list waits for the next poll: %s",
                task.job_id,
                task.task_id,
                err,
            )
    _update_job_progress(job_ids)
    for job_id in {task.job_id for task, _ in finished} | _jobs_without_running_tasks(job_ids):
        settle_job(job_id)


def _jobs_without_running_tasks(job_ids):
    running = set(
        TransferTask.objects.filter(job_id__in=job_ids)
        .exclude(state__in=TASK_ENDED_STATES)
        .values_list("job_id", flat=True)
    )
    return set(job_ids) - running


def _update_job_progress(job_ids):
    """Sum the running jobs' task figures into the jobs, in a few queries."""
    running_status = dict(
        TransferTask.objects.filter(job_id__in=job_ids, state=TaskState.ACTIVE)
        .order_by("job_id", "-number")
        .values_list("job_id", "nice_status")
    )
    unfinished = set(
        TransferJob.objects.filter(pk__in=list(running_status), state=JobState.ACTIVE).values_list(
            "pk", flat=True
        )
    )
    totals = (
        TransferTask.objects.filter(job_id__in=unfinished)
        .values("job_id")
        .annotate(files=Sum("files_done"), skipped=Sum("files_skipped"), size=Sum("bytes_done"))
    )
    now = timezone.now()
    jobs = [
        TransferJob(
            pk=row["job_id"],
            files_done=row["files"] or 0,
            files_skipped=row["skipped"] or 0,
            bytes_done=row["size"] or 0,
            nice_status=running_status[row["job_id"]],
            updated_at=now,
        )
        for row in totals
    ]
    TransferJob.objects.filter(state=JobState.ACTIVE).bulk_update(
        jobs, ["files_done", "files_skipped", "bytes_done", "nice_status", "updated_at"], batch_size=200
    )


def record_replicas(file_ids, *, location, source):
    """Mark ``file_ids`` present at ``location``, verified now (insert or update)."""
    now = timezone.now()
    replicas = [
        Replica(
            file_id=file_id,
            location=location,
            state=ReplicaState.PRESENT,
            source=source,
            verified_at=now,
            updated_at=now,
        )
        for file_id in file_ids
    ]
    Replica.objects.bulk_create(
        replicas,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["file", "location"],
        update_fields=["state", "source", "verified_at", "updated_at"],
    )


def _set_items(item_ids, **fields):
    for chunk in _chunks(item_ids):
        TransferItem.objects.filter(pk__in=chunk).update(**fields)


def replica_source(job):
    return ReplicaSource.ARCHIVE if job.kind == JobKind.ARCHIVE else ReplicaSource.RETRIEVE


def finish_task(backend, task, status):
    """Record a finished backend task: its items, the replicas it made, its outcome.

    Returns False when another poller recorded it first.
    """
    job = task.job
    try:
        copied_paths = set(backend.successful_paths(task))
    except PermanentError as err:
        # The task's end is known, only the per-file list is not: its files count
        # as skipped, and an archive's as present (they passed the checksum sync).
        logger.error("Job %s: the files of task %s cannot be listed: %s", job.pk, task.task_id, err)
        copied_paths = set()
    with transaction.atomic():
        locked = TransferTask.objects.select_for_update().get(pk=task.pk)
        if locked.state != TaskState.ACTIVE:
            return False
        items = list(
            TransferItem.objects.filter(task=task, state=ItemState.PENDING).values_list(
                "pk", "file_id", "file__subpath"
            )
        )
        copied = [(pk, file_id) for pk, file_id, subpath in items if subpath in copied_paths]
        rest = [(pk, file_id) for pk, file_id, subpath in items if subpath not in copied_paths]
        present = [file_id for _, file_id in copied]
        if status.outcome == TaskOutcome.SUCCEEDED and job.kind == JobKind.ARCHIVE:
            # With sync_level=checksum a skipped file was skipped because its checksum matched.
            present += [file_id for _, file_id in rest]
        record_replicas(present, location=job.destination, source=replica_source(job))
        _set_items([pk for pk, _ in copied], state=ItemState.SUCCEEDED)
        if status.outcome == TaskOutcome.SUCCEEDED:
            _set_items([pk for pk, _ in rest], state=ItemState.SKIPPED)
        elif status.outcome == TaskOutcome.CANCELED:
            _set_items([pk for pk, _ in rest], state=ItemState.CANCELED, error_message=status.error_message)
        else:
            _set_items([pk for pk, _ in rest], state=ItemState.FAILED, error_message=status.error_message)
        TransferTask.objects.filter(pk=task.pk).update(
            state={
                TaskOutcome.SUCCEEDED: TaskState.SUCCEEDED,
                TaskOutcome.CANCELED: TaskState.CANCELED,
            }.get(status.outcome, TaskState.FAILED),
            nice_status=status.nice_status,
            files_done=status.files_done,
            files_skipped=status.files_skipped,
            bytes_done=status.bytes_done,
            faults=status.faults,
            error_code=status.error_code,
            error_message=status.error_message,
            finished_at=timezone.now(),
        )
    logger.info(
        "Job %s task %s %s: %d copied, %d replicas recorded",
        job.pk,
        task.number,
        status.outcome,
        len(copied),
        len(present),
    )
    return True


def settle_job(job_id):
    """Give an ACTIVE job its final state once all its tasks have ended."""
    with transaction.atomic():
        job = TransferJob.objects.select_for_update().filter(pk=job_id, state=JobState.ACTIVE).first()
        if job is None:
            return None
        tasks = list(job.tasks.all())
        if any(task.state not in TASK_ENDED_STATES for task in tasks):
            return None
        failed = [task for task in tasks if task.state == TaskState.FAILED]
        canceled = [task for task in tasks if task.state == TaskState.CANCELED]
        # Files held back before submission fail the job even when their task succeeded.
        held_back = (
            None
            if failed or canceled
            else job.items.filter(state=ItemState.FAILED)
            .order_by("file__subpath")
            .values_list("file__subpath", "error_message")
            .first()
        )
        fields = {
            "files_done": sum(task.files_done for task in tasks),
            "files_skipped": sum(task.files_skipped for task in tasks),
            "bytes_done": sum(task.bytes_done for task in tasks),
            "retry_at": None,
        }
        if failed and not job.cancel_requested:
            state = JobState.FAILED
            fields.update(
                nice_status="Failed", error_code=failed[0].error_code, error_message=failed[0].error_message
            )
        elif failed or canceled:
            state = JobState.CANCELED
            fields["nice_status"] = "Canceled"
        elif held_back:
            state = JobState.FAILED
            fields.update(nice_status="Failed", error_code="file_failed", error_message=": ".join(held_back))
        else:
            state = JobState.SUCCEEDED
            fields["nice_status"] = "Succeeded"
        TransferJob.transition(job.pk, from_states={JobState.ACTIVE}, to_state=state, **fields)
    logger.info("Job %s %s", job_id, state)
    return state


# -------------------------------------------------------- filesystem runs


def run_budget():
    """Seconds a copy run works before it hands over to a fresh run (django-q kills at its timeout)."""
    return settings.Q_CLUSTER.get("timeout", 600) / 2


def run_filesystem_job(job_id, *, backend=None):
    """Copy the pending files of an ACTIVE filesystem job, recording as it goes.

    A run stops between files once its time budget is spent and queues the
    next run, so no run is killed by the worker's timeout mid-job.
    """
    job = _load(job_id)
    if job is None or job.state != JobState.ACTIVE:
        return f"Job {job_id} is not active; nothing to copy."
    backend = backend or FilesystemBackend()
    deadline = time.monotonic() + run_budget()
    outcome = COPY_DONE
    for task in job.tasks.filter(state=TaskState.ACTIVE).order_by("number"):
        if outcome == COPY_CANCELED:
            _finish_copy_task(task, True, None)
        else:
            outcome = _copy_task(job, task, backend, deadline)
            if outcome == COPY_PAUSED:
                queue_filesystem_run(job.pk)
                return f"Job {job.pk} goes on in a new run."
    settle_job(job.pk)
    job.refresh_from_db()
    return f"Job {job.pk} {job.state}."


COPY_DONE, COPY_CANCELED, COPY_PAUSED = "done", "canceled", "paused"


def _cancel_requested(job):
    return TransferJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _copy_task(job, task, backend, deadline):
    """Copy one task's pending items; returns COPY_DONE, COPY_CANCELED or COPY_PAUSED."""
    items = list(
        TransferItem.objects.filter(task=task, state=ItemState.PENDING)
        .select_related("file")
        .order_by("file__subpath")
    )
    batch, last_flush, outcome, first_error = [], time.monotonic(), COPY_DONE, None
    for item in items:
        if not batch and _cancel_requested(job):
            outcome = COPY_CANCELED
            break
        result = backend.copy(
            job.source, job.destination, item.file.subpath, checksum=item.file.checksum, size=item.file.size
        )
        if first_error is None and result.outcome in (CopyOutcome.CONFLICT, CopyOutcome.FAILED):
            first_error = (
                "conflict" if result.outcome == CopyOutcome.CONFLICT else "copy_failed",
                result.message,
            )
        batch.append((item, result))
        if len(batch) >= PROGRESS_FILES or time.monotonic() - last_flush >= PROGRESS_SECONDS:
            _record_copies(job, task, batch)
            batch, last_flush = [], time.monotonic()
        if time.monotonic() >= deadline and item is not items[-1]:
            outcome = COPY_PAUSED
            break
    _record_copies(job, task, batch)
    if outcome != COPY_PAUSED:
        _finish_copy_task(task, outcome == COPY_CANCELED, first_error)
    return outcome


def _record_copies(job, task, batch):
    if not batch:
        return
    present, done, skipped, size = [], 0, 0, 0
    with transaction.atomic():
        for item, result in batch:
            state = {CopyOutcome.COPIED: ItemState.SUCCEEDED, CopyOutcome.IDENTICAL: ItemState.SKIPPED}.get(
                result.outcome, ItemState.FAILED
            )
            if result.outcome in (CopyOutcome.COPIED, CopyOutcome.IDENTICAL):
                present.append(item.file_id)
                if result.checksum and not item.file.checksum:
                    RawFile.objects.filter(pk=item.file_id, checksum__isnull=True).update(
                        checksum=result.checksum
                    )
                    RawFile.objects.filter(pk=item.file_id, checksum="").update(checksum=result.checksum)
            # Count only what this run moved on: another run may have recorded the item.
            if not TransferItem.objects.filter(pk=item.pk, state=ItemState.PENDING).update(
                state=state, error_message=result.message
            ):
                continue
            if result.outcome == CopyOutcome.COPIED:
                done, size = done + 1, size + result.size
            elif result.outcome == CopyOutcome.IDENTICAL:
                skipped += 1
        record_replicas(present, location=job.destination, source=replica_source(job))
        TransferTask.objects.filter(pk=task.pk).update(
            files_done=F("files_done") + done,
            files_skipped=F("files_skipped") + skipped,
            bytes_done=F("bytes_done") + size,
            nice_status="Copying",
        )
        TransferJob.objects.filter(pk=job.pk, state=JobState.ACTIVE).update(
            files_done=F("files_done") + done,
            files_skipped=F("files_skipped") + skipped,
            bytes_done=F("bytes_done") + size,
            nice_status="Copying",
            retry_at=timezone.now() + submission_lease(),
            updated_at=timezone.now(),
        )


def _finish_copy_task(task, canceled, first_error):
    if first_error is None:
        # A run that was interrupted may have recorded failures before this one.
        earlier = TransferItem.objects.filter(task=task, state=ItemState.FAILED).values_list(
            "error_message", flat=True
        )
        first_error = next((("copy_failed", message) for message in earlier[:1]), None)
    if canceled:
        TransferItem.objects.filter(task=task, state=ItemState.PENDING).update(
            state=ItemState.CANCELED, error_message="Canceled before it was copied."
        )
        fields = {"state": TaskState.CANCELED, "error_code": "CANCELED", "error_message": "Canceled."}
    elif first_error is not None:
        fields = {"state": TaskState.FAILED, "error_code": first_error[0], "error_message": first_error[1]}
    else:
        fields = {"state": TaskState.SUCCEEDED}
    fields["nice_status"] = "Canceled" if canceled else fields["state"].label
    TransferTask.objects.filter(pk=task.pk, state=TaskState.ACTIVE).update(
        finished_at=timezone.now(), **fields
    )


# -------------------------------------------------------------- schedules

POLL_SCHEDULE_NAME = "Poll active transfer jobs"
POLL_FUNC = "transfers.tasks.poll_active_jobs"


def poll_interval_minutes():
    """django-q2 schedules count in whole minutes; PORTAL_POLL_SECONDS rounds up to one."""
    return max(1, -(-settings.PORTAL_POLL_SECONDS // 60))


def ensure_poll_schedule(schedule_model=None):
    """Create or correct the one schedule of ``poll_active_jobs``; returns (schedule, created)."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    wanted = {
        "func": POLL_FUNC,
        "schedule_type": "I",  # Schedule.MINUTES
        "minutes": poll_interval_minutes(),
        "repeats": -1,
    }
    with transaction.atomic():
        existing = list(
            schedule_model.objects.select_for_update().filter(name=POLL_SCHEDULE_NAME).order_by("pk")
        )
        for duplicate in existing[1:]:
            duplicate.delete()
        if existing:
            schedule = existing[0]
            changed = [name for name, value in wanted.items() if getattr(schedule, name) != value]
            for name in changed:
                setattr(schedule, name, wanted[name])
            if changed:
                schedule.save(update_fields=changed)
            return schedule, False
        schedule = schedule_model.objects.create(name=POLL_SCHEDULE_NAME, next_run=timezone.now(), **wanted)
        return schedule, True
