"""The portal's user: a lab member with a role."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (browse and retrieve)"
    ARCHIVIST = "archivist", "Archivist (also archive and cancel)"
    ADMIN = "admin", "Admin (also the admin site)"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    def save(self, *args, **kwargs):
        # The admin site is the admins' tool; the role decides who sees it.
        if self.role == Role.ADMIN:
            self.is_staff = True
        elif not self.is_superuser:
            self.is_staff = False
        super().save(*args, **kwargs)

    @property
    def can_archive(self):
        return self.is_superuser or self.role in {Role.ARCHIVIST, Role.ADMIN}

    @property
    def can_administer(self):
        return self.is_superuser or self.role == Role.ADMIN

    @property
    def can_retrieve(self):
        return self.is_active


class GlobusToken(models.Model):
    """One user's Globus tokens for one resource server, encrypted at rest.

    Only ``archive_portal.vault`` reads or writes the encrypted fields; nothing
    here ever shows a token value (``repr``, ``str``, the admin).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="globus_tokens")
    resource_server = models.CharField(max_length=255)
    scopes = models.TextField(blank=True, help_text="Space-separated scopes the token carries.")
    access_token_encrypted = models.TextField(editable=False)
    refresh_token_encrypted = models.TextField(blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "resource_server"], name="globus_token_user_server_uniq"),
        ]

    def __str__(self):
        return f"{self.resource_server} token of {self.user_id}"

    def __repr__(self):
        return f"<GlobusToken user={self.user_id} resource_server={self.resource_server!r}>"
