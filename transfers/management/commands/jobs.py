"""List transfer jobs as a table."""

from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from transfers.models import UNFINISHED_STATES, JobState, TransferJob


class Command(BaseCommand):
    help = "List transfer jobs, newest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--state", choices=JobState.values, action="append", help="Only jobs in this state."
        )
        parser.add_argument("--unfinished", action="store_true", help="Only jobs that have not ended.")
        parser.add_argument("--limit", type=int, default=50, help="At most this many jobs (default 50).")

    def handle(self, *args, state, unfinished, limit, **options):
        jobs = TransferJob.objects.select_related("requested_by")
        if state:
            jobs = jobs.filter(state__in=state)
        if unfinished:
            jobs = jobs.filter(state__in=UNFINISHED_STATES)
        header = ("ID", "KIND", "STATE", "REQUESTED BY", "LABEL", "FILES", "BYTES", "UPDATED")
        rows = [
            (
                str(job.pk),
                job.kind,
                job.state,
                job.requested_by.username if job.requested_by else "(portal)",
                job.label if len(job.label) <= 48 else job.label[:47] + "\u2026",
                f"{job.files_done + job.files_skipped}/{job.files_total}",
                f"{filesizeformat(job.bytes_done)}/{filesizeformat(job.bytes_total)}".replace("\xa0", " "),
                timezone.localtime(job.updated_at).strftime("%Y-%m-%d %H:%M:%S"),
            )
            for job in jobs[:limit]
        ]
        if not rows:
            self.stdout.write("No transfer jobs.")
            return
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
