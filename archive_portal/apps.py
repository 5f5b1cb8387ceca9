from django.apps import AppConfig


class ArchivePortalConfig(AppConfig):
    name = "archive_portal"
    verbose_name = "Portal accounts"

    def ready(self):
        # Register the start-up checks and the logout receiver.
        from archive_portal import checks, signals  # noqa: F401
