"""Transfer backends: the only code that moves bytes between storage locations.

``backend_for(job)`` picks the backend both of a job's locations use; a job
between a Globus collection and a plain filesystem cannot be carried out.
"""

from catalog.models import Backend


def check_same_backend(source, destination):
    """Refuse a transfer between locations of different backends."""
    from transfers.services import Refusal

    if source.backend != destination.backend:
        raise Refusal(
            f"{source.alias} is a {source.get_backend_display().lower()} location and "
            f"{destination.alias} a {destination.get_backend_display().lower()} location; "
            "the portal can only transfer between locations of the same kind.",
            code="backend_mismatch",
        )


def backend_for(job, *, client=None):
    """The backend that carries out ``job``; a Globus one acts as the job's requester."""
    check_same_backend(job.source, job.destination)
    if job.source.backend == Backend.GLOBUS:
        from transfers.backends.globus import GlobusBackend

        return GlobusBackend(client, job=job)
    from transfers.backends.filesystem import FilesystemBackend

    return FilesystemBackend()
