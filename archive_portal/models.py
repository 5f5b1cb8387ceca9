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
