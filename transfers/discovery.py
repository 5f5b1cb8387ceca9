"""Discovery and local scans: walk a location and bring the catalog in line with it.

A run joins a backend's walk (``transfers.backends.walk``) to the catalog's
registry (``catalog.registry``). Records are registered in batches; each batch
is written in one transaction together with the run's counters and its cursor
(the folders still to list), so a run picked up again after a crash carries on
from its last checkpoint and its totals come out right. Memory stays flat: a
batch, the folder being listed and the stack of folders to come are all a run
holds.

Only a walk that reached its end marks copies missing, and only the ones no
walk of this run touched, so copies recorded by transfers while the run goes
are left alone. Archive locations are walked as discovery, local ones as
scans.
"""

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import (
    RUN_UNFINISHED_STATES,
    Backend,
    DiscoveryRun,
    FileType,
    RunKind,
    RunState,
    UnmatchedCategory,
    UnmatchedPath,
)
from catalog.registry import Registry
from transfers import clients
from transfers.backends.walk import walk_location
from transfers.errors import TransferError

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Progress reaches the database (and the run page) at least this often.
CHECKPOINT_SECONDS = 5
# A running run whose last checkpoint is older than this lost its worker and may be taken over.
STALE_AFTER = timedelta(seconds=settings.PORTAL_DISCOVERY_STALE_SECONDS)
TASK = "transfers.discovery_tasks.run_discovery"

COUNTERS = ("directories_listed", "files_seen", "registered", "unchanged", "unmatched", "marked_missing")


class RunNotClaimed(Exception):
    """The run is finished, or another process is carrying it out."""


class _LostClaim(Exception):
    """Another process took the run over; this one must stop without writing."""


class _EmptyRoot(TransferError):
    """The walk found nothing at all where the catalog records copies: most likely an unmounted disk."""

    code = "LocationRootEmpty"


def kind_for(location):
    return RunKind.DISCOVER if location.is_archive else RunKind.SCAN


def unfinished_run(location):
    return DiscoveryRun.objects.filter(location=location, state__in=RUN_UNFINISHED_STATES).first()


def request_run(*, location, requested_by=None):
    """``(run, created)``: the location's queued or running run, or a new queued one."""
    existing = unfinished_run(location)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = DiscoveryRun.objects.create(
                location=location, kind=kind_for(location), requested_by=requested_by
            )
    except IntegrityError:
        # Someone else asked at the same moment: theirs is the run.
        return unfinished_run(location), False
    return run, True


def queue_run(*, location, requested_by=None):
    """``(run, created)`` like ``request_run``; a queued run is handed to the workers after commit."""
    run, created = request_run(location=location, requested_by=requested_by)
    if run.state == RunState.QUEUED:
        enqueue(run.pk)
    return run, created


def enqueue(run_id):
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(TASK, run_id, task_name=f"discovery-run-{run_id}"))


def claim_run(run_id, *, take_over=False):
    """Make this process the one carrying out run ``run_id``; returns the claim.

    A queued run is claimed; so is a running one whose last checkpoint is older
    than ``STALE_AFTER`` (its worker died), or any running one with
    ``take_over``. Raises ``RunNotClaimed`` otherwise.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    claimable = Q(state=RunState.QUEUED)
    if take_over:
        claimable |= Q(state=RunState.RUNNING)
    else:
        claimable |= Q(state=RunState.RUNNING, updated_at__lt=now - STALE_AFTER)
    claimed = (
        DiscoveryRun.objects.filter(claimable, pk=run_id).update(
            state=RunState.RUNNING,
            claim=token,
            started_at=Coalesce(F("started_at"), Value(now)),
            updated_at=now,
        )
        == 1
    )
    if not claimed:
        run = DiscoveryRun.objects.filter(pk=run_id).first()
        if run is None:
            raise RunNotClaimed(f"There is no discovery run #{run_id}.")
        if run.is_final:
            raise RunNotClaimed(f"Run #{run_id} is already {run.state}.")
        raise RunNotClaimed(
            f"Run #{run_id} is being carried out by another process "
            f"(last progress {timezone.localtime(run.updated_at):%Y-%m-%d %H:%M:%S})."
        )
    return token


@dataclass
class Progress:
    """A run's counts as the running process knows them, for progress displays."""

    run_id: int
    folder: str
    counts: Counter
    api_calls: int = 0


def execute_run(
    run_id,
    *,
    client=None,
    take_over=False,
    deadline=None,
    on_progress=None,
    batch_size=BATCH_SIZE,
    walk_options=None,
):
    """Carry out run ``run_id`` in this process and return it as it ends.

    ``deadline`` (a ``time.monotonic()`` value) hands the run back to the queue
    at the first checkpoint after it, so one worker task never runs too long;
    the run is then queued again with its cursor. ``on_progress(Progress)`` is
    called after every folder. A Ctrl-C also hands the run back before it
    propagates. Raises ``RunNotClaimed`` when the run is not this process's to
    carry out.
    """
    claim = claim_run(run_id, take_over=take_over)
    run = DiscoveryRun.objects.select_related("location").get(pk=run_id)
    runner = _Runner(run, claim, batch_size=batch_size, on_progress=on_progress, deadline=deadline)
    try:
        runner.start(client=client, walk_options=walk_options or {})
        runner.walk_to_end()
    except _LostClaim:
        logger.warning("Discovery run %s was taken over by another process; this one stops", run_id)
    except KeyboardInterrupt:
        runner.hand_back()
        raise
    except TransferError as error:
        runner.fail(str(error))
    except FileType.DoesNotExist as error:
        runner.fail(str(error))
    except Exception as error:
        logger.exception("Discovery run %s stopped on an unexpected error", run_id)
        runner.fail(f"The run stopped on an unexpected error ({type(error).__name__}: {error}); see the log.")
        raise
    run.refresh_from_db()
    return run


