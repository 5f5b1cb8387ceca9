"""What people and commands ask of transfers: archive a session, retrieve files,
cancel a job, resume jobs parked for a login.

Each service checks who asks and what is possible, writes the job, its items
and its backend tasks in one transaction, and queues the work only once that
transaction has committed. A request that cannot be carried out raises
``Refusal`` with words for the person who asked.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_q.tasks import async_task

from catalog.models import LocationRole, RawFile, Replica, ReplicaState, StorageLocation
from transfers.backends import check_same_backend
from transfers.models import (
    FINAL_STATES,
    ItemState,
    JobKind,
    JobState,
    TaskState,
    TransferItem,
    TransferJob,
    TransferTask,
)

logger = logging.getLogger(__name__)


class Refusal(Exception):
    """A request the portal will not carry out; ``str()`` says why, in words."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------- helpers


def submission_lease():
    """How long a queued or submitting job may sit before the poller queues it again."""
    return timedelta(seconds=settings.Q_CLUSTER.get("timeout", 600) + settings.PORTAL_POLL_SECONDS)


def queue_submission(job):
    """Queue ``job``'s submission once the current transaction commits."""
    job_id = job.pk
    transaction.on_commit(
        lambda: async_task("transfers.tasks.submit_job", job_id, task_name=f"submit-job-{job_id}")
    )


def split_into_tasks(files, *, max_files=None, max_bytes=None):
    """Consecutive groups of ``files`` (in subpath order), each within the task limits."""
    max_files = max_files or settings.PORTAL_TASK_MAX_FILES
    max_bytes = max_bytes or settings.PORTAL_TASK_MAX_BYTES
    groups, current, current_bytes = [], [], 0
    for file in sorted(files, key=lambda f: f.subpath):
        if current and (len(current) >= max_files or current_bytes + file.size > max_bytes):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(file)
        current_bytes += file.size
    if current:
        groups.append(current)
    return groups


def _create_job(*, kind, source, destination, files, user, label, session=None):
    """A queued job with its tasks and items; raises IntegrityError on a running duplicate."""
    now = timezone.now()
    job = TransferJob.objects.create(
        kind=kind,
        source=source,
        destination=destination,
        session=session,
        requested_by=user,
        label=label[:128],
        files_total=len(files),
        bytes_total=sum(file.size for file in files),
        nice_status="Queued",
        created_at=now,
        retry_at=now + submission_lease(),
    )
    items = []
    for number, group in enumerate(split_into_tasks(files), start=1):
        task = TransferTask.objects.create(
            job=job,
            number=number,
            files_total=len(group),
            bytes_total=sum(file.size for file in group),
        )
        items.extend(TransferItem(job=job, task=task, file=file) for file in group)
    TransferItem.objects.bulk_create(items, batch_size=2000)
    return job


def _acting_user(user):
    """None (the portal's service identity) or an authenticated user."""
    if user is not None and not getattr(user, "is_authenticated", False):
        raise Refusal("Log in to transfer files.", code="no_permission")
    return user


def archive_locations():
    """The archive location of each dataset type that has one."""
    return {location.dataset_type: location for location in StorageLocation.objects.filter(role="archive")}


# ----------------------------------------------------------------- archive


def request_archive(*, session, user):
    """Queue archive jobs for ``session``'s local files that the archive lacks.

    One job per (local location, archive location) pair. ``user`` None means
    the portal's service identity. Returns the list of new jobs.
    """
    user = _acting_user(user)
    if user is not None and not user.can_archive:
        raise Refusal("Only archivists and admins can archive sessions.", code="no_permission")

    archives = archive_locations()
    local_replicas = (
        Replica.objects.filter(
            file__session=session, state=ReplicaState.PRESENT, location__role=LocationRole.LOCAL
        )
        .select_related("file", "location")
        .order_by("location__alias")
    )
    sources_of = {}
    for replica in local_replicas:
        sources_of.setdefault(replica.file_id, (replica.file, []))[1].append(replica.location)
    if not sources_of:
        raise Refusal(
            f"Session {session} has no raw files on local storage to archive.", code="nothing_to_archive"
        )

    missing_archive = sorted({file.dataset_type for file, _ in sources_of.values()} - set(archives))
    if missing_archive:
        raise Refusal(
            "There is no archive location for "
            + ", ".join(missing_archive)
            + " data; an admin must add one.",
            code="no_archive_location",
        )

    archived = set(
        Replica.objects.filter(
            file_id__in=list(sources_of),
            state=ReplicaState.PRESENT,
            location__in=list(archives.values()),
        ).values_list("file_id", flat=True)
    )
    groups, mismatched = {}, []
    for file_id, (file, locations) in sources_of.items():
        if file_id in archived:
            continue
        archive = archives[file.dataset_type]
        # Prefer a local copy the archive's backend can reach.
        source = next((loc for loc in locations if loc.backend == archive.backend), None)
        if source is None:
            mismatched.append(locations[0])
            continue
        groups.setdefault((source, archive), []).append(file)
    if not groups and mismatched:
        check_same_backend(mismatched[0], archives[mismatched[0].dataset_type])
    if mismatched:
        logger.warning(
            "Session %s: %d files are only on locations the archive's backend cannot reach; left out",
            session.pk,
            len(mismatched),
        )
    if not groups:
        raise Refusal(f"Every local file of session {session} is already archived.", code="already_archived")

    jobs, running = [], []
    with transaction.atomic():
        for (source, archive), files in sorted(groups.items(), key=lambda pair: pair[0][0].alias):
            label = f"Archive {session} {source.dataset_type} from {source.alias}"
            try:
                with transaction.atomic():
                    job = _create_job(
                        kind=JobKind.ARCHIVE,
                        source=source,
                        destination=archive,
                        files=files,
                        user=user,
                        label=label,
                        session=session,
                    )
            except IntegrityError:
                running.append(archive)
                continue
            queue_submission(job)
            jobs.append(job)
    if not jobs:
        raise Refusal(
            f"Session {session} is already being archived; wait for that job to finish.",
            code="already_running",
        )
    logger.info("Queued archive jobs %s for session %s", [job.pk for job in jobs], session.pk)
    return jobs


