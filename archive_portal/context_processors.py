"""Values every page needs."""

from django.conf import settings


def portal(request):
    return {"globus_login_enabled": bool(settings.GLOBUS_CLIENT_ID and settings.GLOBUS_CLIENT_SECRET)}
