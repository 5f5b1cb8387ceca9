"""A real qcluster worker carries archives and retrievals to completion,
against the loopback Globus fakes and on real directories."""

import io

import pytest
from django.core.management import call_command
from django_q.tasks import async_task

from catalog.models import LocationRole, Replica, ReplicaSource
from tests.factories import SessionFactory
from tests.transfer_factories import (
    PORTAL_CLIENT_ID,
    PORTAL_CLIENT_SECRET,
    add_files,
    content_of,
    ensure_file_types,
    filesystem_location,
    point_sdk_at,
    start_globus,
    stop_globus,
)
from tests.worker import start_worker  # noqa: F401 - fixture
from transfers.models import JobState, TransferJob
from transfers.services import request_archive, request_retrieval

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(tmp_path, monkeypatch, settings):
    ensure_file_types()
    world = start_globus(tmp_path, auth=True, auto_complete_after_polls=1, successful_transfers_page_size=3)
    point_sdk_at(world, monkeypatch, settings)
    yield world
    stop_globus(world)


def final(job):
    job.refresh_from_db()
    return job.is_final


def test_globus_archive_then_retrieval_by_the_worker(world, start_worker):  # noqa: F811
    worker = start_worker(GLOBUS_CLIENT_ID=PORTAL_CLIENT_ID, GLOBUS_CLIENT_SECRET=PORTAL_CLIENT_SECRET)
    local = world.location("rig-globus")
    archive = world.location("petrel", role=LocationRole.ARCHIVE)
    scratch = world.location("scratch", writable=True)
    session = SessionFactory()
    files = add_files(session, local, count=8, size=256, on_disk=world.directory(local))

    [archive_job] = request_archive(session=session, user=None)

    def poll():
        async_task("transfers.tasks.poll_active_jobs", task_name="e2e-poll")

    worker.wait_for(lambda: final(archive_job), tick=poll, interval=0.5)
    assert archive_job.state == JobState.SUCCEEDED, archive_job.error_message
    assert archive_job.files_done == 8
    assert Replica.objects.filter(location=archive, source=ReplicaSource.ARCHIVE).count() == 8
    assert world.path_of(archive, files[3]).read_bytes() == content_of(files[3].subpath, 256)

    [retrieval] = request_retrieval(sessions=[session], destination=scratch, user=None)
    worker.wait_for(lambda: final(retrieval), tick=poll, interval=0.5)
    assert retrieval.state == JobState.SUCCEEDED, retrieval.error_message
    assert Replica.objects.filter(location=scratch, source=ReplicaSource.RETRIEVE).count() == 8
    assert world.path_of(scratch, files[7]).read_bytes() == content_of(files[7].subpath, 256)
    assert len(world.transfer.tasks) == 2


def test_filesystem_archive_and_retrieval_commands_wait_for_the_worker(tmp_path, start_worker):  # noqa: F811
    ensure_file_types()
    worker = start_worker()
    local = filesystem_location(tmp_path, "rig")
    archive = filesystem_location(tmp_path, "archive", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch", writable=True)
    session = SessionFactory()
    files = add_files(session, local, count=6, size=2048, on_disk=local.local_path)
    h2o = session.subject.water_restriction_number

    out = io.StringIO()
    call_command(
        "archive_session", h2o, session.session_date.isoformat(), "--wait", "--interval", "0.2", stdout=out
    )
    assert "Queued job #" in out.getvalue()
    assert "Succeeded: 6/6 files" in out.getvalue()
    assert Replica.objects.filter(location=archive).count() == 6

    out = io.StringIO()
    call_command("retrieve", "--subject", h2o, "--to", "scratch", "--wait", "--interval", "0.2", stdout=out)
    assert "6 archived files" in out.getvalue()
    assert "Succeeded: 6/6 files" in out.getvalue()
    for file in files:
        assert (tmp_path / "scratch" / file.subpath).read_bytes() == content_of(file.subpath, 2048)
    assert TransferJob.objects.filter(state=JobState.SUCCEEDED).count() == 2
    assert Replica.objects.filter(location=scratch).count() == 6
    worker.wait_for(lambda: True)
