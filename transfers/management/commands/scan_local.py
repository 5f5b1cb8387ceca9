"""``manage.py scan_local ALIAS``: bring the catalog in line with what a local location holds."""

from catalog.models import LocationRole
from transfers.management.commands._discovery_command import DiscoveryCommand


class Command(DiscoveryCommand):
    help = (
        "Walk a local location (rig or lab storage), register the raw files it holds as local copies, "
        "and mark missing the copies it no longer holds. Prints progress on stderr and a summary; "
        "exits non-zero when the walk could not finish."
    )
    role = LocationRole.LOCAL
    other_command = "discover_archive"
