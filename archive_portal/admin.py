"""The admin site follows the portal's roles; accounts and the admin change log.

``AdministeredByAdmins`` gives admins (role ``admin``, and superusers) the
view/add/change/delete permissions on a ModelAdmin or inline without Django's
per-model permission rows; everyone else sees nothing. Admins change users'
roles here; the role decides ``is_staff``. Every change made through the admin
is recorded by Django's LogEntry and shown, read-only, as the admin change log.
Globus tokens have no admin page: their values never leave the vault. Nor do
allauth's social tokens and apps: the portal stores no tokens there, and its
Globus client comes from the environment (an app added in the admin would show
its secret, and would make login ambiguous).
"""

# Imported first so that its registrations exist to be undone below.
import allauth.socialaccount.admin  # noqa: F401
from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.html import format_html

from archive_portal.models import User

admin.site.unregister(SocialToken)
admin.site.unregister(SocialApp)


def is_portal_admin(request):
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.can_administer)


class AdministeredByAdmins:
    """Admin permissions from the portal role instead of model permissions."""

    def has_module_permission(self, request):
        return is_portal_admin(request)

    def has_view_permission(self, request, obj=None):
        return is_portal_admin(request)

    def has_add_permission(self, request, *args):
        return is_portal_admin(request)

    def has_change_permission(self, request, obj=None):
        return is_portal_admin(request)

    def has_delete_permission(self, request, obj=None):
        return is_portal_admin(request)


class PortalUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


class PortalUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "role")


@admin.register(User)
class UserAdmin(AdministeredByAdmins, DjangoUserAdmin):
    form = PortalUserChangeForm
    add_form = PortalUserCreationForm
    list_display = ("username", "email", "first_name", "last_name", "role", "is_active", "last_login")
    list_editable = ("role",)
    list_filter = ("role", "is_active", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("username",)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        (
            "Role",
            {
                "fields": ("role", "is_active", "is_staff"),
                "description": (
                    "Viewers browse and retrieve; archivists also archive and cancel; admins also use "
                    "this admin site. Staff status follows the role."
                ),
            },
        ),
        ("Django permissions", {"fields": ("is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "role", "usable_password", "password1", "password2"),
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        readonly = ["is_staff", "last_login", "date_joined"]
        if not request.user.is_superuser:
            # Only a superuser hands out superuser status or Django permissions.
            readonly += ["is_superuser", "groups", "user_permissions"]
        return readonly

    def _may_edit(self, request, obj):
        # An admin who is not a superuser cannot take over a superuser's account.
        return obj is None or not obj.is_superuser or request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_edit(request, obj)


@admin.register(LogEntry)
class AdminChangeLogAdmin(AdministeredByAdmins, admin.ModelAdmin):
    """Every change made through the admin site, read-only."""

    list_display = ("action_time", "user", "action", "content_type", "changed_object", "change")
    list_filter = ("action_flag", "content_type")
    search_fields = ("object_repr", "change_message", "user__username")
    date_hierarchy = "action_time"
    list_select_related = ("user", "content_type")
    ordering = ("-action_time",)
    fields = ("action_time", "user", "action", "content_type", "object_id", "changed_object", "change")
    readonly_fields = fields

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Admin change log", **(extra_context or {})})

    @admin.display(description="Action", ordering="action_flag")
    def action(self, entry):
        return entry.get_action_flag_display()

    @admin.display(description="Object", ordering="object_repr")
    def changed_object(self, entry):
        url = None if entry.is_deletion() else entry.get_admin_url()
        return format_html('<a href="{}">{}</a>', url, entry.object_repr) if url else entry.object_repr

    @admin.display(description="Change")
    def change(self, entry):
        return entry.get_change_message()
