"""The dashboard's pages as lab staff use them: subjects, a subject's sessions,
archiving a session, searching and retrieving, and watching transfers."""

import datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db.models import Max
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalog import naming, queries
from catalog.models import (
    Backend,
    FileType,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    Session,
    StorageLocation,
    Subject,
)
from tests.factories import UserFactory
from transfers.models import JobKind, JobState, TaskState, TransferItem, TransferJob, TransferTask

FILE_SIZE = 1000


def location(alias, root, *, role=LocationRole.LOCAL, writable=False, backend=Backend.FILESYSTEM, **fields):
    defaults = {
        "role": role,
        "dataset_type": naming.RAW_EPHYS,
        "backend": backend,
        "writable": writable,
        "root_path": "/ePhys" if backend == Backend.GLOBUS else "/",
        "local_path": "" if backend == Backend.GLOBUS else str(Path(root) / alias),
        **fields,
    }
    found, _ = StorageLocation.objects.get_or_create(alias=alias, defaults=defaults)
    return found


def locations(root):
    """The lab's locations: a rig disk, the archive, a writable scratch disk and a read-only one."""
    return SimpleNamespace(
        rig=location("rig-ephys", root),
        archive=location("archive-ephys", root, role=LocationRole.ARCHIVE),
        scratch=location("scratch-ephys", root, writable=True),
        readonly=location("readonly-ephys", root),
    )


def build_catalog(
    root,
    *,
    subjects=1,
    sessions=2,
    files=3,
    archived=0,
    prefix="tw",
    first_subject_id=None,
    write_files=False,
):
    """``subjects`` subjects with ``sessions`` sessions of ``files`` ephys files
    each, all on the rig disk; the first ``archived`` sessions of each subject
    are also in the archive. With ``write_files`` the files exist on disk."""
    places = locations(root)
    ap_bin = FileType.objects.get(name="ephys-raw-neuropixels-ap-bin")
    ap_meta = FileType.objects.get(name="ephys-raw-neuropixels-ap-meta")
    start = Subject.objects.filter(water_restriction_number__startswith=prefix).count()
    if first_subject_id is None:
        highest = Subject.objects.aggregate(highest=Max("subject_id"))["highest"]
        first_subject_id = (highest or 406999) + 1 - start
    new_subjects = Subject.objects.bulk_create(
        Subject(water_restriction_number=f"{prefix}{start + n + 1}", subject_id=first_subject_id + start + n)
        for n in range(subjects)
    )
    new_sessions = Session.objects.bulk_create(
        Session(
            subject=subject,
            session_date=datetime.date(2019, 7, 1) + datetime.timedelta(days=n),
            ident="" if n % 3 else "1" if n else "",
            rig="rig-1",
        )
        for subject in new_subjects
        for n in range(sessions)
    )
    raw_files = []
    for session in new_sessions:
        folder = session.folder(naming.RAW_EPHYS)
        for n in range(files):
            probe = n % 2 + 1
            probe_folder = naming.probe_folder(
                session.subject.water_restriction_number, session.session_date, session.ident, probe
            )
            suffix = "ap.bin" if n % 2 == 0 else "ap.meta"
            raw_files.append(
                RawFile(
                    session=session,
                    dataset_type=naming.RAW_EPHYS,
                    subpath=f"{folder}/{probe_folder}/part{n}_t0.imec{probe - 1}.{suffix}",
                    probe_insertion=probe,
                    file_type=ap_bin if suffix == "ap.bin" else ap_meta,
                    size=FILE_SIZE,
                )
            )
    raw_files = RawFile.objects.bulk_create(raw_files, batch_size=1000)
    archived_ids = {
        session.pk for session in new_sessions if (session.session_date - datetime.date(2019, 7, 1)).days < archived
    }
    replicas = []
    for raw_file in raw_files:
        replicas.append(Replica(file=raw_file, location=places.rig, source=ReplicaSource.SCAN))
        if raw_file.session_id in archived_ids:
            replicas.append(Replica(file=raw_file, location=places.archive, source=ReplicaSource.DISCOVER))
    Replica.objects.bulk_create(replicas, batch_size=1000)
    if write_files:
        for raw_file in raw_files:
            targets = [places.rig] + ([places.archive] if raw_file.session_id in archived_ids else [])
            for place in targets:
                path = Path(place.local_path) / raw_file.subpath
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\0" * raw_file.size)
    return SimpleNamespace(places=places, subjects=new_subjects, sessions=new_sessions, files=raw_files, **vars(places))


