"""Walking a storage location, one listing per folder, as plain records.

A walk lists the location's root, then every folder that can hold sessions'
files, depth first in name order, and yields one ``Listing`` per folder: the
files in it as ``FileRecord(subpath, size, modified)`` and the paths it left
out, with the reason. Folders that fit no naming convention are reported once
and never listed, so junk trees cost one line, not one call per file.

A Globus folder is read with one ``operation_ls`` (paged with the SDK's
limit/offset paginator when it holds more entries than a page). Failures
globus-sdk could not retry away are retried here with a longer backoff. A
folder that vanishes while the walk runs (404) is reported on its listing, not
raised; only a missing root fails the walk.

``Walk.pending`` (the folders still to list, next last) is the walk's whole
state: save it after a listing and pass it back to carry on from there.
"""

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import globus_sdk
from globus_sdk.paging import LimitOffsetTotalPaginator

from catalog.models import Backend, StorageLocation, UnmatchedCategory
from catalog.registry import FileRecord, Skipped, folder_problem
from transfers.clients import globus_errors
from transfers.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

# Entries per operation_ls page. Globus answers up to 100,000; each further page
# makes the endpoint list the whole folder again, so pages are large.
GLOBUS_PAGE_SIZE = 10_000
# Seconds to wait before listing a folder again once globus-sdk's own retries
# (a few seconds of backoff) have not outlasted a burst of 5xx answers.
RETRY_DELAYS = (5, 30, 120)


class Entry(NamedTuple):
    """One name in a folder: kind is "dir", "file" or a description of something else."""

    name: str
    kind: str
    size: int = 0
    modified: datetime | None = None


class FolderGone(Exception):
    """The folder is no longer there (or no longer a folder)."""


class FolderUnreadable(Exception):
    """The folder is there but may not be listed."""


