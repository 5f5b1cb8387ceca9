"""Background tasks run by the django-q2 workers.

Each takes ids, loads nothing it does not need, and hands over to
``transfers.jobs``, which owns the job state machine.
"""

from transfers import jobs


def submit_job(job_id):
    """Submit a queued (or interrupted) job to its backend."""
    return jobs.submit_job(job_id)


def poll_active_jobs():
    """The one scheduled poll of every active Globus job; also requeues stalled jobs."""
    return jobs.poll_active_jobs()


def run_filesystem_job(job_id):
    """Copy an active filesystem job's files."""
    return jobs.run_filesystem_job(job_id)
