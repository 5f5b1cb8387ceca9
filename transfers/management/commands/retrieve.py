"""Queue a retrieval of a subject's archived files to a writable location."""

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from catalog.models import DatasetType, RawFile, StorageLocation
from catalog.queries import find_subject
from transfers.management.commands.archive_session import acting_user, follow, parse_date, print_queued
from transfers.services import Refusal, preview_retrieval, request_retrieval


class Command(BaseCommand):
    help = "Queue the retrieval of a subject's archived files to a writable location; prints the job ids."

    def add_arguments(self, parser):
        parser.add_argument("--subject", required=True, help="Water restriction number or subject id.")
        parser.add_argument("--date-from", help="First session date, YYYY-MM-DD.")
        parser.add_argument("--date-to", help="Last session date, YYYY-MM-DD.")
        parser.add_argument("--dataset-type", choices=DatasetType.values, help="Only this kind of data.")
        parser.add_argument(
            "--to", required=True, dest="destination", help="Alias of the destination location."
        )
        parser.add_argument("--user", help="Act as this user (default: the portal's service identity).")
        parser.add_argument("--wait", action="store_true", help="Follow the jobs until they end.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between checks with --wait.")

    def handle(self, *args, subject, destination, user, wait, interval, **options):
        found = find_subject(subject)
        if found is None:
            raise CommandError(f"There is no subject {subject!r}.")
        location = StorageLocation.objects.filter(alias=destination).first()
        if location is None:
            raise CommandError(f"There is no location {destination!r}.")
        files = RawFile.objects.filter(session__subject=found)
        if options["date_from"]:
            files = files.filter(session__session_date__gte=parse_date(options["date_from"], "first date"))
        if options["date_to"]:
            files = files.filter(session__session_date__lte=parse_date(options["date_to"], "last date"))
        if options["dataset_type"]:
            files = files.filter(dataset_type=options["dataset_type"])
        file_ids = list(files.values_list("pk", flat=True))
        if not file_ids:
            raise CommandError(f"{found} has no files matching that selection.")
        acting = acting_user(user)
        preview = preview_retrieval(files=file_ids, destination=location)
        self.stdout.write(
            f"{preview.file_count} archived files ({filesizeformat(preview.total_bytes)}) to retrieve; "
            f"{preview.already_at_destination} already at {location.alias}, "
            f"{preview.not_archived} not archived, {preview.other_dataset_type} of another data type."
        )
        try:
            jobs = request_retrieval(files=file_ids, destination=location, user=acting)
        except Refusal as refusal:
            raise CommandError(f"{refusal} [{refusal.code}]") from refusal
        print_queued(self, jobs)
        if wait:
            follow(self, jobs, interval=interval)
