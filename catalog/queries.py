"""Read-side queries for the catalog pages, each a fixed number of SQL queries
whatever the size of the catalog."""

import re
from dataclasses import dataclass, field

from django.db.models import (
    Count,
    Exists,
    FilteredRelation,
    OuterRef,
    Prefetch,
    Q,
    Sum,
)
from django.db.models.functions import Lower

from catalog.models import (
    FileType,
    LocationRole,
    RawFile,
    Replica,
    ReplicaState,
    Session,
    StorageLocation,
    Subject,
)

# How a session's archive status reads on the pages.
STATUS_LABELS = {
    "no-files": "no files",
    "local-only": "local only",
    "archiving": "archiving",
    "archived": "archived",
    "partly-archived": "partly archived",
    "missing-copies": "missing copies",
}

# Other apps may add what they know about sessions (the transfers app: which
# sessions are being archived) without the catalog depending on them. Each
# provider takes a list of session ids and returns {session id: [job, ...]};
# apps register theirs when they are ready.
_session_job_providers = []


def register_session_jobs(provider):
    """Add ``provider`` to the sources of unfinished archive jobs shown with sessions."""
    if provider not in _session_job_providers:
        _session_job_providers.append(provider)
    return provider


def _unfinished_archive_jobs(session_ids):
    jobs = {}
    for provider in _session_job_providers:
        for session_id, session_jobs in provider(session_ids).items():
            jobs.setdefault(session_id, []).extend(session_jobs)
    return jobs


def _is_archived():
    """True for a file with a present copy at an archive location."""
    return Exists(
        Replica.objects.filter(file=OuterRef("pk"), state=ReplicaState.PRESENT, location__role=LocationRole.ARCHIVE)
    )


def _subject_condition(query):
    condition = Q(water_restriction_number__icontains=query)
    if query.isdigit():
        condition |= Q(subject_id__isnull=False) & Q(subject_id__contains=query)
    return condition


def matching_subjects(query=""):
    """Subjects whose water restriction number or subject id contains ``query``
    (case-insensitive), in the lab's order."""
    subjects = Subject.objects.order_by(Lower("water_restriction_number"), "pk")
    query = (query or "").strip()
    if query:
        subjects = subjects.filter(_subject_condition(query))
    return subjects


def archive_location_ids():
    return list(StorageLocation.objects.filter(role=LocationRole.ARCHIVE).values_list("pk", flat=True))


def _with_archive_copy(files, archive_ids):
    """``files`` joined to their present archive copy, if any, as ``archive_copy``.

    There is one archive location per dataset type and one replica per file
    and location, so the join keeps one row per file. A join also keeps the
    planner's estimate low, where an EXISTS per aggregate is costed high
    enough for PostgreSQL to spend longer compiling it than running it.
    """
    condition = Q(replicas__state=ReplicaState.PRESENT, replicas__location__in=archive_ids)
    return files.annotate(archive_copy=FilteredRelation("replicas", condition=condition))


_ARCHIVED = Q(archive_copy__isnull=False)


def attach_subject_totals(subjects):
    """Set session, file, byte and archived counts on each of ``subjects`` (a
    page of them) with three queries."""
    subjects = list(subjects)
    ids = [subject.pk for subject in subjects]
    sessions = dict(
        Session.objects.filter(subject__in=ids).order_by().values_list("subject").annotate(count=Count("pk"))
    )
    files = _with_archive_copy(RawFile.objects.filter(session__subject__in=ids), archive_location_ids())
    totals = {
        row["session__subject"]: row
        for row in files.order_by()
        .values("session__subject")
        .annotate(
            files=Count("pk"),
            bytes=Sum("size"),
            archived_files=Count("pk", filter=_ARCHIVED),
            archived_bytes=Sum("size", filter=_ARCHIVED),
        )
    }
    for subject in subjects:
        row = totals.get(subject.pk, {})
        subject.session_count = sessions.get(subject.pk, 0)
        subject.file_count = row.get("files") or 0
        subject.total_bytes = row.get("bytes") or 0
        subject.archived_files = row.get("archived_files") or 0
        subject.archived_bytes = row.get("archived_bytes") or 0
        subject.archived_percent = int(100 * subject.archived_bytes / subject.total_bytes) if subject.total_bytes else 0
    return subjects


def find_subject(key):
    """The subject named by a water restriction number or a subject id, or None."""
    key = (key or "").strip()
    if not key:
        return None
    condition = Q(water_restriction_number__iexact=key)
    if key.isdigit():
        condition |= Q(subject_id=int(key))
    # A subject id wins over a water restriction number that happens to be digits.
    matches = sorted(Subject.objects.filter(condition)[:2], key=lambda s: str(s.subject_id) != key)
    return matches[0] if matches else None


