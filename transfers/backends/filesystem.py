"""Filesystem transfer backend: copies between StorageLocation.local_path roots.

Each file is written to a hidden temporary file beside its destination,
checked against the source's checksum, and only then linked into place. A
file already at the destination is never overwritten: an identical one counts
as already there, a different one is a conflict left untouched. A copy that
fails leaves no partial file behind, and the next copy of a file removes the
partial one a killed worker left.

The copying runs in a worker (``transfers.tasks.run_filesystem_job``), file by
file; this backend has no remote task to poll or cancel.
"""

import errno
import glob
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from transfers.backends.base import TaskOutcome, TaskStatus, TransferBackend
from transfers.models import ItemState, TaskState

CHUNK = 4 * 1024 * 1024
DEFAULT_ALGORITHM = "sha256"
_HEX_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


class CopyOutcome:
    COPIED = "copied"
    IDENTICAL = "identical"  # the destination already held the same bytes
    CONFLICT = "conflict"  # the destination holds different bytes; left untouched
    FAILED = "failed"


@dataclass
class CopyResult:
    outcome: str
    checksum: str = ""  # "<algorithm>:<hex>" of the source
    size: int = 0
    message: str = ""


def parse_checksum(value):
    """(algorithm, hex digest) of a stored checksum: 'sha256:ab12...' or a bare md5/sha hex digest."""
    if not value:
        return None
    algorithm, _, digest = value.partition(":")
    if not digest:
        digest = algorithm
        algorithm = _HEX_LENGTHS.get(len(digest), "")
    algorithm = algorithm.lower()
    if algorithm not in hashlib.algorithms_guaranteed:
        return None
    return algorithm, digest.lower()


def file_digest(path, algorithm):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _link_without_overwrite(temporary, destination):
    """Move ``temporary`` to ``destination``; FileExistsError if something is there."""
    try:
        os.link(temporary, destination)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
            raise
        # No hard links here: check, then rename (racy only against other writers).
        if destination.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(destination)) from err
        os.replace(temporary, destination)
        return
    temporary.unlink()


def _remove_stale_partials(destination):
    """Remove the partial files a killed copy run left beside ``destination``.

    A live copy keeps writing its own; one untouched for longer than a worker
    may run belongs to a run that was killed.
    """
    cutoff = time.time() - settings.Q_CLUSTER.get("timeout", 600)
    for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.partial-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:
            pass


class FilesystemBackend(TransferBackend):
    name = "filesystem"

    def submit(self, job, task):
        # Nothing remote to start: the copy run picks the task up.
        return f"filesystem-{job.pk}-{task.number}"

    def poll(self, tasks):
        outcomes = {
            TaskState.NEW: TaskOutcome.ACTIVE,
            TaskState.ACTIVE: TaskOutcome.ACTIVE,
            TaskState.SUCCEEDED: TaskOutcome.SUCCEEDED,
            TaskState.FAILED: TaskOutcome.FAILED,
            TaskState.CANCELED: TaskOutcome.CANCELED,
        }
        return {
            task.pk: TaskStatus(
                outcomes[task.state],
                nice_status=task.nice_status,
                files_done=task.files_done,
                files_skipped=task.files_skipped,
                bytes_done=task.bytes_done,
                error_code=task.error_code,
                error_message=task.error_message,
            )
            for task in tasks
        }

    def cancel(self, task):
        # The copy run checks the job's cancel flag between files.
        return False

    def successful_paths(self, task):
        return list(task.items.filter(state=ItemState.SUCCEEDED).values_list("file__subpath", flat=True))

    def copy(self, source, destination, subpath, *, checksum=None, size=None):
        """Copy one file from ``source`` to ``destination`` (StorageLocations).

        ``size`` is the size the catalog records: bytes of another size are not
        the file the catalog describes (truncated, or still being written).
        """
        source_path = Path(source.local_path) / subpath
        destination_path = Path(destination.local_path) / subpath
        expected = parse_checksum(checksum)
        algorithm = expected[0] if expected else DEFAULT_ALGORITHM
        if not source_path.is_file():
            return CopyResult(CopyOutcome.FAILED, message=f"{subpath} is missing at {source.alias}.")
        if size is not None and source_path.stat().st_size != size:
            return self._wrong_size(source, subpath, source_path.stat().st_size, size)
        try:
            if destination_path.exists():
                return self._compare_existing(source_path, destination_path, subpath, algorithm, destination)
            destination_path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_partials(destination_path)
        except OSError as err:
            return CopyResult(CopyOutcome.FAILED, message=f"Copying {subpath} failed: {err.strerror or err}.")
        temporary = destination_path.with_name(f".{destination_path.name}.partial-{uuid.uuid4().hex}")
        try:
            source_digest, copied_size = self._copy_bytes(source_path, temporary, algorithm)
            if size is not None and copied_size != size:
                return self._wrong_size(source, subpath, copied_size, size)
            if expected and source_digest != expected[1]:
                return CopyResult(
                    CopyOutcome.FAILED,
                    message=f"{subpath} at {source.alias} no longer matches its recorded checksum.",
                )
            if file_digest(temporary, algorithm) != source_digest:
                return CopyResult(CopyOutcome.FAILED, message=f"The copy of {subpath} did not verify.")
            os.utime(temporary, ns=(source_path.stat().st_atime_ns, source_path.stat().st_mtime_ns))
            try:
                _link_without_overwrite(temporary, destination_path)
            except FileExistsError:
                return self._compare_existing(source_path, destination_path, subpath, algorithm, destination)
        except OSError as err:
            return CopyResult(CopyOutcome.FAILED, message=f"Copying {subpath} failed: {err.strerror or err}.")
        finally:
            temporary.unlink(missing_ok=True)
        return CopyResult(CopyOutcome.COPIED, checksum=f"{algorithm}:{source_digest}", size=copied_size)

    def _wrong_size(self, source, subpath, actual, recorded):
        return CopyResult(
            CopyOutcome.FAILED,
            message=f"{subpath} at {source.alias} is {actual:,} bytes but the catalog records "
            f"{recorded:,} bytes; it was not copied. Scan {source.alias} again once the file is complete.",
        )

    def _copy_bytes(self, source_path, temporary, algorithm):
        digest = hashlib.new(algorithm)
        size = 0
        with open(source_path, "rb") as reader, open(temporary, "xb") as writer:
            while block := reader.read(CHUNK):
                digest.update(block)
                writer.write(block)
                size += len(block)
            writer.flush()
            os.fsync(writer.fileno())
        return digest.hexdigest(), size

    def _compare_existing(self, source_path, destination_path, subpath, algorithm, destination):
        source_digest = file_digest(source_path, algorithm)
        if file_digest(destination_path, algorithm) == source_digest:
            return CopyResult(
                CopyOutcome.IDENTICAL,
                checksum=f"{algorithm}:{source_digest}",
                size=source_path.stat().st_size,
            )
        return CopyResult(
            CopyOutcome.CONFLICT,
            checksum=f"{algorithm}:{source_digest}",
            message=f"A different file is already at {destination.alias}/{subpath}; it was left untouched.",
        )