def make_job(
    *,
    kind=JobKind.ARCHIVE,
    state=JobState.ACTIVE,
    session=None,
    files=(),
    user=None,
    source,
    destination,
    **fields,
):
    final = state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)
    job = TransferJob.objects.create(
        kind=kind,
        state=state,
        session=session,
        source=source,
        destination=destination,
        requested_by=user,
        label=fields.pop("label", f"{kind} test"),
        files_total=len(files),
        bytes_total=sum(f.size for f in files),
        finished_at=timezone.now() if final else None,
        **fields,
    )
    TransferItem.objects.bulk_create(TransferItem(job=job, file=f) for f in files)
    return job


def html(response):
    return response.content.decode()


@pytest.fixture
def catalog(db, tmp_path):
    return build_catalog(tmp_path, subjects=1, sessions=3, files=4, archived=1)


# Subjects ---------------------------------------------------------------------


def test_pages_need_a_login(client, db):
    for url in (reverse("catalog:subjects"), reverse("catalog:search"), reverse("transfers:jobs")):
        response = client.get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_subjects_are_found_by_part_of_their_water_restriction_number_or_id(viewer_client, tmp_path):
    build_catalog(tmp_path, subjects=3, sessions=2, files=2, archived=1, prefix="dl")
    Subject.objects.create(water_restriction_number="SC26", subject_id=512345)

    page = html(viewer_client.get(reverse("catalog:subjects"), {"q": "DL"}))
    assert "dl1" in page and "dl3" in page and "SC26" not in page

    page = html(viewer_client.get(reverse("catalog:subjects"), {"q": "sc2"}))
    assert "SC26" in page and "dl1" not in page

    page = html(viewer_client.get(reverse("catalog:subjects"), {"q": "1234"}))
    assert "SC26" in page and "dl1" not in page

    page = html(viewer_client.get(reverse("catalog:subjects"), {"q": "nobody"}))
    assert "No subject matches" in page


def test_subject_rows_count_sessions_files_bytes_and_the_archived_share(viewer_client, tmp_path):
    build_catalog(tmp_path, subjects=1, sessions=4, files=5, archived=1, prefix="dl")
    response = viewer_client.get(reverse("catalog:subjects"))
    subject = response.context["subjects"][0]
    assert (subject.session_count, subject.file_count, subject.total_bytes) == (4, 20, 20 * FILE_SIZE)
    assert (subject.archived_files, subject.archived_bytes, subject.archived_percent) == (
        5,
        5 * FILE_SIZE,
        25,
    )
    assert "25% · 5 of 20 files" in html(response)


def test_live_search_returns_only_the_rows(viewer_client, tmp_path):
    build_catalog(tmp_path, subjects=2, prefix="dl")
    response = viewer_client.get(reverse("catalog:subjects"), {"q": "dl2"}, headers={"HX-Request": "true"})
    page = html(response)
    assert "<html" not in page and "dl2" in page and ">dl1<" not in page
    assert "HX-Request" in response["Vary"]


def test_subjects_are_paginated(viewer_client, tmp_path):
    build_catalog(tmp_path, subjects=55, sessions=0, files=0, prefix="sc")
    first = viewer_client.get(reverse("catalog:subjects"))
    assert len(first.context["subjects"]) == 50
    assert "Page 1 of 2" in html(first)
    second = viewer_client.get(reverse("catalog:subjects"), {"page": 2})
    assert len(second.context["subjects"]) == 5


# Subject page -------------------------------------------------------------------


def test_subject_page_is_found_by_water_restriction_number_or_id(viewer_client, catalog):
    subject = catalog.subjects[0]
    assert (
        viewer_client.get(reverse("catalog:subject", args=[subject.water_restriction_number.upper()])).status_code
        == 200
    )
    assert viewer_client.get(reverse("catalog:subject", args=[subject.subject_id])).status_code == 200
    assert viewer_client.get(reverse("catalog:subject", args=["zz99"])).status_code == 404


