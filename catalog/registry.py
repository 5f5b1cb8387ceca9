"""Registers what a walk of a storage location saw, whatever did the walking.

A backend walks a location and hands in plain records (subpath, size,
modified time). This module parses each path with the naming conventions,
creates the subjects and sessions the paths imply, inserts raw files and
their replicas in batches, records the paths that fit no convention with the
reason, and at the end of a complete walk marks missing the copies the walk
no longer found. Nothing is ever deleted.

A replica the walk saw is "touched" (its ``updated_at`` set to now), so a
complete walk that started at time T knows every present replica at the
location not touched since T is gone. Copies recorded by a transfer while the
walk runs are newer than T and are left alone.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.db.models.functions import Lower
from django.utils import timezone

from catalog import naming
from catalog.models import (
    FileType,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    Session,
    StorageLocation,
    Subject,
    UnmatchedCategory,
    UnmatchedPath,
)

# The longest path a raw file or an unmatched path can be stored with.
MAX_SUBPATH_LENGTH = RawFile._meta.get_field("subpath").max_length
# Stands in for "some file in this folder" when a folder is checked with the file rules.
_ANY_FILE = "any-file"


class FileRecord(NamedTuple):
    """One file as a backend saw it: where, how big, last modified (aware, or None)."""

    subpath: str
    size: int
    modified: datetime | None = None


class Skipped(NamedTuple):
    """A path a walk did not register, and why: pruned folders, vanished ones, odd entries."""

    subpath: str
    reason: str
    is_folder: bool
    category: str | None = None  # worked out from the path when None


@dataclass
class BatchResult:
    """What registering one batch changed."""

    registered: int = 0
    unchanged: int = 0
    marked_missing: int = 0
    unmatched: list[Skipped] = field(default_factory=list)


def storage_problem(subpath: str) -> str | None:
    """Why `subpath` cannot be stored in the catalog at all, or None."""
    try:
        subpath.encode("utf-8")
    except UnicodeEncodeError:
        return "The name is not valid UTF-8; rename it on the storage."
    if len(subpath) > MAX_SUBPATH_LENGTH:
        return f"The path is longer than the {MAX_SUBPATH_LENGTH} characters the catalog can store."
    return None


def printable(text: str, limit: int | None = None) -> str:
    """`text` in a form every database stores and every page shows, cut to `limit` characters."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def folder_problem(dataset_type: str, subpath: str) -> str | None:
    """Why a walk should not list the folder at `subpath`, or None when it can hold sessions' files.

    Only top-level folders named like water restriction numbers, session folders
    inside them and the folders of a session that fit its probe and Kilosort
    conventions are listed; anything else is reported once, with the reason.
    """
    problem = storage_problem(subpath)
    if problem is not None:
        return problem
    parts = subpath.split("/")
    if len(parts) == 1:
        if naming.is_water_restriction_number(subpath):
            return None
        result = naming.parse_session_folder(dataset_type, f"{subpath}/{_ANY_FILE}")
    elif len(parts) == 2:
        result = naming.parse_session_folder(dataset_type, subpath)
    else:
        result = naming.parse_subpath(dataset_type, f"{subpath}/{_ANY_FILE}")
    if isinstance(result, naming.Unmatched):
        return result.reason.replace(f"{subpath}/{_ANY_FILE}", subpath)
    return None


def categorize(dataset_type: str, subpath: str) -> str:
    """The kind of problem of an unmatched path, for summaries, from where it lies."""
    parts = subpath.split("/")
    if any(part.startswith(".") for part in parts):
        return UnmatchedCategory.HIDDEN
    if storage_problem(subpath) is not None or not naming.is_valid_subpath(subpath):
        return UnmatchedCategory.INVALID
    if len(parts) == 1 or not naming.is_water_restriction_number(parts[0]):
        return UnmatchedCategory.OUTSIDE_SUBJECT
    if len(parts) == 2 or isinstance(
        naming.parse_session_folder(dataset_type, "/".join(parts[:2])), naming.Unmatched
    ):
        return UnmatchedCategory.OUTSIDE_SESSION
    return UnmatchedCategory.IN_SESSION


def default_source(location: StorageLocation) -> str:
    """How copies found by walking `location` are learned: discovery at an archive, else a scan."""
    return ReplicaSource.DISCOVER if location.is_archive else ReplicaSource.SCAN


