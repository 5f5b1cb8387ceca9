from django.contrib import admin
from django.urls import include, path

from archive_portal import globus, views

admin.site.site_header = "Archive portal administration"
admin.site.site_title = "Archive portal admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Globus login runs through the portal's provider views: the paths of
    # allauth's globus_login / globus_callback, listed first so they win.
    path("accounts/globus/login/", globus.oauth2_login),
    path("accounts/globus/login/callback/", globus.oauth2_callback),
    path("accounts/globus/login-again/", views.login_again, name="globus_login_again"),
    # The portal sends no email; allauth's pages that would are answered here.
    path("accounts/password/reset/", views.no_email),
    path("accounts/email/", views.no_email),
    path("accounts/", include("allauth.urls")),
    path("transfers/", include("transfers.urls")),
    path("", include("catalog.urls")),
]
