"""A real django-q2 worker for end-to-end tests: ``manage.py qcluster`` in a
subprocess, on the test database, with the test process's environment.

Tests that use it need ``transactional_db`` (the worker reads committed rows
only). The test database is passed to the worker as DATABASE_URL: for SQLite
it is a file (``var/test_portal.sqlite3``), for PostgreSQL ``test_<name>``.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def test_database_url():
    """DATABASE_URL naming the database the tests are using right now."""
    settings = connection.settings_dict
    engine = settings["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(settings['NAME']).resolve()}"
    if "postgresql" in engine:
        credentials = quote(settings["USER"] or "", safe="")
        if settings["PASSWORD"]:
            credentials += ":" + quote(settings["PASSWORD"], safe="")
        host = settings["HOST"] or "localhost"
        port = f":{settings['PORT']}" if settings["PORT"] else ""
        at = f"{credentials}@" if credentials else ""
        return f"postgres://{at}{host}{port}/{quote(settings['NAME'], safe='')}"
    raise RuntimeError(f"No worker support for database engine {engine}.")


class Worker:
    """One ``qcluster`` process group, started and stopped by the test that owns it."""

    def __init__(self, log_path, **environment):
        self.log_path = Path(log_path)
        self.environment = environment
        self.process = None

    def start(self):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": test_database_url(),
            "PORTAL_DEVELOPMENT": "1",
            "Q_WORKERS": "2",
            "Q_POLL": "0.2",
            "PORTAL_POLL_SECONDS": "1",
            **{key: str(value) for key, value in self.environment.items()},
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            # qcluster stops its own sentinel and workers on SIGTERM.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # Whatever the cluster left behind is in the group we started it in.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()
        self.process = None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, *, timeout=60, interval=0.2, tick=None):
        """Call ``tick`` and check ``condition`` until it holds; fail with the worker's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if tick is not None:
                tick()
            if condition():
                return
            if self.process.poll() is not None:
                pytest.fail(f"The worker exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(interval)
        pytest.fail(f"Timed out after {timeout}s; worker log:\n{self.log()[-5000:]}")


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """``start_worker(**env)`` starts a qcluster; every one started is stopped after the test."""
    workers = []

    def start(**environment):
        worker = Worker(tmp_path / f"qcluster-{len(workers)}.log", **environment).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
