"""The transfer management commands: archive_session, retrieve, jobs, ensure_schedules."""

import io

import pytest
from django.core.management import CommandError, call_command
from django_q.conf import Conf

from catalog.models import LocationRole, Replica
from tests.factories import SessionFactory, SubjectFactory
from tests.transfer_factories import add_files, archived_session, ensure_file_types, filesystem_location
from transfers.models import JobKind, JobState, TransferJob


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fs(tmp_path):
    local = filesystem_location(tmp_path, "rig")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    return local, archive, scratch


@pytest.mark.django_db
def test_archive_session_prints_the_job(fs, archivist):
    local, _, _ = fs
    session = SessionFactory(
        subject=SubjectFactory(water_restriction_number="dl59", subject_id=407513), ident="2"
    )
    add_files(session, local, count=3, size=1024)
    output = run(
        "archive_session",
        "DL59",
        session.session_date.isoformat(),
        "--ident",
        "2",
        "--user",
        archivist.username,
    )
    job = TransferJob.objects.get()
    assert output.startswith(f"Queued job #{job.pk}: Archive dl59 ")
    assert "(3 files, 3.0\xa0KB)" in output
    assert (job.kind, job.requested_by) == (JobKind.ARCHIVE, archivist)
    # The subject id works too, and a second request is refused in words.
    with pytest.raises(CommandError, match=r"already being archived.*\[already_running\]"):
        run("archive_session", "407513", session.session_date.isoformat(), "--ident", "2")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody1", "2019-07-01"], "There is no subject 'nobody1'."),
        (["SUBJECT", "01/07/2019"], "not a date in YYYY-MM-DD form"),
        (["SUBJECT", "2001-01-01"], "has no session on 2001-01-01"),
        (["SUBJECT", "DATE", "--user", "ghost"], "There is no user 'ghost'."),
        (["SUBJECT", "DATE", "--user", "viewer@lab.example.org"], "[no_permission]"),
    ],
)
def test_archive_session_refusals(fs, viewer, args, message):
    local, _, _ = fs
    session = SessionFactory()
    add_files(session, local)
    substitutions = {
        "SUBJECT": session.subject.water_restriction_number,
        "DATE": session.session_date.isoformat(),
    }
    with pytest.raises(CommandError) as error:
        run("archive_session", *[substitutions.get(arg, arg) for arg in args])
    assert message in str(error.value)


@pytest.mark.django_db
def test_retrieve_selects_by_dates_and_type(fs, viewer):
    _, archive, _ = fs
    subject = SubjectFactory(water_restriction_number="SC026")
    early, _ = archived_session(archive, count=2, session=SessionFactory(subject=subject))
    late, late_files = archived_session(archive, count=3, session=SessionFactory(subject=subject))
    output = run(
        "retrieve",
        "--subject",
        "sc026",
        "--date-from",
        late.session_date.isoformat(),
        "--dataset-type",
        "raw-ephys",
        "--to",
        "scratch",
        "--user",
        viewer.username,
    )
    assert "3 archived files (300\xa0bytes) to retrieve; 0 already at scratch" in output
    job = TransferJob.objects.get()
    assert set(job.items.values_list("file_id", flat=True)) == {file.pk for file in late_files}
    assert f"Queued job #{job.pk}: Retrieve 3 files of SC026 to scratch" in output


@pytest.mark.django_db
def test_retrieve_refusals(fs):
    _, archive, _ = fs
    session, _ = archived_session(archive, count=1)
    h2o = session.subject.water_restriction_number
    with pytest.raises(CommandError, match=r"\[not_writable\]"):
        run("retrieve", "--subject", h2o, "--to", "rig")
    with pytest.raises(CommandError, match="There is no location 'nowhere'"):
        run("retrieve", "--subject", h2o, "--to", "nowhere")
    with pytest.raises(CommandError, match="has no files matching"):
        run("retrieve", "--subject", h2o, "--to", "scratch", "--date-from", "2100-01-01")


@pytest.mark.django_db
def test_jobs_lists_a_table(fs, archivist):
    local, _, _ = fs
    assert run("jobs").strip() == "No transfer jobs."
    session = SessionFactory()
    add_files(session, local, count=2, size=2048)
    run("archive_session", session.subject.water_restriction_number, session.session_date.isoformat())
    lines = run("jobs").splitlines()
    assert lines[0].split() == [
        "ID",
        "KIND",
        "STATE",
        "REQUESTED",
        "BY",
        "LABEL",
        "FILES",
        "BYTES",
        "UPDATED",
    ]
    assert "archive  queued  (portal)" in lines[1]
    assert "0/2" in lines[1] and "0 bytes/4.0 KB" in lines[1]
    assert run("jobs", "--state", "succeeded").strip() == "No transfer jobs."
    assert len(run("jobs", "--unfinished").splitlines()) == 2


@pytest.fixture
def inline_worker(monkeypatch):
    """django-q2 runs queued tasks at once, in this process."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.mark.django_db(transaction=True)
def test_wait_follows_the_job_to_success(tmp_path, inline_worker):
    ensure_file_types()
    local = filesystem_location(tmp_path, "rig")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=2, on_disk=local.local_path)
    output = run(
        "archive_session",
        session.subject.water_restriction_number,
        session.session_date.isoformat(),
        "--wait",
    )
    assert output.splitlines()[-1].endswith("Succeeded: 2/2 files, 200\xa0bytes of 200\xa0bytes")
    assert Replica.objects.filter(location=archive).count() == 2


@pytest.mark.django_db(transaction=True)
def test_wait_exits_non_zero_when_the_job_fails(tmp_path, inline_worker):
    ensure_file_types()
    local = filesystem_location(tmp_path, "rig")
    filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=2)  # not on disk: the copy fails
    with pytest.raises(CommandError, match=r"Not every job succeeded: #\d+ Failed"):
        run(
            "archive_session",
            session.subject.water_restriction_number,
            session.session_date.isoformat(),
            "--wait",
        )
    assert TransferJob.objects.get().state == JobState.FAILED


@pytest.mark.django_db
def test_ensure_schedules_reports(settings):
    settings.PORTAL_POLL_SECONDS = 120
    assert "every 2 minute(s)" in run("ensure_schedules")
