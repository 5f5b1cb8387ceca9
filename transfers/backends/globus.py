"""Globus transfer backend: one labelled Globus task per TransferTask.

A task's ``submission_id`` is fetched from Globus and committed on the
TransferTask row before ``submit_transfer`` is called. A submission that is
repeated after a crash reuses the stored id, and Globus answers "Duplicate"
with the task it already created instead of starting a second one.

Every globus-sdk failure leaves this module as one of ``transfers.errors``.
"""

import logging
import re
from datetime import UTC, datetime, timedelta

import globus_sdk
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Replica, ReplicaState
from transfers.backends.base import TaskOutcome, TaskStatus, TransferBackend
from transfers.backends.walk import FolderGone, FolderUnreadable, GlobusLister
from transfers.clients import globus_errors, transfer_client_for_job
from transfers.errors import PermanentError, TransientError
from transfers.models import ItemState, JobKind, TransferTask

logger = logging.getLogger(__name__)

# task_list answers at most this many tasks per call; the filter names them all.
POLL_BATCH = 100

# Globus accepts letters, digits, spaces and a few punctuation marks in labels.
_LABEL_BAD_CHARACTERS = re.compile(r"[^A-Za-z0-9 _\-.,]+")
_LABEL_MAX = 128


def task_label(job, task):
    """The label shown for ``task`` in the Globus web app."""
    label = _LABEL_BAD_CHARACTERS.sub(" ", job.label)
    label = " ".join(label.split())
    prefix = f"Portal job {job.pk}"
    if job.tasks.count() > 1:
        prefix = f"{prefix} part {task.number}"
    return f"{prefix} {label}"[:_LABEL_MAX].rstrip()


def subpath_of(location, collection_path):
    """The subpath of ``collection_path`` below ``location``'s root, or None outside it."""
    root = location.collection_path("")
    if not collection_path.startswith(root):
        return None
    return collection_path[len(root) :]


