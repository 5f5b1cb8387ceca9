"""Re-encrypt every stored Globus token with the first of PORTAL_TOKEN_KEYS.

Rotation: put the new key first in PORTAL_TOKEN_KEYS (keep the old one after
it), restart, run this command, then drop the old key.
"""

from django.core.management.base import BaseCommand, CommandError

from archive_portal import vault


class Command(BaseCommand):
    help = "Re-encrypt stored Globus tokens with the first key of PORTAL_TOKEN_KEYS."

    def handle(self, *args, **options):
        try:
            count = vault.rotate_keys()
        except vault.VaultError as err:
            raise CommandError(str(err)) from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the Globus tokens of {count} vault entries."))
