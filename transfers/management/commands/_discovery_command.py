"""What ``discover_archive`` and ``scan_local`` share: run a walk in the foreground or queue it."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from catalog.models import LocationRole, RunState, StorageLocation
from transfers import discovery

COUNTER_LABELS = (
    ("directories_listed", "folders listed"),
    ("files_seen", "files seen"),
    ("registered", "copies registered"),
    ("unchanged", "copies unchanged"),
    ("marked_missing", "copies marked missing"),
    ("unmatched", "paths unmatched"),
)


class ProgressDisplay:
    """One status line on stderr: rewritten in place on a terminal, printed now and then otherwise."""

    def __init__(self, stream, *, interval=None):
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.last = 0.0
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, progress):
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        counts = progress.counts
        line = (
            f"{now - self.started:7.1f} s  {counts['directories_listed']:,} folders  "
            f"{counts['files_seen']:,} files  {counts['registered']:,} registered  "
            f"{counts['unchanged']:,} unchanged  {counts['unmatched']:,} unmatched"
        )
        if progress.api_calls:
            line += f"  {progress.api_calls:,} API calls"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150), ending="")
        else:
            self.stream.write(line)
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.tty and self.shown:
            self.stream.write("")
            self.stream.flush()


class DiscoveryCommand(BaseCommand):
    role = ""  # the role of the locations this command walks
    other_command = ""  # the command for the other role

    def add_arguments(self, parser):
        parser.add_argument("alias", help="Alias of the storage location to walk.")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the run to the background workers and print its id instead of walking here.",
        )
        parser.add_argument(
            "--take-over",
            action="store_true",
            help="Carry on a run another process left running (use only when that process is dead).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=discovery.BATCH_SIZE, help="Files registered per transaction."
        )

    def handle(self, *args, alias, queue, take_over, batch_size, **options):
        location = self._location(alias)
        if queue:
            run, created = discovery.queue_run(location=location)
            if created:
                self.stderr.write(f"Queued run #{run.pk} ({run.get_kind_display().lower()} of {alias}).")
            else:
                self.stderr.write(f"Run #{run.pk} of {alias} is already {run.state}; not starting another.")
            self.stderr.write(f"Follow it at {reverse('transfers:discovery_run', args=[run.pk])}")
            self.stdout.write(str(run.pk))
            return
        run, created = discovery.request_run(location=location)
        if not created:
            self.stderr.write(f"Carrying on run #{run.pk} of {alias} ({run.state}).")
        display = ProgressDisplay(self.stderr)
        try:
            run = discovery.execute_run(
                run.pk, take_over=take_over, on_progress=display, batch_size=batch_size
            )
        except discovery.RunNotClaimed as reason:
            raise CommandError(
                f"{reason} Wait for it, or use --take-over if that process is dead."
            ) from None
        except KeyboardInterrupt:
            display.close()
            raise CommandError(
                f"Interrupted. Run #{run.pk} is queued again from its last checkpoint; "
                "run the same command to carry on, or add --queue to let the workers finish it.",
                returncode=130,
            ) from None
        display.close()
        self._summary(run)
        if run.state != RunState.SUCCEEDED:
            raise CommandError(f"Run #{run.pk} did not finish: {run.error_message or run.state}")

    def _location(self, alias):
        try:
            location = StorageLocation.objects.get(alias=alias)
        except StorageLocation.DoesNotExist:
            known = ", ".join(StorageLocation.objects.filter(role=self.role).values_list("alias", flat=True))
            raise CommandError(
                f"There is no storage location {alias!r}. "
                f"{self.role.capitalize()} locations: {known or 'none'}."
            ) from None
        if location.role != self.role:
            article = "an" if location.role == LocationRole.ARCHIVE else "a"
            raise CommandError(
                f"{alias} is {article} {location.role} location; walk it with {self.other_command}."
            )
        return location

    def _summary(self, run):
        elapsed = ""
        if run.started_at and run.finished_at:
            elapsed = f" in {(run.finished_at - run.started_at).total_seconds():.1f} s"
        self.stdout.write(
            f"Run #{run.pk} ({run.get_kind_display().lower()} of {run.location.alias}): {run.state}{elapsed}"
        )
        for name, label in COUNTER_LABELS:
            self.stdout.write(f"  {label:<24}{getattr(run, name):>12,}")
        summary = discovery.unmatched_summary(run)
        if summary:
            self.stdout.write("Unmatched paths by reason:")
            for group in summary:
                self.stdout.write(f"  {group['label']}: {group['count']:,}")
                for path in group["examples"]:
                    self.stdout.write(f"    {path.subpath}{'/' if path.is_folder else ''} — {path.reason}")
                if group["count"] > len(group["examples"]):
                    self.stdout.write(f"    … and {group['count'] - len(group['examples']):,} more")
            self.stdout.write(f"All of them: {reverse('transfers:discovery_run', args=[run.pk])}")
        if run.error_message:
            self.stdout.write(f"Error: {run.error_message}")
