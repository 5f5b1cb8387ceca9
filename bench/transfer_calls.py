"""How many Globus API calls an archive costs, and what one poll cycle costs.

Counts the requests the loopback FakeGlobusTransfer receives (its request log)
while the portal archives one session of 10 and of 1,000 files, against the
original workflow that copied each file in its own blocking task
(get_submission_id + submit_transfer + task_wait per file). Then times one
poll cycle over 500 active jobs and counts its calls and SQL queries.

    python -m bench.transfer_calls

Runs on a throw-away database: a temporary SQLite file, or ``test_<name>``
beside the database DATABASE_URL names.
"""

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

SIZES = (10, 1000)
ACTIVE_JOBS = 500


def _configure(workdir):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("PORTAL_VAR_DIR", str(workdir))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()


@contextmanager
def _throwaway_database(workdir):
    from django.db import connection

    if connection.vendor == "sqlite":
        connection.settings_dict.setdefault("TEST", {})["NAME"] = str(Path(workdir) / "bench.sqlite3")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _world(root, **options):
    from tests.transfer_factories import fake_transfer_client, start_globus

    world = start_globus(root, auth=False, **options)
    return world, fake_transfer_client(world.transfer)


def _portal_archive(root, places, files):
    """(API calls, seconds) for the portal to archive one session of ``files`` files."""
    from tests.factories import SessionFactory
    from tests.transfer_factories import add_files, stop_globus
    from transfers import jobs as runner
    from transfers.backends.globus import GlobusBackend
    from transfers.models import JobState
    from transfers.services import request_archive

    world, client = _world(root / f"portal-{files}", auto_complete_after_polls=1)
    try:
        local, _archive = (world.map(location) for location in places)
        session = SessionFactory()
        add_files(session, local, count=files, size=64, on_disk=world.directory(local))
        [job] = request_archive(session=session, user=None)
        backend = GlobusBackend(client)
        started = time.perf_counter()
        runner.submit_job(job.pk, backend=backend)
        runner.poll_active_jobs(backend=backend)
        elapsed = time.perf_counter() - started
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, job.error_message
        return len(world.transfer.requests), elapsed
    finally:
        stop_globus(world)


def _original_archive(root, files):
    """(API calls, seconds) for one blocking task per file, as the original workflow did."""
    import globus_sdk

    from tests.transfer_factories import content_of, stop_globus

    world, client = _world(root / f"original-{files}", auto_complete_after_polls=1)
    try:
        source, destination = "0a6e3c5e-9a2f-4c1e-8d3b-1f2e3d4c5b6a", "5b875fda-4185-11e8-bb52-0ac6873fc732"
        world.transfer.add_collection(source, root / f"original-{files}" / "rig")
        world.transfer.add_collection(destination, root / f"original-{files}" / "archive")
        folder = root / f"original-{files}" / "rig" / "ePhys" / "dl59" / "catgt_dl59_073119_g0"
        folder.mkdir(parents=True)
        names = [f"file{index:04d}.nidq.bin" for index in range(files)]
        for name in names:
            (folder / name).write_bytes(content_of(name, 64))
        started = time.perf_counter()
        for name in names:
            path = f"/ePhys/dl59/catgt_dl59_073119_g0/{name}"
            data = globus_sdk.TransferData(
                source,
                destination,
                label=f"archive {name}",
                submission_id=client.get_submission_id()["value"],
                sync_level="checksum",
                verify_checksum=True,
            )
            data.add_item(path, path)
            task_id = client.submit_transfer(data)["task_id"]
            client.task_wait(task_id, timeout=60, polling_interval=1)
        elapsed = time.perf_counter() - started
        return len(world.transfer.requests), elapsed
    finally:
        stop_globus(world)


def _poll_cycle(root, places, jobs):
    """(task_list calls, all calls, SQL queries, seconds) of one poll over ``jobs`` active jobs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import SessionFactory
    from tests.transfer_factories import add_files, stop_globus
    from transfers import jobs as runner
    from transfers.backends.globus import GlobusBackend
    from transfers.models import JobState, TransferJob
    from transfers.services import request_archive

    world, client = _world(root / "poll")
    try:
        local, _archive = (world.map(location) for location in places)
        backend = GlobusBackend(client)
        for _ in range(jobs):
            session = SessionFactory()
            add_files(session, local, count=1, size=64, on_disk=world.directory(local))
            [job] = request_archive(session=session, user=None)
            runner.submit_job(job.pk, backend=backend)
        assert TransferJob.objects.filter(state=JobState.ACTIVE).count() == jobs
        world.transfer.reset_requests()
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            runner.poll_active_jobs(backend=backend)
        elapsed = time.perf_counter() - started
        return world.calls("task_list"), len(world.transfer.requests), len(queries), elapsed
    finally:
        stop_globus(world)


def main():
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as workdir:
        _configure(workdir)
        from catalog.models import LocationRole
        from tests.transfer_factories import ensure_file_types, globus_location

        with _throwaway_database(workdir):
            ensure_file_types()
            places = (globus_location("rig"), globus_location("petrel", role=LocationRole.ARCHIVE))
            root = Path(workdir)
            rows = []
            for files in SIZES:
                portal_calls, portal_seconds = _portal_archive(root, places, files)
                original_calls, original_seconds = _original_archive(root, files)
                rows.append((files, portal_calls, portal_seconds, original_calls, original_seconds))
            task_lists, poll_calls, queries, poll_seconds = _poll_cycle(root, places, ACTIVE_JOBS)

    print("Globus API calls to archive one session (loopback fake, its request log)")
    header = ("files", "portal calls", "portal s", "one task per file", "its s", "ratio")
    print("  ".join(f"{title:>{width}}" for title, width in zip(header, (6, 12, 8, 17, 7, 6), strict=True)))
    for files, portal_calls, portal_seconds, original_calls, original_seconds in rows:
        print(
            f"{files:>6}  {portal_calls:>12}  {portal_seconds:>8.2f}  {original_calls:>17}  "
            f"{original_seconds:>7.2f}  {original_calls / portal_calls:>5.0f}x"
        )
    print()
    print(f"One poll cycle over {ACTIVE_JOBS} active jobs")
    print(f"  task_list calls   {task_lists}")
    print(f"  Globus calls      {poll_calls}")
    print(f"  SQL queries       {queries}")
    print(f"  wall time         {poll_seconds:.2f} s")


if __name__ == "__main__":
    main()