def test_subject_page_lists_sessions_with_their_files_and_status(viewer_client, catalog):
    subject = catalog.subjects[0]
    response = viewer_client.get(reverse("catalog:subject", args=[subject.water_restriction_number]))
    page = html(response)
    sessions = response.context["sessions"]
    assert [s.session_date for s in sessions] == sorted(s.session_date for s in sessions)
    assert [s.summary["status"] for s in sessions] == ["archived", "local-only", "local-only"]
    first = sessions[0]
    assert first.summary["files"] == 4 and first.summary["bytes"] == 4 * FILE_SIZE
    assert first.summary["probes"] == [1, 2]
    assert "2019-07-01" in page and "raw-ephys" in page and "probes 1, 2" in page
    assert "4 files, 4 archived" in page
    # Files are listed on demand: with htmx when the list opens, or with ?open= without JS.
    assert catalog.files[0].subpath not in page
    assert f'hx-get="{reverse("catalog:session_files", args=[first.pk])}"' in page
    opened = html(viewer_client.get(response.request["PATH_INFO"], {"open": first.pk}))
    assert catalog.files[0].subpath in opened and "<details open>" in opened
    fragment = html(viewer_client.get(reverse("catalog:session_files", args=[first.pk])))
    assert "<html" not in fragment and catalog.files[0].subpath in fragment
    assert "rig-ephys" in fragment and "archive-ephys" in fragment


def test_session_statuses(viewer_client, catalog, archivist):
    first, second, third = catalog.sessions
    # One file of the second session archived, one file of the third with no copy at all.
    Replica.objects.create(file=second.files.first(), location=catalog.archive, source=ReplicaSource.ARCHIVE)
    Replica.objects.filter(file__session=third).update(state=ReplicaState.MISSING)
    response = viewer_client.get(reverse("catalog:subject", args=[catalog.subjects[0].subject_id]))
    statuses = [s.summary["status_label"] for s in response.context["sessions"]]
    assert statuses == ["archived", "partly archived", "missing copies"]

    make_job(session=third, source=catalog.rig, destination=catalog.archive, user=archivist)
    response = viewer_client.get(reverse("catalog:subject", args=[catalog.subjects[0].subject_id]))
    assert response.context["sessions"][2].summary["status_label"] == "archiving"
    page = html(response)
    assert 'hx-trigger="every 2s [!document.hidden]' in page


def test_archivists_see_archive_buttons_and_viewers_do_not(client, catalog, viewer, archivist):
    url = reverse("catalog:subject", args=[catalog.subjects[0].water_restriction_number])
    client.force_login(viewer)
    assert "Archive</button>" not in html(client.get(url))
    client.force_login(archivist)
    page = html(client.get(url))
    # The archived session has no button; the two local-only ones have one each.
    assert page.count("Archive</button>") == 2
    assert f'hx-post="{reverse("transfers:archive_session", args=[catalog.sessions[1].pk])}"' in page


def test_subject_sessions_are_paginated(viewer_client, tmp_path):
    built = build_catalog(tmp_path, subjects=1, sessions=55, files=1)
    url = reverse("catalog:subject", args=[built.subjects[0].water_restriction_number])
    assert len(viewer_client.get(url).context["sessions"]) == 50
    assert len(viewer_client.get(url, {"page": 2}).context["sessions"]) == 5


# Archiving ------------------------------------------------------------------------


