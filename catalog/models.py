"""What exists: subjects, their recording sessions, storage locations, raw
files and the copies (replicas) each location holds.

Constraints live in the database so that a bad state cannot be stored, whatever
writes it (the admin, an import, discovery or a transfer).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from catalog import naming

WATER_RESTRICTION_PATTERN = r"^[A-Za-z]+[0-9]+$"
IDENT_PATTERN = r"^[A-Za-z0-9]*$"
# A relative POSIX path without empty, "." or ".." components.
SUBPATH_BAD_PATTERN = r"(^/)|(/$)|(//)|(\\)|((^|/)\.\.?(/|$))"


class DatasetType(models.TextChoices):
    RAW_EPHYS = naming.RAW_EPHYS, "Raw electrophysiology"
    RAW_VIDEO = naming.RAW_VIDEO, "Raw tracking video"


class Subject(models.Model):
    water_restriction_number = models.CharField(
        max_length=32,
        help_text="As written by the lab, e.g. dl59 or SC026; unique whatever the case.",
    )
    subject_id = models.PositiveIntegerField(null=True, blank=True, unique=True)
    details = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = [Lower("water_restriction_number")]
        constraints = [
            models.UniqueConstraint(
                Lower("water_restriction_number"),
                name="subject_water_restriction_number_ci_unique",
                violation_error_message="A subject with this water restriction number already exists.",
            ),
            models.CheckConstraint(
                condition=Q(water_restriction_number__regex=WATER_RESTRICTION_PATTERN),
                name="subject_water_restriction_number_format",
                violation_error_message="A water restriction number is letters followed by digits, e.g. dl59.",
            ),
        ]

    def __str__(self):
        if self.subject_id is not None:
            return f"{self.water_restriction_number} ({self.subject_id})"
        return self.water_restriction_number


class Session(models.Model):
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="sessions")
    session_date = models.DateField()
    ident = models.CharField(
        max_length=32,
        blank=True,
        help_text="Empty for the first session of a day; 1, 2, ... or a word such as surface for further ones.",
    )
    session_number = models.PositiveIntegerField(null=True, blank=True)
    session_time = models.TimeField(null=True, blank=True)
    rig = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["subject", "session_date", "ident"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "session_date", "ident"],
                name="session_subject_date_ident_unique",
                violation_error_message="This subject already has a session on that date with that ident.",
            ),
            models.CheckConstraint(
                condition=Q(ident__regex=IDENT_PATTERN),
                name="session_ident_format",
                violation_error_message="An ident is letters and digits only (e.g. 1, 2 or surface).",
            ),
        ]
        indexes = [models.Index(fields=["session_date"], name="session_date_idx")]

    def __str__(self):
        label = f"{self.subject.water_restriction_number} {self.session_date.isoformat()}"
        return f"{label} ({self.ident})" if self.ident else label

    def folder(self, dataset_type):
        return naming.session_folder(
            dataset_type, self.subject.water_restriction_number, self.session_date, self.ident
        )


class LocationRole(models.TextChoices):
    ARCHIVE = "archive", "Archive"
    LOCAL = "local", "Local (rig or lab storage)"


class Backend(models.TextChoices):
    GLOBUS = "globus", "Globus collection"
    FILESYSTEM = "filesystem", "Filesystem"


class StorageLocation(models.Model):
    alias = models.SlugField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=LocationRole.choices)
    dataset_type = models.CharField(max_length=16, choices=DatasetType.choices)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    collection_id = models.UUIDField(
        null=True, blank=True, help_text="Globus collection UUID (required for Globus locations)."
    )
    root_path = models.CharField(
        max_length=1024,
        default="/",
        help_text="Absolute path of the dataset root inside the collection, with / separators, e.g. /ePhys.",
    )
    local_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text="Absolute path on this server's filesystem (required for filesystem locations).",
    )
    writable = models.BooleanField(
        default=False, help_text="Only writable locations can receive retrieved files."
    )
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["dataset_type", "role", "alias"]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=LocationRole.values),
                name="location_role_valid",
                violation_error_message="Role must be archive or local.",
            ),
            models.CheckConstraint(
                condition=Q(dataset_type__in=DatasetType.values),
                name="location_dataset_type_valid",
                violation_error_message="Unknown dataset type.",
            ),
            models.CheckConstraint(
                condition=Q(backend__in=Backend.values),
                name="location_backend_valid",
                violation_error_message="Backend must be globus or filesystem.",
            ),
            models.CheckConstraint(
                condition=~Q(backend=Backend.GLOBUS) | Q(collection_id__isnull=False),
                name="location_globus_needs_collection",
                violation_error_message="A Globus location needs its collection UUID.",
            ),
            models.CheckConstraint(
                condition=~Q(backend=Backend.FILESYSTEM) | ~Q(local_path=""),
                name="location_filesystem_needs_local_path",
                violation_error_message="A filesystem location needs its local path.",
            ),
            models.CheckConstraint(
                condition=Q(root_path__startswith="/") & ~Q(root_path__regex=r"(\\)|((^|/)\.\.(/|$))"),
                name="location_root_path_absolute",
                violation_error_message="The root path must be absolute, with / separators and no '..'.",
            ),
            models.CheckConstraint(
                condition=Q(local_path="")
                | (Q(local_path__startswith="/") & ~Q(local_path__regex=r"(^|/)\.\.(/|$)")),
                name="location_local_path_absolute",
                violation_error_message="The local path must be absolute and contain no '..'.",
            ),
            models.UniqueConstraint(
                fields=["dataset_type"],
                condition=Q(role="archive"),
                name="location_one_archive_per_dataset_type",
                violation_error_message="There is already an archive location for this dataset type.",
            ),
        ]

    def __str__(self):
        return self.alias

    def clean(self):
        errors = {}
        try:
            self.root_path = naming.validate_root_path(self.root_path or "")
        except naming.InvalidSubpath as exc:
            errors["root_path"] = str(exc)
        if self.local_path:
            try:
                self.local_path = naming.validate_root_path(self.local_path)
            except naming.InvalidSubpath as exc:
                errors["local_path"] = str(exc)
        if self.backend == Backend.GLOBUS and not self.collection_id:
            errors["collection_id"] = "A Globus location needs its collection UUID."
        if self.backend == Backend.FILESYSTEM and not self.local_path:
            errors.setdefault("local_path", "A filesystem location needs its local path.")
        if errors:
            raise ValidationError(errors)

    @property
    def is_archive(self):
        return self.role == LocationRole.ARCHIVE

    def collection_path(self, subpath):
        """The absolute path of a file inside the Globus collection."""
        root = self.root_path.rstrip("/")
        return f"{root}/{subpath}"


class FileType(models.Model):
    name = models.CharField(max_length=64, unique=True)
    dataset_type = models.CharField(max_length=16, choices=DatasetType.choices)
    glob = models.CharField(max_length=128, blank=True, help_text="fnmatch pattern on the file name.")
    description = models.CharField(max_length=255, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["dataset_type", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dataset_type__in=DatasetType.values),
                name="filetype_dataset_type_valid",
                violation_error_message="Unknown dataset type.",
            ),
        ]

    def __str__(self):
        return self.name

    def as_rule(self):
        return naming.FileTypeRule(self.name, self.dataset_type, self.glob, self.description)


class RawFile(models.Model):
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="files")
    dataset_type = models.CharField(max_length=16, choices=DatasetType.choices)
    subpath = models.CharField(
        max_length=1024, help_text="Relative to the location root; the same on every location."
    )
    probe_insertion = models.PositiveSmallIntegerField(null=True, blank=True)
    file_type = models.ForeignKey(FileType, on_delete=models.PROTECT, related_name="files")
    size = models.BigIntegerField()
    checksum = models.CharField(max_length=128, null=True, blank=True)
    modified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "dataset_type", "subpath"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_type", "subpath"],
                name="rawfile_dataset_type_subpath_unique",
                violation_error_message="This file is already registered.",
            ),
            models.CheckConstraint(
                condition=~Q(subpath="") & ~Q(subpath__regex=SUBPATH_BAD_PATTERN),
                name="rawfile_subpath_normalized",
                violation_error_message="A subpath is relative, with / separators and no '.' or '..' parts.",
            ),
            models.CheckConstraint(
                condition=Q(size__gte=0),
                name="rawfile_size_not_negative",
                violation_error_message="A size cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(dataset_type__in=DatasetType.values),
                name="rawfile_dataset_type_valid",
                violation_error_message="Unknown dataset type.",
            ),
        ]
        indexes = [models.Index(fields=["session", "dataset_type"], name="rawfile_session_type_idx")]

    def __str__(self):
        return self.subpath

    @property
    def name(self):
        return self.subpath.rsplit("/", 1)[-1]


class ReplicaState(models.TextChoices):
    PRESENT = "present", "Present"
    MISSING = "missing", "Missing"


class ReplicaSource(models.TextChoices):
    SCAN = "scan", "Local scan"
    ARCHIVE = "archive", "Archived by the portal"
    DISCOVER = "discover", "Archive discovery"
    RETRIEVE = "retrieve", "Retrieved by the portal"


class Replica(models.Model):
    file = models.ForeignKey(RawFile, on_delete=models.CASCADE, related_name="replicas")
    location = models.ForeignKey(StorageLocation, on_delete=models.PROTECT, related_name="replicas")
    state = models.CharField(max_length=16, choices=ReplicaState.choices, default=ReplicaState.PRESENT)
    source = models.CharField(max_length=16, choices=ReplicaSource.choices)
    verified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "location"], name="replica_file_location_unique"),
            models.CheckConstraint(condition=Q(state__in=ReplicaState.values), name="replica_state_valid"),
            models.CheckConstraint(condition=Q(source__in=ReplicaSource.values), name="replica_source_valid"),
        ]
        indexes = [models.Index(fields=["location", "state"], name="replica_location_state_idx")]

    def __str__(self):
        return f"{self.file} @ {self.location} ({self.state})"


class RunKind(models.TextChoices):
    DISCOVER = "discover", "Archive discovery"
    SCAN = "scan", "Local scan"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


RUN_FINAL_STATES = (RunState.SUCCEEDED, RunState.FAILED)
RUN_UNFINISHED_STATES = (RunState.QUEUED, RunState.RUNNING)


class DiscoveryRun(models.Model):
    """One walk of a storage location that brings the catalog in line with what it holds.

    A run is queued, then running; a running run records its progress (counters
    and the cursor of folders still to list) in checkpoints, so that another
    worker can carry on after a crash. A run handed back to the queue to
    continue later is queued again with its cursor kept.
    """

    location = models.ForeignKey(StorageLocation, on_delete=models.PROTECT, related_name="discovery_runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="discovery_runs",
        help_text="Empty when the portal itself or a management command asked.",
    )
    directories_listed = models.PositiveIntegerField(default=0)
    files_seen = models.PositiveIntegerField(default=0)
    registered = models.PositiveIntegerField(
        default=0, help_text="Copies newly recorded as present at the location."
    )
    unchanged = models.PositiveIntegerField(default=0, help_text="Copies already recorded as present.")
    unmatched = models.PositiveIntegerField(
        default=0, help_text="Paths recorded with the reason they were left out."
    )
    marked_missing = models.PositiveIntegerField(
        default=0, help_text="Copies recorded as present that the walk no longer found."
    )
    cursor = models.JSONField(
        default=dict,
        blank=True,
        help_text="Where the walk stands: the folders still to list, the next one last.",
    )
    claim = models.CharField(
        max_length=32,
        blank=True,
        help_text="Identifies the process carrying out the run; checkpoints from any other are refused.",
    )
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, help_text="Time of the last checkpoint.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=RunKind.values), name="discovery_run_kind_valid"),
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="discovery_run_state_valid"),
            models.CheckConstraint(
                condition=(Q(state__in=RUN_FINAL_STATES) & Q(finished_at__isnull=False))
                | (~Q(state__in=RUN_FINAL_STATES) & Q(finished_at__isnull=True)),
                name="discovery_run_finished_at_iff_final",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=(RunState.RUNNING, RunState.SUCCEEDED)) | Q(started_at__isnull=False),
                name="discovery_run_started_at_when_started",
            ),
            models.CheckConstraint(
                condition=~Q(state=RunState.RUNNING) | ~Q(claim=""),
                name="discovery_run_running_is_claimed",
            ),
            models.UniqueConstraint(
                fields=["location"],
                condition=Q(state__in=RUN_UNFINISHED_STATES),
                name="discovery_run_one_unfinished_per_location",
                violation_error_message="A run for this location is already queued or running.",
            ),
        ]
        indexes = [
            models.Index(fields=["location", "-created_at"], name="discovery_run_location_idx"),
            models.Index(fields=["state", "updated_at"], name="discovery_run_state_idx"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_kind_display().lower()} of {self.location.alias}"

    @property
    def is_final(self):
        return self.state in RUN_FINAL_STATES

    @classmethod
    def transition(cls, pk, *, from_states, to_state, **fields):
        """Move run ``pk`` to ``to_state`` if it is in one of ``from_states``;
        True when this caller made the change."""
        now = timezone.now()
        if to_state in RUN_FINAL_STATES:
            fields.setdefault("finished_at", now)
            fields.setdefault("claim", "")
        fields.setdefault("updated_at", now)
        changed = cls.objects.filter(pk=pk, state__in=set(from_states)).update(state=to_state, **fields)
        return changed == 1


class UnmatchedCategory(models.TextChoices):
    HIDDEN = "hidden", "Hidden file or folder"
    INVALID = "invalid", "Name that cannot be stored as a path"
    OUTSIDE_SUBJECT = "outside-subject", "Outside any subject folder"
    OUTSIDE_SESSION = "outside-session", "In a subject folder but outside any session folder"
    IN_SESSION = "in-session", "In a session folder but fitting no probe or Kilosort convention"
    NOT_A_FILE = "not-a-file", "Neither a regular file nor a folder"
    SIZE_CONFLICT = "size-conflict", "Size differs from the catalog's"
    VANISHED = "vanished", "Folder vanished during the walk"
    UNREADABLE = "unreadable", "Folder that could not be listed"


class UnmatchedPath(models.Model):
    """A path a run saw but did not register, with the reason a person can act on."""

    run = models.ForeignKey(DiscoveryRun, on_delete=models.CASCADE, related_name="unmatched_paths")
    subpath = models.CharField(max_length=1024)
    is_folder = models.BooleanField(
        default=False, help_text="A folder is recorded once; its contents are not listed."
    )
    category = models.CharField(max_length=32, choices=UnmatchedCategory.choices)
    reason = models.TextField()

    class Meta:
        ordering = ["run", "subpath"]
        constraints = [
            models.UniqueConstraint(fields=["run", "subpath"], name="unmatched_path_run_subpath_unique"),
            models.CheckConstraint(
                condition=Q(category__in=UnmatchedCategory.values), name="unmatched_path_category_valid"
            ),
        ]
        indexes = [models.Index(fields=["run", "category"], name="unmatched_path_category_idx")]

    def __str__(self):
        return f"{self.subpath}: {self.reason}"
