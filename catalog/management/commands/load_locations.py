"""python manage.py load_locations FILE.json"""

from argparse import RawDescriptionHelpFormatter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

from catalog.locations import LocationsRefused, load_locations

HELP = """\
Create or update storage locations from a JSON file, idempotently, and report
per alias whether it was created, updated (with the fields that changed) or
left unchanged. The whole file is applied in one transaction: if any entry is
invalid, nothing changes, every problem is listed on standard error and the
command exits with status 1.

The portal's format is a JSON list of objects with the keys:
  alias          slug, unique (required)
  role           archive or local (required)
  dataset_type   raw-ephys or raw-video (required)
  backend        globus or filesystem (required)
  collection_id  Globus collection UUID (required for globus)
  path           absolute root path inside the collection, e.g. /ePhys
  local_path     absolute path on this server (required for filesystem)
  writable       true or false: may receive retrieved files
Other keys are refused. A key left out keeps the stored value (or the default
for a new location: path /, no local path, not writable).
catalog/fixtures/facility_locations.json holds the original facility's archive
locations in this format.

The original DataJoint pipeline's dj_local_conf.json is read too:
  custom > globus.storage_locations, a list of [alias, endpoint UUID, path]:
      Globus archive locations named <alias>-archive (raw-ephys becomes
      raw-ephys-archive), root path = path. The dataset type comes from the
      alias or the path: 'ephys' (raw-ephys, /ePhys) gives raw-ephys, 'video'
      or 'tracking' (raw-video, /Videos) gives raw-video; anything else is
      refused with the reason.
  custom > globus.local_endpoints, {alias: {endpoint, endpoint_subdir,
      endpoint_path}}: Globus local locations named <alias>-local, dataset
      type from the alias as above, root path = endpoint_subdir, local path =
      endpoint_path.
  globus.local_endpoint, globus.local_endpoint_subdir,
  globus.local_endpoint_local_path (top level): the machine's one local
      endpoint for all raw data; it becomes raw-ephys-local and/or
      raw-video-local for the dataset types globus.local_endpoints leaves out.
  A relative subdir or path is taken from the top of the collection (map/raw
  becomes /map/raw), as the original pipeline used it. New locations from this
  file are not writable; reloading it keeps the writable flag an admin set.
  Other settings (database connection and the like) are ignored. A token in
  the file (globus.token, or any key mentioning a token) is never imported
  nor printed: a warning names the key.
"""


class _HelpFormatter(RawDescriptionHelpFormatter, DjangoHelpFormatter):
    """Keeps the key tables' layout in --help."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("file", help="The locations file (portal format or dj_local_conf.json).")

    def handle(self, *args, file, **options):
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {getattr(error, 'strerror', None) or error}.") from error
        try:
            result = load_locations(text)
        except LocationsRefused as refused:
            self._warn(refused.warnings)
            for problem in refused.problems:
                self.stderr.write(f"{file}: {problem}")
            count = len(refused.problems)
            raise CommandError(
                f"No location was changed: {count} problem{'s' if count != 1 else ''} in {file}."
            ) from refused
        self._warn(result.warnings)
        for change in result.changes:
            self.stdout.write(str(change))

    def _warn(self, warnings):
        for warning in warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
