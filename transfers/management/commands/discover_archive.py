"""``manage.py discover_archive ALIAS``: bring the catalog in line with what an archive holds."""

from catalog.models import LocationRole
from transfers.management.commands._discovery_command import DiscoveryCommand


class Command(DiscoveryCommand):
    help = (
        "Walk an archive location (Globus or filesystem), register the raw files it holds as archived "
        "copies, and mark missing the copies it no longer holds. Prints progress on stderr and a summary; "
        "exits non-zero when the walk could not finish."
    )
    role = LocationRole.ARCHIVE
    other_command = "scan_local"
