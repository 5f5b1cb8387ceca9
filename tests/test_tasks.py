"""The django-q2 tasks, called as the workers call them: with ids, building
their own Globus clients from the portal's settings (loopback fakes here)."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from catalog.models import LocationRole, Replica
from tests.factories import SessionFactory
from tests.transfer_factories import add_files, filesystem_location, point_sdk_at, start_globus, stop_globus
from transfers import tasks
from transfers.jobs import POLL_FUNC, POLL_SCHEDULE_NAME, ensure_poll_schedule
from transfers.models import JobState, TransferJob
from transfers.services import request_archive, resume_jobs_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path, monkeypatch, settings):
    world = start_globus(tmp_path, auth=True, auto_complete_after_polls=1)
    point_sdk_at(world, monkeypatch, settings)
    yield world
    stop_globus(world)


def test_submit_and_poll_as_the_portal(world):
    local = world.location("rig-globus")
    archive = world.location("petrel", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=5, on_disk=world.directory(local))
    [job] = request_archive(session=session, user=None)

    assert tasks.submit_job(job.pk) == f"Job {job.pk} submitted."
    assert tasks.poll_active_jobs() == {"requeued": 0, "polled": 1}

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert Replica.objects.filter(location=archive).count() == 5
    assert tasks.poll_active_jobs() == {"requeued": 0, "polled": 0}


def test_a_user_without_globus_tokens_is_asked_to_log_in(world, archivist):
    local = world.location("rig-globus")
    world.location("petrel", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=1, on_disk=world.directory(local))
    [job] = request_archive(session=session, user=archivist)

    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.NEEDS_LOGIN, "LoginRequired")
    assert "log in with Globus" in job.error_message
    assert world.transfer.tasks == []
    [resumed] = resume_jobs_for(archivist)
    assert resumed.state == JobState.QUEUED


def test_an_active_job_whose_user_lost_their_tokens_is_parked(world, archivist):
    local = world.location("rig-globus")
    world.location("petrel", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=1, on_disk=world.directory(local))
    [job] = request_archive(session=session, user=archivist)
    TransferJob.objects.filter(pk=job.pk).update(state=JobState.ACTIVE, retry_at=None)
    job.tasks.update(task_id="4c4fd5f4-4b41-11e8-9a6d-0a6d4e044368", state="active")

    tasks.poll_active_jobs()

    job.refresh_from_db()
    assert job.state == JobState.NEEDS_LOGIN
    [resumed] = resume_jobs_for(archivist)
    assert resumed.state == JobState.ACTIVE


def test_a_portal_without_globus_settings_fails_its_jobs_in_words(world, settings):
    settings.GLOBUS_CLIENT_SECRET = ""
    local = world.location("rig-globus")
    world.location("petrel", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=1)
    [job] = request_archive(session=session, user=None)
    tasks.submit_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "GlobusClientNotConfigured")
    assert "GLOBUS_CLIENT_SECRET" in job.error_message


def test_filesystem_jobs_run_through_the_tasks(tmp_path):
    local = filesystem_location(tmp_path, "rig")
    filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    session = SessionFactory()
    add_files(session, local, count=2, on_disk=local.local_path)
    [job] = request_archive(session=session, user=None)
    tasks.submit_job(job.pk)
    assert tasks.run_filesystem_job(job.pk) == f"Job {job.pk} succeeded."
    assert "not active" in tasks.run_filesystem_job(job.pk)


def test_the_poll_schedule_is_created_once(settings):
    settings.PORTAL_POLL_SECONDS = 30
    Schedule.objects.filter(name=POLL_SCHEDULE_NAME).delete()
    schedule, created = ensure_poll_schedule()
    assert created
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        POLL_FUNC,
        Schedule.MINUTES,
        1,
        -1,
    )
    settings.PORTAL_POLL_SECONDS = 300
    call_command("ensure_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("ensure_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    [schedule] = Schedule.objects.filter(name=POLL_SCHEDULE_NAME)
    assert schedule.minutes == 5


def test_the_migration_created_the_schedule():
    assert Schedule.objects.filter(name=POLL_SCHEDULE_NAME, func=POLL_FUNC).count() == 1