# --------------------------------------------------------------- retrieval


@dataclass
class SourceSummary:
    """The part of a retrieval that comes from one archive location."""

    source: StorageLocation
    files: list = field(default_factory=list)
    total_bytes: int = 0

    @property
    def file_count(self):
        return len(self.files)


@dataclass
class RetrievalPreview:
    """What a retrieval to ``destination`` would copy, before anyone confirms it."""

    destination: StorageLocation
    files: list = field(default_factory=list)
    total_bytes: int = 0
    already_at_destination: int = 0
    not_archived: int = 0
    other_dataset_type: int = 0
    sources: list = field(default_factory=list)

    @property
    def file_count(self):
        return len(self.files)

    @property
    def selected(self):
        return self.file_count + self.already_at_destination + self.not_archived + self.other_dataset_type


def _selected_files(files, sessions):
    condition = Q(pk__in=[])
    if files is not None:
        condition |= Q(pk__in=[getattr(file, "pk", file) for file in files])
    if sessions is not None:
        condition |= Q(session__in=[getattr(session, "pk", session) for session in sessions])
    return RawFile.objects.filter(condition)


def preview_retrieval(*, files=None, sessions=None, destination):
    """Which of the selected files (and sessions) a retrieval to ``destination`` would copy."""
    archives = archive_locations()
    present = Replica.objects.filter(file=OuterRef("pk"), state=ReplicaState.PRESENT)
    selected = (
        _selected_files(files, sessions)
        .annotate(
            archived=Exists(
                present.filter(
                    location__role=LocationRole.ARCHIVE, location__dataset_type=OuterRef("dataset_type")
                )
            ),
            at_destination=Exists(present.filter(location=destination)),
        )
        .select_related("session__subject")
        .order_by("subpath")
    )
    preview = RetrievalPreview(destination=destination)
    by_source = {}
    for file in selected:
        if file.dataset_type != destination.dataset_type:
            preview.other_dataset_type += 1
        elif file.at_destination:
            preview.already_at_destination += 1
        elif not file.archived:
            preview.not_archived += 1
        else:
            source = archives[file.dataset_type]
            summary = by_source.setdefault(source.pk, SourceSummary(source=source))
            summary.files.append(file)
            summary.total_bytes += file.size
            preview.files.append(file)
            preview.total_bytes += file.size
    preview.sources = list(by_source.values())
    return preview


def _retrieval_label(files, destination):
    subjects = sorted({file.session.subject.water_restriction_number for file in files}, key=str.lower)
    shown = ", ".join(subjects[:3]) + (f" and {len(subjects) - 3} more" if len(subjects) > 3 else "")
    noun = "file" if len(files) == 1 else "files"
    return f"Retrieve {len(files)} {noun} of {shown} to {destination.alias}"