def test_archive_with_htmx_queues_a_job_and_answers_with_its_live_progress(archivist_client, catalog, archivist):
    session = catalog.sessions[1]
    response = archivist_client.post(
        reverse("transfers:archive_session", args=[session.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    job = TransferJob.objects.get(session=session)
    assert (job.kind, job.state, job.requested_by, job.files_total) == ("archive", "queued", archivist, 4)
    page = html(response)
    assert "<html" not in page
    assert f'id="session-{session.pk}-status"' in page
    assert f'hx-get="{reverse("transfers:job_progress", args=[job.pk])}"' in page
    assert "every 2s [!document.hidden]" in page and "archiving" in page


def test_archive_without_javascript_redirects_back_with_a_message(archivist_client, catalog):
    session = catalog.sessions[1]
    response = archivist_client.post(reverse("transfers:archive_session", args=[session.pk]), follow=True)
    assert response.redirect_chain[-1][0].endswith(f"#session-{session.pk}")
    assert "queued" in html(response)
    assert response.context["sessions"][1].summary["status"] == "archiving"


def test_a_viewer_cannot_archive(viewer_client, catalog):
    session = catalog.sessions[1]
    url = reverse("transfers:archive_session", args=[session.pk])
    response = viewer_client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Only archivists" in html(response)
    response = viewer_client.post(url, follow=True)
    assert "Only archivists" in html(response)
    assert not TransferJob.objects.exists()


def test_archiving_an_archived_session_is_refused_in_words(archivist_client, catalog):
    response = archivist_client.post(reverse("transfers:archive_session", args=[catalog.sessions[0].pk]), follow=True)
    assert response.status_code == 200
    assert "already archived" in html(response)
    assert not TransferJob.objects.exists()


def test_archiving_twice_is_refused_in_words(archivist_client, catalog):
    url = reverse("transfers:archive_session", args=[catalog.sessions[1].pk])
    archivist_client.post(url)
    response = archivist_client.post(url, headers={"HX-Request": "true"})
    assert "already being archived" in html(response)
    assert TransferJob.objects.count() == 1


def test_archive_is_a_post_with_csrf(catalog, archivist):
    url = reverse("transfers:archive_session", args=[catalog.sessions[1].pk])
    client = Client(enforce_csrf_checks=True)
    client.force_login(archivist)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    assert not TransferJob.objects.exists()


def test_job_progress_polls_until_the_job_is_final(viewer_client, catalog):
    job = make_job(session=catalog.sessions[1], source=catalog.rig, destination=catalog.archive, bytes_done=500)
    url = reverse("transfers:job_progress", args=[job.pk])
    response = viewer_client.get(url, headers={"HX-Request": "true"})
    assert "hx-trigger" in html(response) and "archiving" in html(response)
    assert "HX-Trigger" not in response
    TransferJob.transition(job.pk, from_states={JobState.ACTIVE}, to_state=JobState.SUCCEEDED)
    response = viewer_client.get(url, headers={"HX-Request": "true"})
    page = html(response)
    assert "hx-trigger" not in page and "hx-get" not in page and "archived" in page
    # The session's card hears that it changed and reloads itself.
    assert response["HX-Trigger"] == f"session-changed-{catalog.sessions[1].pk}, subject-changed"
    card = html(viewer_client.get(reverse("catalog:session_card", args=[catalog.sessions[1].pk])))
    assert f'hx-trigger="session-changed-{catalog.sessions[1].pk} from:body"' in card
    assert "<html" not in card and "local only" in card


def test_a_failed_archive_stays_in_view(viewer_client, catalog):
    job = make_job(session=catalog.sessions[1], source=catalog.rig, destination=catalog.archive)
    TransferJob.transition(job.pk, from_states={JobState.ACTIVE}, to_state=JobState.FAILED)
    response = viewer_client.get(reverse("transfers:job_progress", args=[job.pk]))
    assert "archive failed" in html(response) and f"job #{job.pk}" in html(response)
    assert "HX-Trigger" not in response


# Transfers page --------------------------------------------------------------------


@pytest.fixture
def jobs(catalog, viewer, archivist):
    other = build_catalog(
        catalog.rig.local_path.rsplit("/", 1)[0],
        subjects=1,
        sessions=1,
        files=2,
        prefix="dl",
        first_subject_id=408000,
    )
    return SimpleNamespace(
        archiving=make_job(
            session=catalog.sessions[1],
            files=catalog.sessions[1].files.all(),
            user=archivist,
            source=catalog.rig,
            destination=catalog.archive,
        ),
        retrieved=make_job(
            kind=JobKind.RETRIEVE,
            state=JobState.SUCCEEDED,
            files=other.sessions[0].files.all(),
            user=viewer,
            source=catalog.archive,
            destination=catalog.scratch,
            label="Retrieve dl1",
        ),
        failed=make_job(
            session=catalog.sessions[2],
            state=JobState.FAILED,
            user=archivist,
            source=catalog.rig,
            destination=catalog.archive,
            error_code="permanent",
            error_message="The archive collection is full.",
        ),
        other_subject=other.subjects[0],
    )


def test_transfers_page_lists_every_job_and_polls_while_one_runs(viewer_client, jobs):
    response = viewer_client.get(reverse("transfers:jobs"))
    page = html(response)
    assert len(response.context["jobs"]) == 3
    for job in (jobs.archiving, jobs.retrieved, jobs.failed):
        assert f'id="job-row-{job.pk}"' in page
    assert "archivist@lab.example.org" in page and "viewer@lab.example.org" in page
    assert 'hx-trigger="every 2s [!document.hidden]' in page


def test_transfers_page_stops_polling_when_every_job_is_final(viewer_client, jobs):
    TransferJob.transition(jobs.archiving.pk, from_states={JobState.ACTIVE}, to_state=JobState.CANCELED)
    page = html(viewer_client.get(reverse("transfers:jobs"), headers={"HX-Request": "true"}))
    assert "<html" not in page and 'id="job-table"' in page
    assert "hx-trigger" not in page


def test_transfers_page_filters(viewer_client, jobs, viewer, catalog):
    def listed(**params):
        return {job.pk for job in viewer_client.get(reverse("transfers:jobs"), params).context["jobs"]}

    assert listed(state="unfinished") == {jobs.archiving.pk}
    assert listed(state="failed") == {jobs.failed.pk}
    assert listed(state="finished") == {jobs.retrieved.pk, jobs.failed.pk}
    assert listed(user=viewer.pk) == {jobs.retrieved.pk}
    assert listed(subject=catalog.subjects[0].water_restriction_number) == {jobs.archiving.pk, jobs.failed.pk}
    assert listed(subject=jobs.other_subject.subject_id) == {jobs.retrieved.pk}
    response = viewer_client.get(reverse("transfers:jobs"), {"subject": "zz1"})
    assert "No subject zz1" in html(response)


def test_job_page_shows_items_errors_and_progress(viewer_client, jobs):
    page = html(viewer_client.get(reverse("transfers:job", args=[jobs.failed.pk])))
    assert "This job failed." in page and "The archive collection is full." in page
    assert "hx-trigger" not in page

    response = viewer_client.get(reverse("transfers:job", args=[jobs.archiving.pk]))
    page = html(response)
    assert response.context["page"].paginator.count == 4
    assert jobs.archiving.items.first().file.subpath in page
    assert 'hx-trigger="every 2s [!document.hidden]' in page


def test_job_items_are_paginated(viewer_client, tmp_path, archivist):
    built = build_catalog(tmp_path, subjects=1, sessions=1, files=150)
    job = make_job(session=built.sessions[0], files=built.files, source=built.rig, destination=built.archive)
    response = viewer_client.get(reverse("transfers:job", args=[job.pk]))
    assert len(response.context["page"].object_list) == 100
    assert "Page 1 of 2" in html(response)
    assert len(viewer_client.get(reverse("transfers:job", args=[job.pk]), {"page": 2}).context["page"]) == 50


@pytest.fixture
def globus_job(db, tmp_path, archivist):
    archive = location(
        "petrel-video",
        tmp_path,
        role=LocationRole.ARCHIVE,
        backend=Backend.GLOBUS,
        dataset_type=naming.RAW_VIDEO,
        collection_id="5b875fda-4185-11e8-bb52-0ac6873fc732",
    )
    rig = location(
        "rig-video",
        tmp_path,
        backend=Backend.GLOBUS,
        dataset_type=naming.RAW_VIDEO,
        collection_id="11111111-2222-3333-4444-555555555555",
    )
    session = build_catalog(tmp_path, files=1).sessions[0]
    return make_job(session=session, source=rig, destination=archive, user=archivist)


def test_globus_jobs_link_to_their_tasks_in_the_globus_web_app(viewer_client, globus_job, settings):
    settings.GLOBUS_WEB_APP_URL = "https://app.globus.example.org"
    TransferTask.objects.create(job=globus_job, number=1, task_id="aaaa-bbbb", state=TaskState.ACTIVE)
    page = html(viewer_client.get(reverse("transfers:job", args=[globus_job.pk])))
    assert 'href="https://app.globus.example.org/activity/aaaa-bbbb"' in page


def test_jobs_waiting_for_a_login_say_so_and_send_the_requester_to_log_in(client, globus_job, archivist):
    TransferJob.objects.filter(pk=globus_job.pk).update(
        state=JobState.NEEDS_LOGIN,
        error_code="ConsentRequired",
        error_message="petrel needs data_access consent.",
    )
    client.force_login(archivist)
    response = client.get(reverse("transfers:job", args=[globus_job.pk]))
    page = html(response)
    assert "log in to Globus again" in page and "grant it" in page and "Log in again" in page
    link = urlsplit(response.context["login_again_url"])
    params = parse_qs(link.query)
    assert link.path == reverse("globus_login_again")
    assert params["reason"] == ["consent"]
    assert params["next"] == [reverse("transfers:job", args=[globus_job.pk])]
    assert "5b875fda-4185-11e8-bb52-0ac6873fc732/data_access" in params["scope"][0]
    assert "11111111-2222-3333-4444-555555555555/data_access" in params["scope"][0]

    TransferJob.objects.filter(pk=globus_job.pk).update(error_code="LoginRequired")
    response = client.get(reverse("transfers:job", args=[globus_job.pk]))
    assert parse_qs(urlsplit(response.context["login_again_url"]).query)["reason"] == ["login"]
    client.force_login(UserFactory(username="someone@lab.example.org"))
    assert "globus/login-again" not in html(client.get(reverse("transfers:job", args=[globus_job.pk])))


def test_requester_and_archivists_can_cancel_others_cannot(client, jobs, catalog, viewer):
    mine = make_job(
        kind=JobKind.RETRIEVE,
        state=JobState.QUEUED,
        user=viewer,
        source=catalog.archive,
        destination=catalog.scratch,
    )
    someone_else = jobs.archiving
    TransferJob.objects.filter(pk=someone_else.pk).update(state=JobState.QUEUED)
    client.force_login(viewer)
    assert "Cancel job" not in html(client.get(reverse("transfers:job", args=[someone_else.pk])))
    response = client.post(reverse("transfers:cancel", args=[someone_else.pk]), follow=True)
    assert "can cancel this job" in html(response)
    assert TransferJob.objects.get(pk=someone_else.pk).state == JobState.QUEUED

    assert "Cancel job" in html(client.get(reverse("transfers:job", args=[mine.pk])))
    response = client.post(reverse("transfers:cancel", args=[mine.pk]), follow=True)
    assert f"Job #{mine.pk} is canceled." in html(response)
    assert TransferJob.objects.get(pk=mine.pk).state == JobState.CANCELED

    client.force_login(UserFactory(username="keeper@lab.example.org", role="archivist"))
    client.post(reverse("transfers:cancel", args=[someone_else.pk]))
    assert TransferJob.objects.get(pk=someone_else.pk).state == JobState.CANCELED


def test_canceling_a_finished_job_is_refused_in_words(archivist_client, jobs):
    response = archivist_client.post(reverse("transfers:cancel", args=[jobs.failed.pk]), follow=True)
    assert response.status_code == 200
    assert "already" in html(response)


# Search and retrieve ------------------------------------------------------------------


@pytest.fixture
def lab(db, tmp_path):
    dl = build_catalog(tmp_path, subjects=2, sessions=3, files=4, archived=2, prefix="dl")
    sc = build_catalog(tmp_path, subjects=1, sessions=2, files=2, archived=2, prefix="SC", first_subject_id=512000)
    return SimpleNamespace(dl=dl, sc=sc, **vars(dl.places))


def test_search_by_several_subjects_dates_and_types(viewer_client, lab):
    def found(**params):
        response = viewer_client.get(reverse("catalog:search"), params)
        return response, [
            (s.subject.water_restriction_number, s.session_date.day) for s in response.context["sessions"]
        ]

    _, sessions = found(subjects="dl1, 512000")
    assert sessions == [("dl1", 1), ("dl1", 2), ("dl1", 3), ("SC1", 1), ("SC1", 2)]
    _, sessions = found(subjects="DL2", date_from="2019-07-02", date_to="2019-07-02")
    assert sessions == [("dl2", 2)]
    response, sessions = found(subjects="dl1", file_type="ephys-raw-neuropixels-ap-meta")
    assert len(sessions) == 3
    assert [s.matching_count for s in response.context["sessions"]] == [2, 2, 2]
    first = response.context["sessions"][0]
    page = html(response)
    files_url = reverse("catalog:search_files", args=[first.pk])
    assert f'hx-get="{files_url}?subjects=dl1' in page and "file_type=ephys-raw-neuropixels-ap-meta" in page
    fragment = html(viewer_client.get(files_url, {"file_type": "ephys-raw-neuropixels-ap-meta"}))
    assert fragment.count('name="file"') == 2 and ".ap.meta" in fragment and ".ap.bin" not in fragment
    # Without JavaScript, ?open= lists the session's files in the page.
    opened = viewer_client.get(
        reverse("catalog:search"),
        {"subjects": "dl1", "file_type": "ephys-raw-neuropixels-ap-meta", "open": first.pk},
    )
    assert [f.name.endswith(".ap.meta") for f in opened.context["sessions"][0].matching_files] == [True, True]
    assert html(opened).count('name="file"') == 2
    _, sessions = found(subjects="dl1", dataset_type="raw-video")
    assert sessions == []
    response, sessions = found(subjects="dl1 zz9")
    assert len(sessions) == 3 and "No subject named zz9" in html(response)
    response, sessions = found(subjects="zz9")
    assert sessions == []


def test_search_lists_only_writable_destinations(viewer_client, lab):
    page = html(viewer_client.get(reverse("catalog:search"), {"subjects": "dl1"}))
    assert 'value="scratch-ephys"' in page
    assert 'value="readonly-ephys"' not in page and 'value="archive-ephys"' not in page


def test_search_without_criteria_asks_for_some(viewer_client, lab):
    page = html(viewer_client.get(reverse("catalog:search")))
    assert "Name one or more subjects" in page
    page = html(viewer_client.get(reverse("catalog:search"), {"date_from": "2019-08-01", "date_to": "2019-07-01"}))
    assert "The end date is before the start date." in page


def test_search_with_htmx_returns_the_results_only(viewer_client, lab):
    page = html(viewer_client.get(reverse("catalog:search"), {"subjects": "dl1"}, headers={"HX-Request": "true"}))
    assert "<html" not in page and 'id="retrieve-form"' in page


def test_preview_says_what_a_retrieval_would_copy(viewer_client, lab):
    dl1 = lab.dl.sessions[:3]
    # One archived file is already on the scratch disk.
    Replica.objects.create(file=dl1[0].files.first(), location=lab.scratch, source=ReplicaSource.RETRIEVE)
    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {
            "session": [dl1[0].pk, dl1[2].pk],
            "destination": "scratch-ephys",
            "step": "preview",
            "subjects": "dl1",
        },
        headers={"HX-Request": "true"},
    )
    preview = response.context["preview"]
    assert (preview.file_count, preview.total_bytes) == (3, 3 * FILE_SIZE)
    assert (preview.already_at_destination, preview.not_archived) == (1, 4)
    page = html(response)
    assert "<html" not in page
    assert "will be copied" in page and "already at scratch-ephys" in page and "not archived" in page
    assert 'name="step" value="confirm"' in page
    assert not TransferJob.objects.exists()


def test_preview_of_single_files_and_of_a_narrowed_search(viewer_client, lab):
    session = lab.dl.sessions[0]
    files = list(session.files.order_by("subpath"))
    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {"file": [files[0].pk], "destination": "scratch-ephys", "step": "preview"},
    )
    assert response.context["preview"].file_count == 1
    assert "<html" in html(response)

    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {
            "session": [session.pk],
            "file_type": "ephys-raw-neuropixels-ap-meta",
            "destination": "scratch-ephys",
        },
    )
    assert {f.file_type.name for f in response.context["preview"].files} == {"ephys-raw-neuropixels-ap-meta"}

    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {"all_matching": "1", "subjects": "SC1", "destination": "scratch-ephys"},
    )
    assert response.context["preview"].file_count == 4


