from django.apps import AppConfig


class ArchivePortalConfig(AppConfig):
    name = "archive_portal"
    verbose_name = "Portal accounts"