def request_retrieval(*, files=None, sessions=None, destination, user):
    """Queue jobs copying the archived copies of the selection to ``destination``.

    Files already at the destination are left alone; the transfer itself
    never overwrites (Globus ``sync_level="exists"``, the filesystem backend
    refuses to replace a file). Returns the list of new jobs.
    """
    user = _acting_user(user)
    if user is not None and not user.can_retrieve:
        raise Refusal("Your account may not retrieve files.", code="no_permission")
    if not destination.writable or destination.role == LocationRole.ARCHIVE:
        raise Refusal(
            f"{destination.alias} is not a writable destination; choose a location marked writable.",
            code="not_writable",
        )
    preview = preview_retrieval(files=files, sessions=sessions, destination=destination)
    if not preview.files:
        if preview.already_at_destination and not preview.not_archived:
            reason = f"Every selected file is already at {destination.alias}."
        elif preview.not_archived:
            reason = "None of the selected files is archived yet, so there is nothing to retrieve."
        elif preview.other_dataset_type:
            reason = f"None of the selected files is {destination.get_dataset_type_display().lower()} data."
        else:
            reason = "Nothing is selected."
        raise Refusal(reason, code="nothing_to_retrieve")
    for summary in preview.sources:
        check_same_backend(summary.source, destination)

    jobs = []
    with transaction.atomic():
        for summary in preview.sources:
            job = _create_job(
                kind=JobKind.RETRIEVE,
                source=summary.source,
                destination=destination,
                files=summary.files,
                user=user,
                label=_retrieval_label(summary.files, destination),
            )
            queue_submission(job)
            jobs.append(job)
    logger.info("Queued retrieval jobs %s to %s", [job.pk for job in jobs], destination.alias)
    return jobs


# ------------------------------------------------------------------ cancel


def can_cancel(job, user):
    if user is None:
        return True
    return bool(getattr(user, "can_archive", False) or (user.pk and job.requested_by_id == user.pk))


def cancel_job(*, job, user):
    """Stop ``job``: at once if nothing was submitted, else through its backend.

    Archivists and admins may cancel any job, others their own. Returns the
    job as it stands afterwards (CANCELED, or still winding down with
    ``cancel_requested`` set when its backend needs a moment).
    """
    from transfers import jobs as runner

    if not can_cancel(job, user):
        raise Refusal(
            "Only archivists, admins and the person who asked can cancel this job.", code="no_permission"
        )
    job.refresh_from_db()
    if job.state in FINAL_STATES:
        raise Refusal(
            f"Job #{job.pk} has already {job.get_state_display().lower()}.", code="already_finished"
        )

    TransferJob.objects.filter(pk=job.pk).exclude(state__in=FINAL_STATES).update(
        cancel_requested=True, nice_status="Canceling", updated_at=timezone.now()
    )
    # A task with a submission id may exist at Globus even though its answer never came back.
    nothing_submitted = not job.tasks.exclude(task_id="", submission_id="").exists()
    if nothing_submitted and TransferJob.transition(
        job.pk,
        from_states={JobState.QUEUED, JobState.NEEDS_LOGIN},
        to_state=JobState.CANCELED,
        nice_status="Canceled",
        retry_at=None,
    ):
        TransferTask.objects.filter(job=job, state=TaskState.NEW).update(
            state=TaskState.CANCELED,
            error_code="CANCELED",
            error_message="Canceled before submission.",
            nice_status="Canceled",
            finished_at=timezone.now(),
        )
        TransferItem.objects.filter(job=job, state=ItemState.PENDING).update(
            state=ItemState.CANCELED, error_message="Canceled before submission."
        )
        logger.info("Job %s canceled before submission", job.pk)
    elif job.state in {JobState.ACTIVE, JobState.NEEDS_LOGIN}:
        runner.cancel_submitted(job.pk)
    elif job.state == JobState.QUEUED:
        # Its submitter learns the ids of the tasks Globus may have made, then stops them.
        queue_submission(job)
    # A job being submitted right now is canceled by its submitter when it finishes.
    job.refresh_from_db()
    return job


# ------------------------------------------------------------------ resume


def resume_jobs_for(user):
    """Put ``user``'s jobs parked for a Globus login back to work; returns them."""
    resumed = []
    parked = TransferJob.objects.filter(requested_by=user, state=JobState.NEEDS_LOGIN)
    for job in parked:
        submitted = not job.tasks.filter(task_id="", state=TaskState.NEW).exists()
        with transaction.atomic():
            if submitted:
                moved = TransferJob.transition(
                    job.pk,
                    from_states={JobState.NEEDS_LOGIN},
                    to_state=JobState.ACTIVE,
                    error_code="",
                    error_message="",
                    nice_status="Resumed",
                )
            else:
                moved = TransferJob.transition(
                    job.pk,
                    from_states={JobState.NEEDS_LOGIN},
                    to_state=JobState.QUEUED,
                    error_code="",
                    error_message="",
                    nice_status="Queued",
                    retry_at=timezone.now() + submission_lease(),
                )
                if moved:
                    queue_submission(job)
        if moved:
            job.refresh_from_db()
            resumed.append(job)
    if resumed:
        logger.info("Resumed jobs %s of user %s", [job.pk for job in resumed], user.pk)
    return resumed


def on_globus_tokens_updated(sender, user=None, **kwargs):
    """Signal receiver: fresh tokens let a user's parked jobs go on."""
    if user is not None:
        resume_jobs_for(user)
