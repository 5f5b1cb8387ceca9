"""Read-side queries for the transfer pages, each a fixed number of SQL queries
whatever the number of jobs and items."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from globus_sdk.scopes import GCSCollectionScopes, TransferScopes

from archive_portal import views as portal_views
from catalog.models import Backend
from transfers.errors import ConsentRequired, LoginRequired
from transfers.models import FINAL_STATES, UNFINISHED_STATES, JobKind, JobState, TransferItem, TransferJob

# The state menu of the transfers page: the two groups first, then each state.
STATE_FILTERS = {
    "unfinished": ("Unfinished", UNFINISHED_STATES),
    "finished": ("Finished", FINAL_STATES),
    **{state.value: (state.label, (state,)) for state in JobState},
}

# What a person can do about a job's error, by error code.
ERROR_ADVICE = {
    "LoginRequired": "Your Globus login has expired or was revoked. Log in again and the job goes on.",
    "ConsentRequired": "A collection needs your consent before the portal can reach its data. "
    "Log in again and grant it; the job then goes on.",
    "transient": "Globus could not be reached for a while; the portal keeps trying.",
}


def unfinished_archive_jobs(session_ids):
    """{session id: [unfinished archive jobs]} for the given sessions, in one query."""
    jobs = {}
    unfinished = TransferJob.objects.filter(
        kind=JobKind.ARCHIVE, state__in=UNFINISHED_STATES, session__in=list(session_ids)
    )
    for job in unfinished.select_related("destination").order_by("created_at", "pk"):
        jobs.setdefault(job.session_id, []).append(job)
    return jobs


def jobs(*, state="", user=None, subject=None):
    """Jobs, newest first, with what their rows show, narrowed by state (a key of
    ``STATE_FILTERS``), requester and subject (the session archived or a file retrieved)."""
    queryset = TransferJob.objects.select_related("source", "destination", "requested_by", "session__subject").order_by(
        "-created_at", "-pk"
    )
    if state in STATE_FILTERS:
        queryset = queryset.filter(state__in=STATE_FILTERS[state][1])
    if user is not None:
        queryset = queryset.filter(requested_by=user)
    if subject is not None:
        retrieved = TransferItem.objects.filter(job=OuterRef("pk"), file__session__subject=subject)
        queryset = queryset.filter(Q(session__subject=subject) | Exists(retrieved))
    return queryset


def requesters():
    """The people who asked for at least one job, for the transfers page's menu."""
    return list(
        get_user_model()
        .objects.filter(Exists(TransferJob.objects.filter(requested_by=OuterRef("pk"))))
        .order_by("username")
    )


def job(pk):
    """One job with its locations, requester and backend tasks, or None."""
    return (
        TransferJob.objects.select_related("source", "destination", "requested_by", "session__subject")
        .prefetch_related("tasks")
        .filter(pk=pk)
        .first()
    )


def job_items(job):
    """The job's items by file path, with their files."""
    return (
        TransferItem.objects.filter(job=job)
        .select_related("file")
        .only("pk", "state", "error_message", "file__subpath", "file__size", "file__dataset_type")
        .order_by("file__subpath", "pk")
    )


def uses_globus(job):
    return Backend.GLOBUS in (job.source.backend, job.destination.backend)


def globus_task_links(job):
    """(task, URL in the Globus web app) for each submitted task of a Globus job."""
    if not uses_globus(job):
        return []
    base = settings.GLOBUS_WEB_APP_URL.rstrip("/")
    return [(task, f"{base}/activity/{task.task_id}") for task in job.tasks.all() if task.task_id]


def login_again_url(job):
    """Where the requester of a job parked on a Globus login logs in again, then
    comes back to the job; a missing consent asks for the job's collections."""
    scope = TransferScopes.all
    if job.error_code == ConsentRequired.code:
        for location in (job.source, job.destination):
            if location.backend == Backend.GLOBUS and location.collection_id:
                data_access = GCSCollectionScopes(str(location.collection_id)).data_access
                scope = scope.with_dependency(data_access.with_optional(True))
        error = ConsentRequired(job.error_message, scopes=[str(scope)])
    else:
        error = LoginRequired(job.error_message, scopes=[str(scope)])
    return portal_views.login_again_url(error, reverse("transfers:job", args=[job.pk]))
