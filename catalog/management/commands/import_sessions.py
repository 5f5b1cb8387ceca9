"""python manage.py import_sessions FILE.csv"""

from django.core.management.base import BaseCommand, CommandError

from catalog.imports import COLUMNS, ImportRefused, import_sessions


class Command(BaseCommand):
    help = (
        "Create or update subjects and sessions from a CSV file. The first line is the header with "
        f"exactly these columns, in any order: {', '.join(COLUMNS)}. session_date is YYYY-MM-DD; "
        "session_time is HH:MM or HH:MM:SS; ident is empty for the first session of a day. "
        "Subjects are matched by water restriction number (any case) or subject id, sessions by "
        "subject, date and ident; an empty cell leaves the stored value as it is. A file with any "
        "bad line is refused as a whole: nothing is written, every problem is listed on stderr with "
        "its line number, and the command exits with status 1. UTF-8 (with or without BOM) and "
        "Windows line endings are accepted."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file to import.")

    def handle(self, *args, file, **options):
        try:
            with open(file, "rb") as fileobj:
                result = import_sessions(fileobj)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}.") from error
        except ImportRefused as refused:
            for problem in refused.problems:
                self.stderr.write(f"{file}: {problem}")
            count = len(refused.problems)
            raise CommandError(
                f"Nothing was imported: {count} problem{'s' if count != 1 else ''} in {file}. "
                "Correct the file and import it again."
            ) from refused
        self.stdout.write(f"Imported {file}. {result.summary()}")