def attach_files(sessions):
    """Give each of ``sessions`` its files (``file_list``) with their present and
    missing copies; three queries.

    Locations are few and shared by every file, so they are loaded once and
    attached in Python instead of joined per replica.
    """
    sessions = list(sessions)
    if not sessions:
        return sessions
    locations = {location.pk: location for location in StorageLocation.objects.all()}
    replicas = Replica.objects.only("file_id", "location_id", "state", "source", "verified_at")
    files = (
        RawFile.objects.filter(session__in=sessions)
        .select_related("file_type")
        .prefetch_related(Prefetch("replicas", queryset=replicas, to_attr="all_replicas"))
        .order_by("dataset_type", "subpath")
    )
    by_session = {session.pk: session for session in sessions}
    for session in sessions:
        session.file_list = []
    folders = {}
    for raw_file in files:
        session = by_session[raw_file.session_id]
        session.file_list.append(raw_file)
        key = (session.pk, raw_file.dataset_type)
        if key not in folders:
            folders[key] = session.folder(raw_file.dataset_type) + "/"
        # Inside its session the file is named by its path below the session's folder.
        raw_file.path_in_session = raw_file.subpath.removeprefix(folders[key])
        for replica in raw_file.all_replicas:
            replica.location = locations[replica.location_id]
        _describe_copies(raw_file)
    return sessions


def session_overviews(sessions):
    """Give each of ``sessions`` (a page of them) its summary and unfinished
    archive jobs from grouped counts, without loading files; four queries.

    Files and their copies are counted in two queries joined on indexes
    rather than with EXISTS per file, which PostgreSQL may answer by hashing
    the whole replica table.
    """
    sessions = list(sessions)
    if not sessions:
        return sessions
    archive_ids = archive_location_ids()
    groups = (
        _with_archive_copy(RawFile.objects.filter(session__in=sessions), archive_ids)
        .order_by()
        .values("session", "dataset_type", "probe_insertion")
        .annotate(
            files=Count("pk"),
            bytes=Sum("size"),
            archived_files=Count("pk", filter=_ARCHIVED),
            archived_bytes=Sum("size", filter=_ARCHIVED),
        )
    )
    copies = {
        row["file__session"]: row
        for row in Replica.objects.filter(file__session__in=sessions)
        .order_by()
        .values("file__session")
        .annotate(
            with_copy=Count("file", distinct=True, filter=Q(state=ReplicaState.PRESENT)),
            archive_lost=Count("file", distinct=True, filter=Q(state=ReplicaState.MISSING, location__in=archive_ids)),
        )
    }
    counts = {session.pk: _empty_counts() for session in sessions}
    for group in groups:
        session_counts = counts[group["session"]]
        for name in ("files", "bytes", "archived_files", "archived_bytes"):
            session_counts[name] += group[name] or 0
        session_counts["dataset_types"].add(group["dataset_type"])
        if group["probe_insertion"] is not None:
            session_counts["probes"].add(group["probe_insertion"])
    jobs = _unfinished_archive_jobs(list(counts))
    for session in sessions:
        session.archive_jobs = jobs.get(session.pk, [])
        session_counts = counts[session.pk]
        session_copies = copies.get(session.pk, {"with_copy": 0, "archive_lost": 0})
        session.summary = _summary(
            session_counts,
            missing=session_copies["with_copy"] < session_counts["files"] or bool(session_copies["archive_lost"]),
            # Every archived file has a present copy; any other file with one can be archived.
            archivable=session_copies["with_copy"] > session_counts["archived_files"],
            archiving=bool(session.archive_jobs),
        )
    return sessions


def _empty_counts():
    return {
        "files": 0,
        "bytes": 0,
        "archived_files": 0,
        "archived_bytes": 0,
        "dataset_types": set(),
        "probes": set(),
    }


def _describe_copies(raw_file):
    raw_file.present_locations = [
        replica.location for replica in raw_file.all_replicas if replica.state == ReplicaState.PRESENT
    ]
    raw_file.missing_locations = [
        replica.location for replica in raw_file.all_replicas if replica.state == ReplicaState.MISSING
    ]
    raw_file.archived = any(location.is_archive for location in raw_file.present_locations)
    # A lost local copy of an archived file is the normal end of a rig's disk;
    # a file with no copy anywhere, or a lost archive copy, is not.
    raw_file.copies_missing = not raw_file.present_locations or any(
        location.is_archive for location in raw_file.missing_locations
    )


def _summary(counts, *, missing, archivable, archiving):
    """A session's summary from its counts; ``status`` is one of ``STATUS_LABELS``."""
    if counts["files"] == 0:
        status = "no-files"
    elif archiving:
        status = "archiving"
    elif counts["archived_files"] == counts["files"]:
        status = "archived"
    elif counts["archived_files"]:
        status = "partly-archived"
    elif missing:
        status = "missing-copies"
    else:
        status = "local-only"
    return {
        "files": counts["files"],
        "bytes": counts["bytes"],
        "archived_files": counts["archived_files"],
        "archived_bytes": counts["archived_bytes"],
        "dataset_types": sorted(counts["dataset_types"]),
        "probes": sorted(counts["probes"]),
        "status": status,
        "status_label": STATUS_LABELS[status],
        "missing_copies": missing,
        "archivable": archivable and not archiving,
    }


