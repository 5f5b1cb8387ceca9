from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "transfers"
    verbose_name = "Transfers"

    def ready(self):
        from archive_portal.signals import globus_tokens_updated
        from catalog.queries import register_session_jobs
        from transfers.queries import unfinished_archive_jobs
        from transfers.services import on_globus_tokens_updated

        globus_tokens_updated.connect(on_globus_tokens_updated, dispatch_uid="transfers.resume_parked_jobs")
        # The subject page shows "archiving" and a progress bar for these sessions.
        register_session_jobs(unfinished_archive_jobs)