class Registry:
    """Registers the records of one walk of one location, batch by batch.

    With a ``run``, unmatched paths are stored on that run; without one they are
    only returned. Memory stays flat: only the subjects (a lab's worth) are
    cached between batches.
    """

    def __init__(self, location: StorageLocation, *, source: str | None = None, run=None):
        self.location = location
        self.dataset_type = location.dataset_type
        self.source = source or default_source(location)
        self.run = run
        file_types = list(FileType.objects.filter(dataset_type=self.dataset_type))
        self._file_types = {file_type.name: file_type for file_type in file_types}
        self._rules = [file_type.as_rule() for file_type in file_types]
        missing = {naming.UNKNOWN_FILE_TYPE[self.dataset_type]} - self._file_types.keys()
        if missing:
            raise FileType.DoesNotExist(
                f"File type {missing.pop()} is not in the catalog; run the migrations to seed file types."
            )
        self._subjects: dict[str, int] = {}

    # ------------------------------------------------------------------ files
    def register(self, records: Iterable[FileRecord]) -> BatchResult:
        """Register a batch of files; call inside a transaction to keep the batch whole."""
        result = BatchResult()
        parsed: dict[str, tuple[FileRecord, naming.ParsedPath]] = {}
        for record in records:
            outcome = self._parse(record.subpath)
            if isinstance(outcome, Skipped):
                result.unmatched.append(outcome)
            else:
                parsed[record.subpath] = (record, outcome)
        if parsed:
            self._register_parsed(parsed, result)
        self.record_unmatched(result.unmatched)
        return result

    def _parse(self, subpath: str) -> naming.ParsedPath | Skipped:
        problem = storage_problem(subpath)
        if problem is not None:
            return Skipped(subpath, problem, False, UnmatchedCategory.INVALID)
        outcome = naming.parse_subpath(self.dataset_type, subpath, self._rules)
        if isinstance(outcome, naming.Unmatched):
            return Skipped(subpath, outcome.reason, False)
        return outcome

    def _register_parsed(self, parsed, result: BatchResult) -> None:
        now = timezone.now()
        subjects = self._subject_ids({path.water_restriction_number for _, path in parsed.values()})
        sessions = self._session_ids(
            {
                (subjects[path.water_restriction_number.lower()], path.session_date, path.ident)
                for _, path in parsed.values()
            }
        )
        files = self._files(parsed.keys())
        new_files = [
            RawFile(
                session_id=sessions[
                    (subjects[path.water_restriction_number.lower()], path.session_date, path.ident)
                ],
                dataset_type=self.dataset_type,
                subpath=subpath,
                probe_insertion=path.probe_insertion,
                file_type=self._file_types.get(path.file_type)
                or self._file_types[naming.UNKNOWN_FILE_TYPE[self.dataset_type]],
                size=record.size,
                modified_at=record.modified,
            )
            for subpath, (record, path) in parsed.items()
            if subpath not in files
        ]
        if new_files:
            # Another walk may insert the same file meanwhile: keep whichever row won.
            RawFile.objects.bulk_create(new_files, ignore_conflicts=True)
            files.update(self._files([raw_file.subpath for raw_file in new_files]))
        replicas = {
            file_id: (pk, state)
            for pk, file_id, state in Replica.objects.filter(
                location=self.location, file_id__in=[pk for pk, _ in files.values()]
            ).values_list("pk", "file_id", "state")
        }
        new_replicas, revive, touch, lose = [], [], [], []
        for subpath, (record, _) in parsed.items():
            file_id, size = files[subpath]
            replica = replicas.get(file_id)
            if size != record.size:
                result.unmatched.append(
                    Skipped(
                        subpath,
                        f"The file here is {record.size:,} bytes but the catalog records {size:,} bytes; "
                        "it is not counted as a copy. A transfer may still be writing it; "
                        "if not, compare it with the other copies.",
                        False,
                        UnmatchedCategory.SIZE_CONFLICT,
                    )
                )
                if replica is not None and replica[1] == ReplicaState.PRESENT:
                    lose.append(replica[0])
            elif replica is None:
                new_replicas.append(Replica(file_id=file_id, location=self.location, source=self.source))
            elif replica[1] == ReplicaState.MISSING:
                revive.append(replica[0])
            else:
                touch.append(replica[0])
        if new_replicas:
            Replica.objects.bulk_create(new_replicas, ignore_conflicts=True)
        if revive:
            Replica.objects.filter(pk__in=revive).update(
                state=ReplicaState.PRESENT, source=self.source, updated_at=now
            )
        if touch:
            Replica.objects.filter(pk__in=touch).update(updated_at=now)
        lost = 0
        if lose:
            stale = Replica.objects.filter(pk__in=lose)
            if self.run is not None and self.run.started_at is not None:
                # A copy recorded since the walk began (a transfer ending) is newer than the
                # listing, which may have caught the file while it was still being written.
                stale = stale.filter(updated_at__lt=self.run.started_at)
            lost = stale.update(state=ReplicaState.MISSING, updated_at=now)
        result.registered += len(new_replicas) + len(revive)
        result.unchanged += len(touch)
        result.marked_missing += lost

    def _files(self, subpaths) -> dict[str, tuple[int, int]]:
        """{subpath: (pk, size)} of the registered files among `subpaths`."""
        return {
            subpath: (pk, size)
            for pk, subpath, size in RawFile.objects.filter(
                dataset_type=self.dataset_type, subpath__in=list(subpaths)
            ).values_list("pk", "subpath", "size")
        }

    def _subject_ids(self, water_restriction_numbers: set[str]) -> dict[str, int]:
        """{lower-case water restriction number: subject pk}, creating subjects that are missing."""
        wanted = {number.lower(): number for number in water_restriction_numbers}
        unknown = [key for key in wanted if key not in self._subjects]
        if unknown:
            self._load_subjects(unknown)
            absent = [key for key in unknown if key not in self._subjects]
            if absent:
                Subject.objects.bulk_create(
                    [Subject(water_restriction_number=wanted[key]) for key in absent], ignore_conflicts=True
                )
                self._load_subjects(absent)
        return {key: self._subjects[key] for key in wanted}

    def _load_subjects(self, keys: list[str]) -> None:
        rows = (
            Subject.objects.annotate(key=Lower("water_restriction_number"))
            .filter(key__in=keys)
            .values_list("key", "pk")
        )
        self._subjects.update(rows)

    def _session_ids(self, keys: set[tuple[int, object, str]]) -> dict[tuple[int, object, str], int]:
        """{(subject pk, date, ident): session pk}, creating sessions that are missing."""

        def load():
            rows = Session.objects.filter(
                subject_id__in={key[0] for key in keys}, session_date__in={key[1] for key in keys}
            ).values_list("subject_id", "session_date", "ident", "pk")
            return {(subject, day, ident): pk for subject, day, ident, pk in rows}

        sessions = load()
        absent = keys - sessions.keys()
        if absent:
            Session.objects.bulk_create(
                [Session(subject_id=who, session_date=day, ident=ident) for who, day, ident in absent],
                ignore_conflicts=True,
            )
            sessions = load()
        return sessions

    # -------------------------------------------------------------- unmatched
    def record_unmatched(self, skipped: Iterable[Skipped]) -> int:
        """Store `skipped` paths on the run (when there is one); returns how many were given."""
        rows = {}
        for entry in skipped:
            subpath = printable(entry.subpath, MAX_SUBPATH_LENGTH)
            rows[subpath] = UnmatchedPath(
                run=self.run,
                subpath=subpath,
                is_folder=entry.is_folder,
                category=entry.category or categorize(self.dataset_type, entry.subpath),
                reason=printable(entry.reason),
            )
        if self.run is not None and rows:
            UnmatchedPath.objects.bulk_create(rows.values(), ignore_conflicts=True)
        return len(rows)

    # ---------------------------------------------------------------- missing
    def mark_missing(self, *, not_seen_since: datetime, keep_under: Iterable[str] = ()) -> int:
        """Mark missing the present copies at the location no walk has touched since `not_seen_since`.

        Copies under the folders in `keep_under` (ones that could not be listed)
        are left as they are: the walk does not know whether they are there.
        """
        stale = Replica.objects.filter(
            location=self.location, state=ReplicaState.PRESENT, updated_at__lt=not_seen_since
        )
        for folder in keep_under:
            stale = stale.exclude(file__subpath__startswith=f"{folder}/") if folder else stale.none()
        return stale.update(state=ReplicaState.MISSING, updated_at=timezone.now())

    def present_count(self) -> int:
        return Replica.objects.filter(location=self.location, state=ReplicaState.PRESENT).count()
