"""python manage.py export_catalog [--subject H2O_OR_ID] [--format jsonl|csv]"""

from argparse import RawDescriptionHelpFormatter

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

from catalog import queries
from catalog.exports import FORMATS, export_lines, iter_records

HELP = """\
Print the catalog, one record per raw file, on standard output. This output is
a stable interface for scripts: they can rely on the fields below, their names
and their order.

Fields, in this order:
  subject_id                subject id (integer), or empty/null when unknown
  water_restriction_number  as stored, e.g. dl59
  session_date              ISO date, YYYY-MM-DD
  ident                     session ident, empty for the first session of a day
  session_number            integer, or empty/null when unknown
  dataset_type              raw-ephys or raw-video
  subpath                   path of the file relative to every location's root
  file_type                 file type name, e.g. ephys-raw-neuropixels-ap-bin
  probe                     probe insertion (1, 2, ...), empty/null at session level
  size                      bytes
  checksum                  as recorded, or empty/null when unknown
  locations                 aliases of the storage locations holding a present copy
  archived                  true when an archive location holds a present copy

Formats:
  jsonl (default)  one JSON object per line; locations is a list of strings,
                   archived a boolean, unknown values null
  csv              a header line with the field names, then one line per file;
                   locations joined with ';', archived true/false, unknown values empty

Records are ordered by water restriction number, session date, ident, dataset
type and subpath. An unknown --subject exits with status 1 and a message on
standard error.
"""


class _HelpFormatter(RawDescriptionHelpFormatter, DjangoHelpFormatter):
    """Keeps the field table's layout in --help."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "--subject",
            metavar="H2O_OR_ID",
            help="Only this subject's files (water restriction number or subject id).",
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="jsonl",
            dest="output_format",
            help="Output format (default jsonl).",
        )

    def handle(self, *args, subject, output_format, **options):
        selected = None
        if subject is not None:
            selected = queries.find_subject(subject)
            if selected is None:
                raise CommandError(f"No subject with water restriction number or subject id {subject!r}.")
        for line in export_lines(iter_records(selected), output_format):
            self.stdout.write(line, ending="")
