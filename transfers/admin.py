"""Transfer jobs in the admin site: read-only, with a cancel action.

Jobs change state only through the services and the workers, so every field
here is read-only; an admin can look, and cancel.
"""

from django.contrib import admin, messages

from archive_portal.admin import AdministeredByAdmins
from transfers.models import TransferItem, TransferJob, TransferTask
from transfers.services import Refusal, cancel_job


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransferTaskInline(ReadOnlyInline):
    model = TransferTask
    fields = (
        "number",
        "state",
        "task_id",
        "submission_id",
        "nice_status",
        "files_total",
        "files_done",
        "files_skipped",
        "bytes_done",
        "faults",
        "error_code",
        "error_message",
        "submitted_at",
        "finished_at",
    )
    readonly_fields = fields


@admin.register(TransferJob)
class TransferJobAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "state",
        "label",
        "requested_by",
        "files_done",
        "files_total",
        "bytes_done",
        "error_code",
        "updated_at",
    )
    list_filter = ("kind", "state", "source", "destination")
    search_fields = ("label", "error_code", "error_message", "tasks__task_id")
    list_select_related = ("requested_by",)
    date_hierarchy = "created_at"
    inlines = [TransferTaskInline]
    actions = ["cancel_jobs"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        canceled = 0
        for job in queryset:
            try:
                cancel_job(job=job, user=request.user)
            except Refusal as refusal:
                self.message_user(request, f"Job #{job.pk}: {refusal}", messages.WARNING)
            else:
                canceled += 1
        if canceled:
            self.message_user(request, f"Asked {canceled} job(s) to stop.", messages.SUCCESS)


@admin.register(TransferItem)
class TransferItemAdmin(AdministeredByAdmins, admin.ModelAdmin):
    list_display = ("job", "file", "state", "error_message")
    list_filter = ("state",)
    search_fields = ("file__subpath",)
    list_select_related = ("job", "file")
    raw_id_fields = ("job", "task", "file")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