def test_confirming_a_retrieval_queues_it_and_shows_the_job(viewer_client, lab, viewer):
    session = lab.dl.sessions[0]
    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {"session": [session.pk], "destination": "scratch-ephys", "step": "confirm"},
    )
    job = TransferJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("transfers:job", args=[job.pk])
    assert (job.kind, job.requested_by, job.destination, job.files_total) == (
        "retrieve",
        viewer,
        lab.scratch,
        4,
    )


def test_retrieval_refusals_are_messages(viewer_client, lab):
    not_archived = lab.dl.sessions[2]
    response = viewer_client.post(
        reverse("transfers:retrieve"),
        {"session": [not_archived.pk], "destination": "scratch-ephys", "step": "confirm"},
    )
    assert response.status_code == 200 and "None of the selected files is archived yet" in html(response)
    response = viewer_client.post(
        reverse("transfers:retrieve"), {"session": [not_archived.pk], "destination": "readonly-ephys"}
    )
    assert response.status_code == 200 and "choose a writable one" in html(response)
    response = viewer_client.post(reverse("transfers:retrieve"), {"destination": "scratch-ephys"})
    assert "Select at least one session or file" in html(response)
    assert not TransferJob.objects.exists()


def test_session_summaries_follow_the_state_of_every_copy(catalog, archivist):
    """A lost archive copy or a lost only copy reads as missing copies; a session
    with a running archive job reads as archiving; subject totals count only
    present archive copies."""
    first, second, third = catalog.sessions
    Replica.objects.create(file=second.files.first(), location=catalog.archive, source=ReplicaSource.ARCHIVE)
    Replica.objects.filter(file__session=third).update(state=ReplicaState.MISSING)
    Replica.objects.filter(file__session=first, location=catalog.archive).update(state=ReplicaState.MISSING)
    Replica.objects.filter(file=first.files.first(), location=catalog.rig).update(state=ReplicaState.MISSING)
    make_job(session=second, source=catalog.rig, destination=catalog.archive, user=archivist)
    subject = catalog.subjects[0]

    counted = queries.session_overviews(subject.sessions.order_by("session_date", "ident"))
    assert [s.summary["status"] for s in counted] == ["missing-copies", "archiving", "missing-copies"]
    assert [s.summary["archived_files"] for s in counted] == [0, 1, 0]

    [attached] = queries.attach_subject_totals([subject])
    names = ("session_count", "file_count", "total_bytes", "archived_files", "archived_bytes")
    assert [getattr(attached, n) for n in names] == [3, 12, 12000, 1, 1000]


