"""Every dashboard page makes a fixed number of SQL queries, whatever the size
of the catalog and of the jobs it shows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import UserFactory
from tests.test_pages import build_catalog, make_job
from transfers.models import JobKind, JobState, TaskState, TransferTask

# What each page costs: session and user, then the page's own queries.
EXPECTED_QUERIES = {
    # count, page of subjects, their sessions, archive locations, their files
    "subjects": 7,
    # subject, its totals (3), count, page of sessions, archive locations, their file counts,
    # their copies, archive jobs
    "subject": 12,
    # the same and a session's files: locations, files, replicas
    "subject_with_files": 15,
    # session, archive locations, its file counts, its copies, its archive jobs
    "session_card": 7,
    # file types, subjects named, count, page of sessions, archive locations, their file counts,
    # writable locations
    "search": 9,
    # requesters, count, page of jobs
    "transfers": 5,
    # job, its tasks, count, page of items
    "job": 6,
    "job_progress": 3,
    # file types, destination, archive locations, the selected files
    "preview": 6,
    # the same, the subjects named by the search and the ids of their matching files
    "preview_of_a_search": 8,
}


def queries_of(client, url, params=None, method="get"):
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, params or {})
    assert response.status_code == 200, response.content[:500]
    return len(captured)


@pytest.fixture
def small(db, tmp_path):
    return build_catalog(tmp_path, subjects=2, sessions=2, files=3, archived=1, prefix="sm")


@pytest.fixture
def big(db, tmp_path):
    built = build_catalog(tmp_path, subjects=60, sessions=2, files=3, archived=1, prefix="bg")
    built.busy = build_catalog(tmp_path, subjects=1, sessions=50, files=40, archived=20, prefix="busy")
    return built


def _jobs(catalog, sessions, users):
    jobs = []
    for n, session in enumerate(sessions):
        files = list(session.files.all())
        job = make_job(
            session=session,
            files=files,
            user=users[n % len(users)],
            state=(JobState.ACTIVE, JobState.SUCCEEDED, JobState.QUEUED)[n % 3],
            source=catalog.rig,
            destination=catalog.archive,
        )
        TransferTask.objects.create(job=job, number=1, task_id=f"task-{job.pk}", state=TaskState.ACTIVE)
        jobs.append(job)
    return jobs


def test_subjects_page_queries_do_not_grow_with_the_catalog(viewer_client, small, big):
    url = reverse("catalog:subjects")
    few = queries_of(viewer_client, url, {"q": "sm"})
    many = queries_of(viewer_client, url)
    assert few == many == EXPECTED_QUERIES["subjects"]
    assert queries_of(viewer_client, url, {"q": "bg"}) == few


def test_subject_page_queries_do_not_grow_with_sessions_and_files(viewer_client, small, big, archivist):
    # 50 sessions of 40 files, some being archived, against 2 sessions of 3 files.
    _jobs(big, big.busy.sessions[20:30], [archivist])
    small_url = reverse("catalog:subject", args=[small.subjects[0].water_restriction_number])
    big_url = reverse("catalog:subject", args=[big.busy.subjects[0].water_restriction_number])
    few = queries_of(viewer_client, small_url)
    many = queries_of(viewer_client, big_url)
    assert few == many == EXPECTED_QUERIES["subject"]
    few = queries_of(viewer_client, small_url, {"open": small.sessions[0].pk})
    many = queries_of(viewer_client, big_url, {"open": big.busy.sessions[25].pk})
    assert few == many == EXPECTED_QUERIES["subject_with_files"]
    few = queries_of(viewer_client, reverse("catalog:session_card", args=[small.sessions[0].pk]))
    many = queries_of(viewer_client, reverse("catalog:session_card", args=[big.busy.sessions[25].pk]))
    assert few == many == EXPECTED_QUERIES["session_card"]


def test_subject_page_by_subject_id_costs_the_same(viewer_client, small):
    by_name = queries_of(
        viewer_client, reverse("catalog:subject", args=[small.subjects[0].water_restriction_number])
    )
    by_id = queries_of(viewer_client, reverse("catalog:subject", args=[small.subjects[0].subject_id]))
    assert by_name == by_id


def test_search_page_queries_do_not_grow_with_results(viewer_client, small, big):
    url = reverse("catalog:search")
    few = queries_of(viewer_client, url, {"subjects": "sm1"})
    many = queries_of(
        viewer_client, url, {"subjects": "busy1 bg1 bg2 bg3 " + " ".join(f"bg{n}" for n in range(4, 40))}
    )
    narrowed = queries_of(
        viewer_client,
        url,
        {"subjects": "busy1", "date_from": "2019-07-02", "file_type": "ephys-raw-neuropixels-ap-bin"},
    )
    assert few == many == narrowed == EXPECTED_QUERIES["search"]


def test_transfers_page_queries_do_not_grow_with_jobs(viewer_client, small, big, archivist, viewer):
    _jobs(small, small.sessions[:2], [archivist])
    url = reverse("transfers:jobs")
    few = queries_of(viewer_client, url)
    users = [archivist, viewer] + [UserFactory() for _ in range(5)]
    _jobs(big, big.sessions[:60] + big.busy.sessions[:20], users)
    many = queries_of(viewer_client, url)
    filtered = queries_of(
        viewer_client, url, {"state": "unfinished", "user": archivist.pk, "subject": "busy1"}
    )
    assert few == many == EXPECTED_QUERIES["transfers"]
    assert filtered == few + 1  # the subject named in the filter


def test_job_page_queries_do_not_grow_with_items(viewer_client, small, big, archivist):
    [small_job] = _jobs(small, small.sessions[:1], [archivist])
    big_job = make_job(
        kind=JobKind.RETRIEVE,
        files=big.busy.files,
        user=archivist,
        source=big.archive,
        destination=big.scratch,
    )
    for number in range(1, 4):
        TransferTask.objects.create(job=big_job, number=number, task_id=f"big-{number}")
    few = queries_of(viewer_client, reverse("transfers:job", args=[small_job.pk]))
    many = queries_of(viewer_client, reverse("transfers:job", args=[big_job.pk]), {"page": 7})
    assert few == many == EXPECTED_QUERIES["job"]
    assert (
        queries_of(viewer_client, reverse("transfers:job_progress", args=[big_job.pk]))
        == (EXPECTED_QUERIES["job_progress"])
    )


def test_retrieval_preview_queries_do_not_grow_with_the_selection(viewer_client, small, big):
    url = reverse("transfers:retrieve")
    few = queries_of(
        viewer_client, url, {"session": [small.sessions[0].pk], "destination": "scratch-ephys"}, method="post"
    )
    many = queries_of(
        viewer_client,
        url,
        {"session": [s.pk for s in big.busy.sessions], "destination": "scratch-ephys"},
        method="post",
    )
    assert few == many == EXPECTED_QUERIES["preview"]
    few = queries_of(
        viewer_client,
        url,
        {"all_matching": "1", "subjects": "sm1", "destination": "scratch-ephys"},
        method="post",
    )
    many = queries_of(
        viewer_client,
        url,
        {
            "all_matching": "1",
            "subjects": "busy1 bg1",
            "file_type": "ephys-raw-neuropixels-ap-bin",
            "destination": "scratch-ephys",
        },
        method="post",
    )
    assert few == many == EXPECTED_QUERIES["preview_of_a_search"]