# Search and retrieval ------------------------------------------------------

_KEY_SEPARATORS = re.compile(r"[\s,;]+")


def split_subject_keys(text):
    """The water restriction numbers and subject ids in ``text``, in order, once each."""
    keys = []
    for key in _KEY_SEPARATORS.split(text or ""):
        if key and key.lower() not in {k.lower() for k in keys}:
            keys.append(key)
    return keys


def subjects_for_keys(keys):
    """The subjects named by ``keys`` (water restriction numbers, case-insensitive,
    or subject ids) and the keys that name none, in one query."""
    if not keys:
        return [], []
    condition = Q()
    for key in keys:
        condition |= Q(water_restriction_number__iexact=key)
        if key.isdigit():
            condition |= Q(subject_id=int(key))
    subjects = list(Subject.objects.filter(condition).order_by(Lower("water_restriction_number")))
    named = {s.water_restriction_number.lower() for s in subjects} | {
        str(s.subject_id) for s in subjects if s.subject_id is not None
    }
    unknown = [key for key in keys if key.lower() not in named]
    return subjects, unknown


@dataclass
class FileFilter:
    """What the search page narrows raw files down to."""

    subjects: list = field(default_factory=list)
    date_from: object = None
    date_to: object = None
    dataset_type: str = ""
    file_type: object = None
    # Subjects were named but none exists: nothing matches, rather than everything.
    matches_nothing: bool = False

    @property
    def narrows_files(self):
        return bool(self.dataset_type or self.file_type)

    def files(self, queryset=None):
        files = RawFile.objects.all() if queryset is None else queryset
        if self.dataset_type:
            files = files.filter(dataset_type=self.dataset_type)
        if self.file_type is not None:
            files = files.filter(file_type=self.file_type)
        return files

    def sessions(self):
        if self.matches_nothing:
            return Session.objects.none()
        sessions = Session.objects.select_related("subject")
        if self.subjects:
            sessions = sessions.filter(subject__in=[subject.pk for subject in self.subjects])
        if self.date_from:
            sessions = sessions.filter(session_date__gte=self.date_from)
        if self.date_to:
            sessions = sessions.filter(session_date__lte=self.date_to)
        if self.narrows_files:
            sessions = sessions.filter(Exists(self.files().filter(session=OuterRef("pk"))))
        return sessions.order_by(Lower("subject__water_restriction_number"), "session_date", "ident", "pk")


def search_sessions(file_filter):
    """Sessions that hold files matching ``file_filter``, by subject and date."""
    return file_filter.sessions()


def attach_matching_counts(sessions, file_filter):
    """Give each of ``sessions`` (a page of them) the number, size, archived
    number and dataset types of its files that match ``file_filter``; two queries."""
    sessions = list(sessions)
    if not sessions:
        return sessions
    files = _with_archive_copy(file_filter.files(RawFile.objects.filter(session__in=sessions)), archive_location_ids())
    groups = (
        files.order_by()
        .values("session", "dataset_type")
        .annotate(files=Count("pk"), bytes=Sum("size"), archived=Count("pk", filter=_ARCHIVED))
    )
    by_session = {session.pk: session for session in sessions}
    for session in sessions:
        session.matching_count = session.matching_bytes = session.matching_archived = 0
        session.matching_types = []
    for group in groups.order_by("session", "dataset_type"):
        session = by_session[group["session"]]
        session.matching_count += group["files"]
        session.matching_bytes += group["bytes"] or 0
        session.matching_archived += group["archived"]
        session.matching_types.append(group["dataset_type"])
    return sessions


def attach_matching_files(sessions, file_filter):
    """Give each of ``sessions`` its files that match ``file_filter``
    (``matching_files``), each marked archived or not; one query."""
    sessions = list(sessions)
    by_session = {session.pk: session for session in sessions}
    for session in sessions:
        session.matching_files = []
    if not sessions:
        return sessions
    files = (
        file_filter.files(RawFile.objects.filter(session__in=list(by_session)))
        .select_related("file_type")
        .annotate(archived=_is_archived())
        .order_by("session", "dataset_type", "subpath")
    )
    for raw_file in files:
        by_session[raw_file.session_id].matching_files.append(raw_file)
    return sessions


def file_types():
    """Every file type, by dataset type and name, for filter menus."""
    return list(FileType.objects.order_by("dataset_type", "name"))


def writable_locations():
    """The locations retrieved files may be written to."""
    return list(StorageLocation.objects.filter(writable=True).order_by("dataset_type", "alias"))