# What a person trips over ---------------------------------------------------


def test_the_subjects_archived_share_follows_a_finished_archive(viewer_client, catalog):
    subject = catalog.subjects[0]
    page = html(viewer_client.get(reverse("catalog:subject", args=[subject.water_restriction_number])))
    assert 'id="subject-summary"' in page and 'hx-trigger="subject-changed from:body"' in page


def test_an_unknown_subject_in_the_transfers_filter_lists_no_job(viewer_client, jobs):
    response = viewer_client.get(reverse("transfers:jobs"), {"subject": "zz1"})
    page = html(response)
    assert response.context["jobs"] == []
    assert "Subject: No subject zz1." in page and "No transfer matches these filters." in page
    assert f'id="job-row-{jobs.archiving.pk}"' not in page


def test_a_job_page_names_the_job_once(viewer_client, jobs):
    page = html(viewer_client.get(reverse("transfers:job", args=[jobs.retrieved.pk])))
    assert f'<h1>Job #{jobs.retrieved.pk} <span class="muted">· Retrieve dl1</span></h1>' in page
    assert "Retrieve <span" not in page


def test_files_a_canceled_job_never_copied_say_so(viewer_client, jobs):
    TransferJob.transition(jobs.archiving.pk, from_states={JobState.ACTIVE}, to_state=JobState.CANCELED)
    page = html(viewer_client.get(reverse("transfers:job", args=[jobs.archiving.pk])))
    assert "Not copied" in page and ">Pending<" not in page


