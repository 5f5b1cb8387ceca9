"""Create or correct the django-q2 schedule that polls active transfer jobs."""

from django.core.management.base import BaseCommand

from transfers.jobs import ensure_poll_schedule


class Command(BaseCommand):
    help = "Create the schedule of transfers.tasks.poll_active_jobs if it is missing (safe to repeat)."

    def handle(self, *args, **options):
        schedule, created = ensure_poll_schedule()
        verb = "Created" if created else "Checked"
        self.stdout.write(
            f"{verb} schedule {schedule.name!r}: {schedule.func} every {schedule.minutes} minute(s)."
        )