@dataclass(frozen=True)
class Listing:
    """What one folder held. ``listed`` is False when the folder vanished or could not be read."""

    subpath: str
    files: tuple[FileRecord, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    listed: bool = True


def _child(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class Walk:
    """Depth-first walk over ``list_folder(subpath) -> [Entry]``, pruned by ``prune(subpath) -> reason``."""

    def __init__(
        self,
        list_folder: Callable[[str], list[Entry]],
        *,
        prune: Callable[[str], str | None],
        describe_root: str,
        pending: list[str] | None = None,
    ):
        self.list_folder = list_folder
        self.prune = prune
        self.describe_root = describe_root
        self.pending = list(pending) if pending is not None else [""]

    @property
    def api_calls(self) -> int:
        """Requests made to a remote service so far (0 for a filesystem)."""
        return getattr(self.list_folder, "calls", 0)

    def __iter__(self) -> Iterator[Listing]:
        while self.pending:
            folder = self.pending.pop()
            try:
                entries = self.list_folder(folder)
            except (FolderGone, FolderUnreadable) as error:
                if not folder:
                    raise PermanentError(
                        f"The root of {self.describe_root} cannot be listed: {error} "
                        "Check the location's settings and that the storage is reachable.",
                        code="LocationRootUnavailable",
                    ) from error
                category = (
                    UnmatchedCategory.VANISHED
                    if isinstance(error, FolderGone)
                    else UnmatchedCategory.UNREADABLE
                )
                yield Listing(folder, skipped=(Skipped(folder, str(error), True, category),), listed=False)
                continue
            files, skipped, folders = [], [], []
            for entry in sorted(entries, key=lambda entry: entry.name):
                subpath = _child(folder, entry.name)
                if entry.kind == "dir":
                    reason = self.prune(subpath)
                    if reason is None:
                        folders.append(subpath)
                    else:
                        skipped.append(Skipped(subpath, reason, True))
                elif entry.kind == "file":
                    files.append(FileRecord(subpath, entry.size, entry.modified))
                else:
                    skipped.append(
                        Skipped(
                            subpath,
                            f"This is {entry.kind}, not a regular file or folder; it is not followed.",
                            False,
                            UnmatchedCategory.NOT_A_FILE,
                        )
                    )
            self.pending.extend(reversed(folders))
            yield Listing(folder, tuple(files), tuple(skipped))


def _pruner(location: StorageLocation) -> Callable[[str], str | None]:
    dataset_type = location.dataset_type
    return lambda subpath: folder_problem(dataset_type, subpath)


# ------------------------------------------------------------------ filesystem
def _filesystem_lister(root: str) -> Callable[[str], list[Entry]]:
    def list_folder(subpath: str) -> list[Entry]:
        path = os.path.join(root, subpath) if subpath else root
        try:
            with os.scandir(path) as scan:
                found = list(scan)
        except (FileNotFoundError, NotADirectoryError) as error:
            raise FolderGone("The folder disappeared while the location was walked.") from error
        except OSError as error:
            raise FolderUnreadable(f"The folder could not be read ({error.strerror}).") from error
        entries = []
        for item in found:
            try:
                if item.is_dir(follow_symlinks=False):
                    entries.append(Entry(item.name, "dir"))
                elif item.is_file():
                    status = item.stat()
                    modified = datetime.fromtimestamp(status.st_mtime, tz=UTC)
                    entries.append(Entry(item.name, "file", status.st_size, modified))
                elif item.is_symlink():
                    entries.append(Entry(item.name, "a symbolic link to a folder or to nothing"))
                else:
                    entries.append(Entry(item.name, "a special file (device, socket or pipe)"))
            except FileNotFoundError:
                continue  # removed between the listing and its stat: it is not there
            except OSError as error:
                entries.append(Entry(item.name, f"an entry that could not be read ({error.strerror})"))
        return entries

    return list_folder


def walk_filesystem(location: StorageLocation, *, pending: list[str] | None = None) -> Walk:
    """A walk of a location on this server's filesystem, rooted at its local path."""
    if not location.local_path:
        raise PermanentError(
            f"Location {location.alias} has no local path to walk; set it in the admin.",
            code="LocationNotWalkable",
        )
    return Walk(
        _filesystem_lister(location.local_path),
        prune=_pruner(location),
        describe_root=f"{location.alias} ({location.local_path})",
        pending=pending,
    )


# ---------------------------------------------------------------------- Globus
class GlobusLister:
    """Lists folders of one collection with one ``operation_ls`` per folder (per page)."""

    def __init__(
        self,
        client: globus_sdk.TransferClient,
        location: StorageLocation,
        *,
        page_size: int = GLOBUS_PAGE_SIZE,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.collection_id = str(location.collection_id)
        self.root = location.root_path.rstrip("/")
        self.page_size = page_size
        self.retry_delays = retry_delays
        self.sleep = sleep
        self.calls = 0

    def __call__(self, subpath: str) -> list[Entry]:
        path = f"{self.root}/{subpath}" if subpath else f"{self.root}/"
        delays = iter(self.retry_delays)
        while True:
            try:
                return self._list(path)
            except TransientError as error:
                delay = next(delays, None)
                if delay is None:
                    raise
                logger.warning("Listing %s failed (%s); trying again in %s s", path, error, delay)
                self.sleep(delay)

    def _list(self, path: str) -> list[Entry]:
        paginator = LimitOffsetTotalPaginator(
            self.client.operation_ls,
            items_key="DATA",
            get_page_size=lambda page: len(page["DATA"]),
            max_total_results=None,
            page_size=self.page_size,
            client_args=(self.collection_id,),
            client_kwargs={"path": path, "orderby": "name ASC"},
        )
        entries = []
        with globus_errors():
            try:
                for page in paginator.pages():
                    self.calls += 1
                    data = page["DATA"]
                    entries.extend(_globus_entry(item) for item in data)
                    if not data:
                        break  # an empty page ends the folder whatever its total says
            except globus_sdk.GlobusAPIError as error:
                self.calls += 1
                folder_error = _folder_error(error, path)
                if folder_error is None:
                    raise
                raise folder_error from error
        return entries


def _folder_error(error: globus_sdk.GlobusAPIError, path: str) -> Exception | None:
    """The walk's view of an error about one folder, or None for errors that stop the walk."""
    code = error.code or ""
    if error.http_status == 404 or code.startswith("ExternalError.DirListingFailed.NotDirectory"):
        return FolderGone(f"The folder {path} disappeared while the location was walked ({code}).")
    if (
        error.http_status == 403
        and not error.info.consent_required
        and not error.info.authorization_parameters
    ):
        return FolderUnreadable(f"Globus may not list {path} ({code}: {error.message}).")
    return None


def _globus_entry(item: dict) -> Entry:
    kind = item.get("type")
    if kind == "dir":
        return Entry(item["name"], "dir")
    if kind == "file":
        modified = item.get("last_modified")
        return Entry(item["name"], "file", int(item.get("size") or 0), _parse_time(modified))
    return Entry(item["name"], f"a Globus entry of type {kind!r}")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def walk_globus(
    client: globus_sdk.TransferClient,
    location: StorageLocation,
    *,
    pending: list[str] | None = None,
    page_size: int = GLOBUS_PAGE_SIZE,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> Walk:
    """A walk of a location's root inside its Globus collection, as ``client`` sees it."""
    return Walk(
        GlobusLister(client, location, page_size=page_size, retry_delays=retry_delays, sleep=sleep),
        prune=_pruner(location),
        describe_root=f"{location.alias} ({location.collection_id}:{location.root_path})",
        pending=pending,
    )


def walk_location(location: StorageLocation, *, client=None, pending=None, **options) -> Walk:
    """The walk that fits the location's backend; Globus walks need ``client``."""
    if location.backend == Backend.GLOBUS:
        if client is None:
            raise ValueError("A Globus location is walked with a TransferClient.")
        return walk_globus(client, location, pending=pending, **options)
    return walk_filesystem(location, pending=pending)
