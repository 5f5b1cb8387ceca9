"""Transfer jobs: archiving a session or retrieving a selection of files.

A job is an explicit state machine. Every state change goes through
``TransferJob.transition``, a conditional update that tells the caller whether
it won the race against other workers. A job is carried out by one or more
backend tasks (a Globus task, or a filesystem copy run); a job past the size
limit is split into several.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.models import RawFile, Session, StorageLocation


class JobKind(models.TextChoices):
    ARCHIVE = "archive", "Archive"
    RETRIEVE = "retrieve", "Retrieve"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    ACTIVE = "active", "Active"
    NEEDS_LOGIN = "needs_login", "Waiting for the user to log in again"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)
UNFINISHED_STATES = tuple(state for state in JobState if state not in FINAL_STATES)

# The one table of allowed state changes.
TRANSITIONS = {
    JobState.QUEUED: {JobState.SUBMITTING, JobState.CANCELED, JobState.FAILED, JobState.NEEDS_LOGIN},
    JobState.SUBMITTING: {
        JobState.ACTIVE,
        JobState.QUEUED,
        JobState.NEEDS_LOGIN,
        JobState.FAILED,
        JobState.CANCELED,
        JobState.SUCCEEDED,
    },
    JobState.ACTIVE: {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.NEEDS_LOGIN},
    JobState.NEEDS_LOGIN: {JobState.QUEUED, JobState.ACTIVE, JobState.CANCELED, JobState.FAILED},
    JobState.SUCCEEDED: set(),
    JobState.FAILED: set(),
    JobState.CANCELED: set(),
}


class InvalidTransition(Exception):
    pass


class TransferJob(models.Model):
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    source = models.ForeignKey(StorageLocation, on_delete=models.PROTECT, related_name="outgoing_jobs")
    destination = models.ForeignKey(
        StorageLocation, on_delete=models.PROTECT, related_name="incoming_jobs"
    )
    session = models.ForeignKey(
        Session,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfer_jobs",
        help_text="The session an archive job is for.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfer_jobs",
        help_text="Empty when the portal's service identity asked.",
    )
    label = models.CharField(max_length=128)
    files_total = models.PositiveIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    nice_status = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Submissions that failed for a passing reason (Globus unreachable)."
    )
    retry_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the poller queues this job's submission again if no worker has moved it on.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=JobKind.values), name="job_kind_valid"),
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
            models.CheckConstraint(
                condition=(Q(state__in=FINAL_STATES) & Q(finished_at__isnull=False))
                | (~Q(state__in=FINAL_STATES) & Q(finished_at__isnull=True)),
                name="job_finished_at_iff_final",
            ),
            models.CheckConstraint(
                condition=~Q(source=models.F("destination")), name="job_source_is_not_destination"
            ),
            models.CheckConstraint(
                condition=~Q(kind=JobKind.ARCHIVE) | Q(session__isnull=False),
                name="job_archive_has_session",
            ),
            models.UniqueConstraint(
                fields=["session", "destination"],
                condition=Q(kind=JobKind.ARCHIVE, state__in=UNFINISHED_STATES),
                name="job_one_unfinished_archive_per_session",
                violation_error_message="An archive job for this session is already running.",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="job_state_created_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="job_user_created_idx"),
            models.Index(fields=["state", "retry_at"], name="job_state_retry_idx"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_kind_display().lower()} {self.label}"

    @property
    def is_final(self):
        return self.state in FINAL_STATES

    @property
    def percent_done(self):
        if self.bytes_total:
            return min(100, int(100 * self.bytes_done / self.bytes_total))
        if self.files_total:
            return min(100, int(100 * (self.files_done + self.files_skipped) / self.files_total))
        return 100 if self.state == JobState.SUCCEEDED else 0

    @classmethod
    def transition(cls, pk, *, from_states, to_state, **fields):
        """Move job ``pk`` to ``to_state`` if it is in one of ``from_states``.

        Returns True when this caller made the change, False when another
        worker got there first or the job is elsewhere in its life.
        """
        from_states = set(from_states)
        for state in from_states:
            if to_state not in TRANSITIONS[state]:
                raise InvalidTransition(f"A job cannot go from {state} to {to_state}.")
        now = timezone.now()
        if to_state in FINAL_STATES:
            fields.setdefault("finished_at", now)
        fields["updated_at"] = now
        changed = cls.objects.filter(pk=pk, state__in=from_states).update(state=to_state, **fields)
        return changed == 1


class TaskState(models.TextChoices):
    NEW = "new", "Not submitted"
    ACTIVE = "active", "Active"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


# A task in one of these states has ended: nothing more of it is awaited.
TASK_ENDED_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED)


class TransferTask(models.Model):
    """One backend task of a job: for Globus, one transfer task."""

    job = models.ForeignKey(TransferJob, on_delete=models.CASCADE, related_name="tasks")
    number = models.PositiveIntegerField(help_text="1 for the first task of the job.")
    submission_id = models.CharField(max_length=64, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=TaskState.choices, default=TaskState.NEW)
    nice_status = models.CharField(max_length=64, blank=True)
    files_total = models.PositiveIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    faults = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="task_job_number_unique"),
            models.UniqueConstraint(
                fields=["submission_id"], condition=~Q(submission_id=""), name="task_submission_id_unique"
            ),
            models.CheckConstraint(condition=Q(state__in=TaskState.values), name="task_state_valid"),
        ]
        indexes = [models.Index(fields=["state"], name="task_state_idx")]

    def __str__(self):
        return f"{self.job_id}.{self.number} {self.task_id or 'not submitted'}"


class ItemState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Transferred"
    SKIPPED = "skipped", "Already at the destination"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class TransferItem(models.Model):
    job = models.ForeignKey(TransferJob, on_delete=models.CASCADE, related_name="items")
    task = models.ForeignKey(
        TransferTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="items"
    )
    file = models.ForeignKey(RawFile, on_delete=models.PROTECT, related_name="transfer_items")
    state = models.CharField(max_length=16, choices=ItemState.choices, default=ItemState.PENDING)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "file__subpath"]
        constraints = [
            models.UniqueConstraint(fields=["job", "file"], name="item_job_file_unique"),
            models.CheckConstraint(condition=Q(state__in=ItemState.values), name="item_state_valid"),
        ]

    def __str__(self):
        return f"{self.job_id}: {self.file.subpath} ({self.state})"
