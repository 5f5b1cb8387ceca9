"""What every transfer backend offers the job runner.

A backend moves the files of one TransferTask between two storage locations
of its kind. The runner (``transfers.jobs``) owns the job's state; a backend
only talks to storage and reports what it saw.
"""

from dataclasses import dataclass


class TaskOutcome:
    """Where a backend task stands, in the backend-neutral words of the runner."""

    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    FINAL = frozenset({SUCCEEDED, FAILED, CANCELED})


@dataclass
class TaskStatus:
    """One backend task's progress as last reported by its backend."""

    outcome: str
    nice_status: str = ""
    files_done: int = 0
    files_skipped: int = 0
    bytes_done: int = 0
    faults: int = 0
    error_code: str = ""
    error_message: str = ""

    @property
    def is_final(self):
        return self.outcome in TaskOutcome.FINAL


class TransferBackend:
    """Interface of a backend; one instance serves one identity and one kind of storage."""

    name = ""

    def submit(self, job, task):
        """Start ``task`` of ``job``; store its backend id on the task row.

        Must be safe to call again for a task whose earlier submission may or
        may not have reached the backend.
        """
        raise NotImplementedError

    def unknown_files_at_destination(self, job, task):
        """Subpaths of ``task``'s pending files that already exist at the destination
        though the catalog holds no present copy of that file there.

        Sending them could replace a file nobody has recorded; a backend whose
        copies never replace anything finds none.
        """
        return set()

    def poll(self, tasks):
        """``{task.pk: TaskStatus}`` for submitted tasks, as few calls as possible."""
        raise NotImplementedError

    def cancel(self, task):
        """Ask the backend to stop ``task``; True if it is stopped already."""
        raise NotImplementedError

    def successful_paths(self, task):
        """Subpaths (relative to the location root) of the files ``task`` copied."""
        raise NotImplementedError
