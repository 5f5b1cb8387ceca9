"""The admin site follows the portal's roles.

``AdministeredByAdmins`` gives admins (role ``admin``, and superusers) the
view/add/change/delete permissions on a ModelAdmin or inline without Django's
per-model permission rows; everyone else sees nothing. Admins change users'
roles here. Globus tokens have no admin page: their values never leave the
vault.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from archive_portal.models import User


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


@admin.register(User)
class UserAdmin(AdministeredByAdmins, DjangoUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "is_superuser")
    list_editable = ("role",)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("role", "is_active", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "password1", "password2", "role")}),
    )
    readonly_fields = ("last_login", "date_joined")