class GlobusBackend(TransferBackend):
    """Talks to Globus Transfer as one identity (a user or the portal)."""

    name = "globus"

    def __init__(self, client=None, *, job=None):
        if client is None and job is None:
            raise ValueError("A Globus backend needs a TransferClient or the job whose identity to use.")
        self._client = client
        self._job = job

    @property
    def client(self):
        if self._client is None:
            self._client = transfer_client_for_job(self._job)
        return self._client

    # ------------------------------------------------------------- submit
    def submission_id(self, task):
        """The task's submission id, fetched and committed first if it has none."""
        if task.submission_id:
            return task.submission_id
        with globus_errors():
            value = self.client.get_submission_id()["value"]
        # durable: the id must be committed before any submit that uses it.
        with transaction.atomic(durable=True):
            TransferTask.objects.filter(pk=task.pk, submission_id="").update(submission_id=value)
        # Another worker may have stored its own id first; use whichever is stored.
        task.refresh_from_db(fields=["submission_id"])
        return task.submission_id

    def transfer_document(self, job, task, submission_id):
        source, destination = job.source, job.destination
        # A retrieval is recorded as a verified copy, so Globus must verify it too.
        options = {"sync_level": "exists", "verify_checksum": True}
        if job.kind == JobKind.ARCHIVE:
            options = {
                "sync_level": "checksum",
                "verify_checksum": True,
                "deadline": timezone.now() + timedelta(days=settings.PORTAL_ARCHIVE_DEADLINE_DAYS),
            }
        data = globus_sdk.TransferData(
            str(source.collection_id),
            str(destination.collection_id),
            label=task_label(job, task),
            submission_id=submission_id,
            notify_on_succeeded=False,
            **options,
        )
        # Files refused before submission (see unknown_files_at_destination) are not sent.
        subpaths = (
            task.items.filter(state=ItemState.PENDING)
            .order_by("file__subpath")
            .values_list("file__subpath", flat=True)
        )
        for subpath in subpaths.iterator(chunk_size=2000):
            data.add_item(source.collection_path(subpath), destination.collection_path(subpath))
        return data

    def unknown_files_at_destination(self, job, task):
        """One operation_ls per destination folder of the task's files, never one per file."""
        pending = list(task.items.filter(state=ItemState.PENDING).values_list("file_id", "file__subpath"))
        known = set(
            Replica.objects.filter(
                location=job.destination,
                state=ReplicaState.PRESENT,
                file_id__in=[file_id for file_id, _ in pending],
            ).values_list("file_id", flat=True)
        )
        by_folder = {}
        for file_id, subpath in pending:
            if file_id not in known:
                folder, _, name = subpath.rpartition("/")
                by_folder.setdefault(folder, {})[name] = subpath
        # globus-sdk's own retries only: a submission that cannot list goes on at its next try.
        lister = GlobusLister(self.client, job.destination, retry_delays=())
        found = set()
        for folder, names in sorted(by_folder.items()):
            try:
                entries = lister(folder)
            except FolderGone:
                continue  # nothing is there yet
            except FolderUnreadable as err:
                raise PermanentError(str(err), code="ListingRefused") from err
            found.update(names[entry.name] for entry in entries if entry.name in names)
        return found

    def submit(self, job, task):
        submission_id = self.submission_id(task)
        data = self.transfer_document(job, task, submission_id)
        with globus_errors():
            result = self.client.submit_transfer(data)
        # "Accepted" for a new task, "Duplicate" when this submission id made one already.
        task_id = result.get("task_id")
        if not task_id:
            raise PermanentError(
                f"Globus accepted the submission but named no task ({result.get('code')}).",
                code=result.get("code") or "NoTaskId",
            )
        return task_id

    # --------------------------------------------------------------- poll
    def poll(self, tasks):
        by_task_id = {task.task_id: task for task in tasks if task.task_id}
        ids = sorted(by_task_id)
        statuses = {}
        for start in range(0, len(ids), POLL_BATCH):
            chunk = ids[start : start + POLL_BATCH]
            with globus_errors():
                response = self.client.task_list(filter="task_id:" + ",".join(chunk), limit=len(chunk))
                documents = list(response)
            for document in documents:
                task = by_task_id.get(document["task_id"])
                if task is not None:
                    statuses[task.pk] = status_of(document)
        for task in by_task_id.values():
            if task.pk not in statuses:
                status = self._status_of_unlisted(task)
                if status is not None:
                    statuses[task.pk] = status
        return statuses

    def _status_of_unlisted(self, task):
        """Ask for a task task_list left out; None when the answer must wait for the next poll.

        Globus answers 404 for a task it does not know (any more): nothing will
        ever report its end, so it ends here as failed.
        """
        try:
            with globus_errors():
                try:
                    return status_of(self.client.get_task(task.task_id).data)
                except globus_sdk.GlobusAPIError as err:
                    if err.http_status != 404:
                        raise
        except (TransientError, PermanentError) as err:
            logger.warning("Globus did not list task %s and looking it up failed: %s", task.task_id, err)
            return None
        destination = task.job.destination.alias
        return TaskStatus(
            TaskOutcome.FAILED,
            nice_status="Unknown to Globus",
            error_code="task_unknown",
            error_message=(
                f"Globus does not know task {task.task_id}, so what it copied cannot be read; "
                f"run discovery on {destination} to record any files it copied there."
            ),
        )

    # ------------------------------------------------------------- cancel
    def cancel(self, task):
        if not task.task_id:
            return True
        try:
            with globus_errors():
                result = self.client.cancel_task(task.task_id)
        except PermanentError as err:
            # Globus refuses to cancel a task that has already ended; the poll records how.
            if "TaskComplete" in err.code or err.code == "Conflict":
                return True
            raise
        # "TaskComplete": it ended before the cancel arrived; the poll records how.
        return result.get("code") in ("Canceled", "TaskComplete")

    # ----------------------------------------------------------- results
    def successful_paths(self, task):
        destination = task.job.destination
        paths = []
        with globus_errors():
            pages = self.client.paginated.task_successful_transfers(task.task_id)
            for transfer in pages.items():
                subpath = subpath_of(destination, transfer["destination_path"])
                if subpath is not None:
                    paths.append(subpath)
        return paths


def status_of(document):
    """A TaskStatus from a Globus task document."""
    status = document.get("status")
    fatal = document.get("fatal_error") or {}
    nice_status = document.get("nice_status") or (status or "").title()
    common = {
        "nice_status": nice_status[:64],
        "files_done": document.get("files_transferred") or 0,
        "files_skipped": document.get("files_skipped") or 0,
        "bytes_done": document.get("bytes_transferred") or 0,
        "faults": document.get("faults") or 0,
    }
    if status == "SUCCEEDED":
        return TaskStatus(TaskOutcome.SUCCEEDED, **common)
    if status == "FAILED":
        code = fatal.get("code") or nice_status or "FAILED"
        message = fatal.get("description") or document.get("nice_status_short_description") or ""
        if code == "CANCELED" or document.get("canceled_by_admin"):
            message = message or document.get("canceled_by_admin_message") or "The Globus task was canceled."
            return TaskStatus(TaskOutcome.CANCELED, error_code=code, error_message=message, **common)
        return TaskStatus(
            TaskOutcome.FAILED,
            error_code=code[:64],
            error_message=message or f"The Globus task failed ({code}).",
            **common,
        )
    if status == "INACTIVE" and _deadline_passed(document):
        code = document.get("nice_status") or "INACTIVE"
        message = (
            document.get("nice_status_short_description")
            or "The Globus task stopped and its deadline has passed."
        )
        return TaskStatus(TaskOutcome.FAILED, error_code=code[:64], error_message=message, **common)
    return TaskStatus(TaskOutcome.ACTIVE, **common)


def _deadline_passed(document):
    deadline = document.get("deadline")
    if not deadline:
        return False
    try:
        moment = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except ValueError:
        return False
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment <= timezone.now()