def test_search_errors_name_the_field_and_the_expected_format(viewer_client, lab):
    response = viewer_client.get(
        reverse("catalog:search"), {"date_from": "2019-13-45", "date_to": "banana", "file_type": "bogus"}
    )
    assert response.status_code == 200
    page = html(response)
    assert "From: Enter a date as YYYY-MM-DD." in page and "To: Enter a date as YYYY-MM-DD." in page
    assert "File type: “bogus” is not a known file type; choose one from the list." in page
    assert 'class="field actions"' in page


def test_an_unknown_subject_is_a_portal_page_that_says_so(viewer_client, catalog):
    response = viewer_client.get(reverse("catalog:subject", args=["nosuch"]))
    assert response.status_code == 404
    page = html(response)
    assert "No subject has the water restriction number or subject id “nosuch”." in page
    assert 'aria-label="Main"' in page and 'name="q" value="nosuch"' in page
    page = html(viewer_client.get("/no/such/page/"))
    assert "There is nothing at /no/such/page/." in page and reverse("catalog:search") in page


def test_only_admins_start_runs_and_others_are_told_so(viewer_client, catalog):
    response = viewer_client.post(
        reverse("transfers:discovery_start"), {"location": catalog.archive.alias}, follow=True
    )
    assert response.redirect_chain == [(reverse("transfers:discovery_runs"), 302)]
    assert "Only admins start discovery runs." in html(response)


