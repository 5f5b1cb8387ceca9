from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Archive portal administration"
admin.site.site_title = "Archive portal admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("transfers/", include("transfers.urls")),
    path("", include("catalog.urls")),
]
