"""Read-side queries for the catalog pages, each a fixed number of SQL queries."""

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from catalog.models import LocationRole, RawFile, Replica, ReplicaState, Session, StorageLocation, Subject


def _per_subject(queryset, aggregate):
    """A correlated subquery giving one aggregate of ``queryset`` per subject."""
    return Coalesce(
        Subquery(
            queryset.filter(session__subject=OuterRef("pk"))
            .order_by()
            .values("session__subject")
            .annotate(value=aggregate)
            .values("value"),
            output_field=IntegerField(),
        ),
        0,
    )


def search_subjects(query=""):
    """Subjects whose water restriction number or subject id contains ``query``,
    with counts of sessions, files and bytes and how much is archived."""
    subjects = Subject.objects.all()
    query = (query or "").strip()
    if query:
        condition = Q(water_restriction_number__icontains=query)
        if query.isdigit():
            condition |= Q(subject_id__isnull=False) & Q(subject_id__contains=query)
        subjects = subjects.filter(condition)
    archived = RawFile.objects.filter(
        replicas__state=ReplicaState.PRESENT, replicas__location__role=LocationRole.ARCHIVE
    )
    sessions = (
        Session.objects.filter(subject=OuterRef("pk"))
        .order_by()
        .values("subject")
        .annotate(value=Count("pk"))
        .values("value")
    )
    return subjects.annotate(
        session_count=Coalesce(Subquery(sessions, output_field=IntegerField()), 0),
        file_count=_per_subject(RawFile.objects.all(), Count("pk")),
        total_bytes=_per_subject(RawFile.objects.all(), Sum("size")),
        archived_files=_per_subject(archived, Count("pk")),
        archived_bytes=_per_subject(archived, Sum("size")),
    )


def find_subject(key):
    """The subject named by a water restriction number or a subject id, or None."""
    key = (key or "").strip()
    if not key:
        return None
    if key.isdigit():
        subject = Subject.objects.filter(subject_id=int(key)).first()
        if subject:
            return subject
    return Subject.objects.filter(water_restriction_number__iexact=key).first()


def subject_sessions(subject):
    """The subject's sessions by date, each with its files and their present copies.

    Locations are few and shared by every file, so they are loaded once and
    attached in Python instead of joined per replica.
    """
    locations = {location.pk: location for location in StorageLocation.objects.all()}
    replicas = Replica.objects.filter(file__session__subject=subject).only(
        "file_id", "location_id", "state", "source", "verified_at"
    )
    files = RawFile.objects.select_related("file_type").prefetch_related(
        Prefetch("replicas", queryset=replicas, to_attr="all_replicas")
    )
    sessions = list(
        Session.objects.filter(subject=subject)
        .order_by("session_date", "ident")
        .prefetch_related(Prefetch("files", queryset=files.order_by("dataset_type", "subpath")))
    )
    for session in sessions:
        session.file_list = list(session.files.all())
        for raw_file in session.file_list:
            for replica in raw_file.all_replicas:
                replica.location = locations[replica.location_id]
            raw_file.present_locations = [
                replica.location for replica in raw_file.all_replicas if replica.state == ReplicaState.PRESENT
            ]
            raw_file.missing_locations = [
                replica.location for replica in raw_file.all_replicas if replica.state == ReplicaState.MISSING
            ]
            raw_file.archived = any(location.is_archive for location in raw_file.present_locations)
        session.summary = summarize_session(session.file_list)
    return sessions


def summarize_session(files):
    """Counts, sizes, probes, dataset types and the archive status of a session's files."""
    total = len(files)
    archived = sum(1 for f in files if f.archived)
    missing = any(f.missing_locations for f in files) or any(not f.present_locations for f in files)
    if total == 0:
        status = "no-files"
    elif archived == total:
        status = "archived"
    elif archived:
        status = "partly-archived"
    else:
        status = "local-only"
    return {
        "files": total,
        "bytes": sum(f.size for f in files),
        "archived_files": archived,
        "dataset_types": sorted({f.dataset_type for f in files}),
        "probes": sorted({f.probe_insertion for f in files if f.probe_insertion is not None}),
        "status": status,
        "missing_copies": missing,
    }