def test_discovery_runs_show_dates_like_jobs_and_wrap_long_reasons(viewer_client, catalog, admin_user):
    from catalog.models import DiscoveryRun, RunKind, RunState, UnmatchedCategory, UnmatchedPath

    when = timezone.make_aware(datetime.datetime(2026, 11, 25, 22, 11, 41))
    run = DiscoveryRun.objects.create(
        location=catalog.archive,
        kind=RunKind.DISCOVER,
        state=RunState.SUCCEEDED,
        requested_by=admin_user,
        started_at=when,
        finished_at=when,
        unmatched=1,
    )
    UnmatchedPath.objects.create(
        run=run, subpath="stray.txt", category=UnmatchedCategory.OUTSIDE_SUBJECT, reason="Belongs to no subject."
    )
    listing = html(viewer_client.get(reverse("transfers:discovery_runs")))
    assert ">2026-11-25 22:11<" in listing
    page = html(viewer_client.get(reverse("transfers:discovery_run", args=[run.pk])))
    assert "<dd>2026-11-25 22:11:41</dd>" in page
    assert '<table class="files unmatched">' in page and "Belongs to no subject." in page


def test_login_and_logout_messages_use_the_portals_words(client, viewer):
    response = client.post(
        reverse("account_login"),
        {"login": viewer.username, "password": "correct horse battery staple"},
        follow=True,
    )
    assert f"Logged in as {viewer.username}." in html(response)
    response = client.post(reverse("account_logout"), follow=True)
    assert "You have logged out." in html(response)
