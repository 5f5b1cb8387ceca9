"""The catalog in the admin site: where admins edit storage locations, file
types, subjects and sessions, import sessions from CSV, and look at (and
occasionally correct) raw files and their copies.

Raw files and replicas are registered by scans, discovery and transfers, so
they cannot be added here and their identifying fields are read-only.
"""

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from archive_portal.admin import AdministeredByAdmins
from catalog.forms import SessionImportForm, StorageLocationForm
from catalog.imports import COLUMNS, ImportRefused, import_sessions
from catalog.models import FileType, RawFile, Replica, Session, StorageLocation, Subject


@admin.register(StorageLocation)
class StorageLocationAdmin(AdministeredByAdmins, admin.ModelAdmin):
    form = StorageLocationForm
    list_display = (
        "alias",
        "role",
        "dataset_type",
        "backend",
        "collection_id",
        "root_path",
        "local_path",
        "writable",
    )
    list_filter = ("dataset_type", "role", "backend", "writable")
    search_fields = ("alias", "description", "root_path", "local_path")
    fieldsets = (
        (None, {"fields": ("alias", "role", "dataset_type", "backend", "writable", "description")}),
        (
            "Where the files are",
            {
                "fields": ("collection_id", "root_path", "local_path"),
                "description": (
                    "A Globus location needs its collection UUID; a filesystem location needs its "
                    "local path. Paths are absolute, with / separators."
                ),
            },
        ),
    )


@admin.register(FileType)
class FileTypeAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("name", "dataset_type", "glob", "order", "description")
    list_filter = ("dataset_type",)
    search_fields = ("name", "glob", "description")


class SessionInline(AdministeredByAdmins, admin.TabularInline):
    model = Session
    fields = ("session_date", "ident", "session_number", "session_time", "rig")
    extra = 0
    show_change_link = True


@admin.register(Subject)
class SubjectAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("water_restriction_number", "subject_id", "session_count", "created_at")
    search_fields = ("water_restriction_number", "subject_id__exact")
    readonly_fields = ("created_at",)
    inlines = (SessionInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(session_count=Count("sessions"))

    @admin.display(description="Sessions", ordering="session_count")
    def session_count(self, subject):
        return subject.session_count


@admin.register(Session)
class SessionAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("subject", "session_date", "ident", "session_number", "session_time", "rig")
    list_filter = ("rig",)
    search_fields = ("subject__water_restriction_number", "subject__subject_id__exact", "ident", "rig")
    date_hierarchy = "session_date"
    list_select_related = ("subject",)
    autocomplete_fields = ("subject",)
    readonly_fields = ("created_at",)

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="catalog_session_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        """Import subjects and sessions from an uploaded CSV file (see catalog.imports)."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        problems = []
        if request.method == "POST":
            form = SessionImportForm(request.POST, request.FILES)
        else:
            form = SessionImportForm()
        if form.is_bound and form.is_valid():
            upload = form.cleaned_data["csv_file"]
            try:
                with transaction.atomic():
                    result = import_sessions(upload)
                    _log_import(request.user, result, upload.name)
            except ImportRefused as refused:
                problems = refused.problems
            else:
                self.message_user(request, f"Imported {upload.name}. {result.summary()}", messages.SUCCESS)
                return redirect("admin:catalog_session_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import sessions from CSV",
            "form": form,
            "problems": problems,
            "columns": COLUMNS,
        }
        return TemplateResponse(request, "admin/catalog/session/import_sessions.html", context)


def _log_import(user, result, filename):
    """Record what an import through the admin created or changed in the admin change log."""
    message = f"Imported from {filename}."
    for objects, flag in (
        (result.subjects_created, ADDITION),
        (result.subjects_updated, CHANGE),
        (result.sessions_created, ADDITION),
        (result.sessions_updated, CHANGE),
    ):
        if objects:
            LogEntry.objects.log_actions(user.pk, objects, flag, change_message=message)


class ReplicaInline(AdministeredByAdmins, admin.TabularInline):
    model = Replica
    fields = ("location", "state", "source", "verified_at", "updated_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, *args):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RawFile)
class RawFileAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("subpath", "dataset_type", "session", "file_type", "probe_insertion", "size", "checksum")
    list_filter = ("dataset_type", "file_type")
    search_fields = ("subpath", "session__subject__water_restriction_number", "checksum")
    list_select_related = ("session__subject", "file_type")
    raw_id_fields = ("session", "file_type")
    readonly_fields = ("dataset_type", "subpath", "size", "modified_at", "created_at")
    fields = (
        "session",
        "dataset_type",
        "subpath",
        "file_type",
        "probe_insertion",
        "size",
        "checksum",
        "modified_at",
        "created_at",
    )
    inlines = (ReplicaInline,)
    # Counting every file on each page load is slow on a large catalog.
    show_full_result_count = False

    def has_add_permission(self, request, *args):
        return False


@admin.register(Replica)
class ReplicaAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("file", "location", "state", "source", "verified_at", "updated_at")
    list_filter = ("state", "source", "location", "location__role", "location__dataset_type")
    search_fields = ("file__subpath", "file__session__subject__water_restriction_number")
    list_select_related = ("file", "location")
    raw_id_fields = ("file",)
    readonly_fields = ("source", "updated_at")
    fields = ("file", "location", "state", "source", "verified_at", "updated_at")
    show_full_result_count = False

    def has_add_permission(self, request, *args):
        return False
