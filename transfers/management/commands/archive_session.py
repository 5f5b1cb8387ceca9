"""Queue the archive of one session: ``manage.py archive_session dl59 2019-07-31``."""

import datetime
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from catalog.models import Session
from catalog.queries import find_subject
from transfers.models import JobState, TransferJob
from transfers.services import Refusal, request_archive


def parse_date(value, name="date"):
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as err:
        raise CommandError(f"The {name} {value!r} is not a date in YYYY-MM-DD form.") from err


def acting_user(username):
    """The user named by --user, or None for the portal's service identity."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"There is no user {username!r}.")
    return user


def describe(job):
    done = job.files_done + job.files_skipped
    line = (
        f"#{job.pk} {job.get_state_display()}: {done}/{job.files_total} files, "
        f"{filesizeformat(job.bytes_done)} of {filesizeformat(job.bytes_total)}"
    )
    if job.nice_status and job.nice_status != job.get_state_display():
        line += f" ({job.nice_status})"
    if job.error_message:
        line += f" - {job.error_code}: {job.error_message}"
    return line


def print_queued(command, jobs):
    for job in jobs:
        command.stdout.write(
            f"Queued job #{job.pk}: {job.label} ({job.files_total} files, {filesizeformat(job.bytes_total)})"
        )


def follow(command, jobs, *, interval=1.0):
    """Show the jobs' progress until all are final; CommandError unless all succeeded."""
    pending = {job.pk for job in jobs}
    last = {}
    while pending:
        for job in TransferJob.objects.filter(pk__in=pending):
            line = describe(job)
            if last.get(job.pk) != line:
                command.stdout.write(line)
                last[job.pk] = line
            if job.is_final:
                pending.discard(job.pk)
        if pending:
            time.sleep(interval)
    failed = TransferJob.objects.filter(pk__in=[job.pk for job in jobs]).exclude(state=JobState.SUCCEEDED)
    if failed.exists():
        raise CommandError(
            "Not every job succeeded: " + ", ".join(f"#{job.pk} {job.get_state_display()}" for job in failed)
        )


class Command(BaseCommand):
    help = "Queue the archive of a session's local raw files; prints the job ids."

    def add_arguments(self, parser):
        parser.add_argument("subject", help="Water restriction number (e.g. dl59) or subject id.")
        parser.add_argument("date", help="Session date, YYYY-MM-DD.")
        parser.add_argument("--ident", default="", help="Session ident for further sessions of the day.")
        parser.add_argument("--user", help="Act as this user (default: the portal's service identity).")
        parser.add_argument("--wait", action="store_true", help="Follow the jobs until they end.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between checks with --wait.")

    def handle(self, *args, subject, date, ident, user, wait, interval, **options):
        found = find_subject(subject)
        if found is None:
            raise CommandError(f"There is no subject {subject!r}.")
        session_date = parse_date(date)
        session = Session.objects.filter(subject=found, session_date=session_date, ident=ident).first()
        if session is None:
            which = f" ({ident})" if ident else ""
            raise CommandError(f"{found} has no session on {session_date.isoformat()}{which}.")
        try:
            jobs = request_archive(session=session, user=acting_user(user))
        except Refusal as refusal:
            raise CommandError(f"{refusal} [{refusal.code}]") from refusal
        print_queued(self, jobs)
        if wait:
            follow(self, jobs, interval=interval)