class _Runner:
    def __init__(self, run, claim, *, batch_size, on_progress, deadline):
        self.run = run
        self.location = run.location
        self.claim = claim
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.deadline = deadline
        self.counts = Counter({name: getattr(run, name) for name in COUNTERS})
        self.files = []
        self.skipped = []
        self.unflushed = Counter()
        self.last_checkpoint = time.monotonic()
        self.walk = None
        self.registry = None

    def _mine(self):
        return DiscoveryRun.objects.filter(pk=self.run.pk, state=RunState.RUNNING, claim=self.claim)

    def start(self, *, client, walk_options):
        pending = self.run.cursor.get("pending") if self.run.cursor else None
        if pending is not None:
            logger.info("Discovery run %s carries on with %s folders to list", self.run.pk, len(pending))
        if self.location.backend == Backend.GLOBUS and client is None:
            client = clients.service_transfer_client()
        self.registry = Registry(self.location, run=self.run)
        self.walk = walk_location(self.location, client=client, pending=pending, **walk_options)

    def walk_to_end(self):
        root_empty = False
        for listing in self.walk:
            if listing.listed:
                self.unflushed["directories_listed"] += 1
            self.unflushed["files_seen"] += len(listing.files)
            self.files.extend(listing.files)
            self.skipped.extend(listing.skipped)
            if not listing.subpath and listing.listed:
                root_empty = not listing.files and not listing.skipped and not self.walk.pending
            if self.on_progress is not None:
                self.on_progress(self._progress(listing.subpath))
            if len(self.files) + len(self.skipped) >= self.batch_size or (
                time.monotonic() - self.last_checkpoint >= CHECKPOINT_SECONDS
            ):
                self.flush()
            if self.deadline is not None and time.monotonic() >= self.deadline and self.walk.pending:
                self.flush()
                self.hand_back()
                return
        self.flush()
        self.finish(root_empty=root_empty)

    def _progress(self, folder):
        counts = self.counts.copy()
        counts["directories_listed"] += self.unflushed["directories_listed"]
        counts["files_seen"] += self.unflushed["files_seen"]
        counts["unmatched"] += len(self.skipped)
        return Progress(self.run.pk, folder, counts, self.walk.api_calls)

    def flush(self):
        """Register the buffered records and checkpoint the run, all in one transaction."""
        with transaction.atomic():
            result = self.registry.register(self.files)
            stored = self.registry.record_unmatched(self.skipped)
            increments = self.unflushed + Counter(
                registered=result.registered,
                unchanged=result.unchanged,
                unmatched=len(result.unmatched) + stored,
                marked_missing=result.marked_missing,
            )
            changed = self._mine().update(
                cursor={"pending": self.walk.pending},
                updated_at=timezone.now(),
                **{name: F(name) + increments[name] for name in COUNTERS if increments[name]},
            )
            if not changed:
                raise _LostClaim()
        self.counts.update(increments)
        self.files, self.skipped, self.unflushed = [], [], Counter()
        self.last_checkpoint = time.monotonic()

    def finish(self, *, root_empty):
        with transaction.atomic():
            present = self.registry.present_count()
            if root_empty and present:
                raise _EmptyRoot(
                    f"The root of {self.location.alias} is empty, but the catalog records {present:,} copies "
                    "there. Is the storage mounted? Nothing was marked missing."
                )
            unreadable = list(
                UnmatchedPath.objects.filter(run=self.run, category=UnmatchedCategory.UNREADABLE).values_list(
                    "subpath", flat=True
                )
            )
            missing = self.registry.mark_missing(not_seen_since=self.run.started_at, keep_under=unreadable)
            now = timezone.now()
            changed = self._mine().update(
                state=RunState.SUCCEEDED,
                finished_at=now,
                updated_at=now,
                claim="",
                cursor={},
                marked_missing=F("marked_missing") + missing,
                unmatched=self.run.unmatched_paths.count(),
            )
            if not changed:
                raise _LostClaim()
        logger.info("Discovery run %s succeeded; %s copies marked missing", self.run.pk, missing)

    def hand_back(self):
        """Queue the run again from its last checkpoint (unflushed records are walked again)."""
        self._mine().update(state=RunState.QUEUED, claim="", updated_at=timezone.now())

    def fail(self, message):
        now = timezone.now()
        self._mine().update(
            state=RunState.FAILED, finished_at=now, updated_at=now, claim="", error_message=message
        )
        logger.warning("Discovery run %s failed: %s", self.run.pk, message)


def unmatched_summary(run, *, examples=3):
    """A run's unmatched paths by category, largest first: dicts of category, label, count and
    the first ``examples`` paths."""
    labels = dict(UnmatchedCategory.choices)
    counts = (
        UnmatchedPath.objects.filter(run=run)
        .values_list("category")
        .annotate(count=Count("pk"))
        .order_by("-count", "category")
    )
    return [
        {
            "category": category,
            "label": labels.get(category, category),
            "count": count,
            "examples": list(
                UnmatchedPath.objects.filter(run=run, category=category).order_by("subpath")[:examples]
            )
            if examples
            else [],
        }
        for category, count in counts
    ]
