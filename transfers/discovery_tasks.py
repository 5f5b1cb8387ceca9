"""django-q2 task that carries out discovery runs in the workers."""

import logging
import time

from django.conf import settings

from catalog.models import RunState
from transfers import discovery

logger = logging.getLogger(__name__)


def _time_budget():
    """Seconds one task may walk before handing the run back to the queue, well inside the timeout."""
    return max(30, int(settings.Q_CLUSTER.get("timeout", 600)) // 2)


def run_discovery(run_id):
    """Carry out discovery run ``run_id`` for a while; queue a continuation if it is not done.

    Safe to deliver twice: a run that is finished or being carried out by a live
    worker is left alone; one whose worker died is taken over from its cursor.
    """
    try:
        run = discovery.execute_run(run_id, deadline=time.monotonic() + _time_budget())
    except discovery.RunNotClaimed as reason:
        logger.info("Discovery task for run %s did nothing: %s", run_id, reason)
        return str(reason)
    if run.state == RunState.QUEUED:
        discovery.enqueue(run_id)
    return f"Run #{run_id} {run.state}."
