"""``manage.py seed_demo``: a small demo catalog on this machine's filesystem, for ``make run``.

Creates, under ``VAR_DIR/demo``, a rig tree, an archive and a retrieval area
per dataset type as filesystem storage locations; writes realistic raw trees
as small real files into the rig trees and registers them as local copies
through the catalog's registry (as a scan would); creates the demo accounts
with passwords generated once into ``VAR_DIR/demo_passwords``. Running it again
changes nothing and says so. It refuses to touch a catalog whose archive or
demo-named locations are not the demo's own.
"""

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models.functions import Lower

from archive_portal.models import Role
from catalog import naming
from catalog.models import Backend, LocationRole, StorageLocation, Subject
from catalog.registry import FileRecord, Registry

URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DemoLocation:
    alias: str
    role: str
    dataset_type: str
    folder: str
    writable: bool
    description: str


LOCATIONS = (
    DemoLocation("rig-ephys", LocationRole.LOCAL, naming.RAW_EPHYS, "rig/ephys", False, "Demo ephys rig"),
    DemoLocation("rig-video", LocationRole.LOCAL, naming.RAW_VIDEO, "rig/video", False, "Demo video rig"),
    DemoLocation(
        "ephys-archive", LocationRole.ARCHIVE, naming.RAW_EPHYS, "archive/ephys", False, "Demo ephys archive"
    ),
    DemoLocation(
        "video-archive", LocationRole.ARCHIVE, naming.RAW_VIDEO, "archive/video", False, "Demo video archive"
    ),
    DemoLocation(
        "retrieval-ephys", LocationRole.LOCAL, naming.RAW_EPHYS, "retrieval/ephys", True, "Demo retrieval"
    ),
    DemoLocation(
        "retrieval-video", LocationRole.LOCAL, naming.RAW_VIDEO, "retrieval/video", True, "Demo retrieval"
    ),
)
SUBJECTS = (("dl59", 407513), ("SC026", 446270), ("tw5", 440959))
USERS = (("archivist", Role.ARCHIVIST), ("viewer", Role.VIEWER), ("admin", Role.ADMIN))
KILOSORT = (
    "amplitudes.npy",
    "channel_map.npy",
    "channel_positions.npy",
    "cluster_KSLabel.tsv",
    "cluster_group.tsv",
    "params.py",
    "rez.mat",
    "spike_clusters.npy",
    "spike_templates.npy",
    "spike_times.npy",
    "templates.npy",
    "whitening_mat.npy",
)
# Every demo file keeps this modification time, so a second run finds nothing to change.
RECORDED_AT = datetime(2019, 8, 2, 18, 0, tzinfo=UTC).timestamp()


def _ephys_session(h2o, day, ident="", probes=(0,), kilosort=()):
    folder = naming.session_folder(naming.RAW_EPHYS, h2o, day, ident)
    stem = folder.split("/")[1][len("catgt_") : -len("_g0")]
    names = [f"{folder}/{stem}_g0_tcat.nidq.{suffix}" for suffix in ("bin", "meta", "XD_0_1_0.txt")]
    for index in probes:
        probe = f"{folder}/{naming.probe_folder(h2o, day, ident, index + 1)}"
        base = f"{probe}/{stem}_g0_tcat.imec{index}"
        names += [f"{base}.{band}" for band in ("ap.bin", "ap.meta", "lf.bin", "lf.meta")]
        names.append(f"{base}.SY_384_6_500.txt")
        if index in kilosort:
            names += [f"{probe}/imec{index}_ks2/{name}" for name in KILOSORT]
    return names


def _video_session(h2o, day, ident="", trials=3):
    folder = naming.session_folder(naming.RAW_VIDEO, h2o, day, ident)
    names = [f"{folder}/video/{h2o}_side_{108 + trial}-0000.avi" for trial in range(trials)]
    names.append(f"{folder}/video/{h2o}_{day:%Y%m%d}_trials.txt")
    return names


def demo_trees():
    """{rig alias: [subpath, ...]}: two sessions on one day (the second with ident 1), a session
    with a word ident, two probes with Kilosort output, NI-DAQ files and tracking videos."""
    ephys = (
        _ephys_session("dl59", date(2019, 7, 31), probes=(0, 1), kilosort=(0,))
        + _ephys_session("dl59", date(2019, 7, 31), "1", probes=(0,))
        + _ephys_session("SC026", date(2019, 8, 2), probes=(0, 1), kilosort=(0, 1))
        + _ephys_session("SC026", date(2019, 8, 2), "surface", probes=(0,))
        + _ephys_session("tw5", date(2019, 12, 31), probes=(0,), kilosort=(0,))
    )
    video = (
        _video_session("dl59", date(2019, 7, 31))
        + _video_session("dl59", date(2019, 7, 31), "1", trials=2)
        + _video_session("SC026", date(2019, 8, 2))
    )
    return {"rig-ephys": ephys, "rig-video": video}


def _content(subpath):
    """A few hundred bytes to a few KB, the same every time for the same file."""
    seed = hashlib.sha256(subpath.encode()).digest()
    size = 256 + int.from_bytes(seed[:2], "big") % 4096
    return (seed * (size // len(seed) + 1))[:size]


class Command(BaseCommand):
    help = (
        "Create the demo storage locations under VAR_DIR/demo, write small realistic raw trees into the "
        "rig folders and register them as local copies, and create the demo accounts (archivist, viewer, "
        "admin) with passwords generated once into VAR_DIR/demo_passwords. Idempotent."
    )

    def handle(self, *args, **options):
        self.demo_dir = Path(settings.VAR_DIR) / "demo"
        self.passwords_file = Path(settings.VAR_DIR) / "demo_passwords"
        self.changes = []
        self._check_no_conflicts()
        files_written = self._write_trees()
        if files_written:
            self.changes.append(f"wrote {files_written} demo files under {self.demo_dir}")
        with transaction.atomic():
            locations = self._locations()
            self._subjects()
            self._register(locations)
            passwords = self._users()
        if self.changes:
            self.stdout.write("Demo data: " + "; ".join(self.changes) + ".")
        else:
            self.stdout.write("Demo data is already in place; nothing changed.")
        self.stdout.write(f"Open {URL} and log in as:")
        for username, role in USERS:
            password = passwords.get(username, "(password not managed by the demo)")
            self.stdout.write(f"  {username:<10} {password}  ({Role(role).label})")
        self.stdout.write(f"The passwords are kept in {self.passwords_file}.")

    # ---------------------------------------------------------------- checks
    def _check_no_conflicts(self):
        problems = []
        archives = StorageLocation.objects.filter(role=LocationRole.ARCHIVE)
        for demo in LOCATIONS:
            if demo.role == LocationRole.ARCHIVE:
                other = archives.filter(dataset_type=demo.dataset_type).exclude(alias=demo.alias).first()
                if other is not None:
                    problems.append(
                        f"the catalog already has an archive location for {demo.dataset_type}, "
                        f"{other.alias!r} ({other.get_backend_display()}), and there can be only one"
                    )
            existing = StorageLocation.objects.filter(alias=demo.alias).first()
            if existing is not None and self._differences(existing, demo):
                problems.append(
                    f"location {demo.alias!r} exists but is not the demo's "
                    f"({', '.join(self._differences(existing, demo))})"
                )
        if problems:
            raise CommandError(
                "seed_demo only fills a catalog with its own demo locations, and this one has others: "
                + "; ".join(problems)
                + ". Nothing was changed. Run the demo against its own database "
                "(PORTAL_VAR_DIR or DATABASE_URL), or remove those locations first."
            )

    def _expected(self, demo):
        return {
            "role": demo.role,
            "dataset_type": demo.dataset_type,
            "backend": Backend.FILESYSTEM,
            "local_path": str(self.demo_dir / demo.folder),
            "root_path": "/",
            "writable": demo.writable,
        }

    def _differences(self, location, demo):
        return [
            f"{field} is {getattr(location, field)!r}, the demo's is {value!r}"
            for field, value in self._expected(demo).items()
            if getattr(location, field) != value
        ]

    # ----------------------------------------------------------------- files
    def _write_trees(self):
        written = 0
        for demo in LOCATIONS:
            (self.demo_dir / demo.folder).mkdir(parents=True, exist_ok=True)
        for alias, subpaths in demo_trees().items():
            root = self.demo_dir / next(demo.folder for demo in LOCATIONS if demo.alias == alias)
            for subpath in subpaths:
                path = root / subpath
                content = _content(subpath)
                if not path.is_file() or path.stat().st_size != len(content) or path.read_bytes() != content:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                    written += 1
                if path.stat().st_mtime != RECORDED_AT:
                    os.utime(path, (RECORDED_AT, RECORDED_AT))
        return written

    # -------------------------------------------------------------- database
    def _locations(self):
        locations = {}
        for demo in LOCATIONS:
            location, created = StorageLocation.objects.get_or_create(
                alias=demo.alias, defaults={**self._expected(demo), "description": demo.description}
            )
            if created:
                self.changes.append(f"created location {demo.alias}")
            locations[demo.alias] = location
        return locations

    def _subjects(self):
        for h2o, subject_id in SUBJECTS:
            subject = (
                Subject.objects.annotate(key=Lower("water_restriction_number")).filter(key=h2o.lower()).first()
            )
            if subject is None:
                if Subject.objects.filter(subject_id=subject_id).exists():
                    subject_id = None  # the number belongs to a subject of the lab's own
                Subject.objects.create(water_restriction_number=h2o, subject_id=subject_id)
                self.changes.append(f"created subject {h2o}")
            elif subject.subject_id is None and not Subject.objects.filter(subject_id=subject_id).exists():
                subject.subject_id = subject_id
                subject.save(update_fields=["subject_id"])
                self.changes.append(f"gave subject {h2o} its subject id {subject_id}")

    def _register(self, locations):
        for alias, subpaths in demo_trees().items():
            location = locations[alias]
            root = Path(location.local_path)
            records = []
            for subpath in subpaths:
                status = (root / subpath).stat()
                records.append(
                    FileRecord(subpath, status.st_size, datetime.fromtimestamp(status.st_mtime, tz=UTC))
                )
            result = Registry(location).register(records)
            if result.unmatched:
                raise CommandError(
                    "Demo files that fit no naming convention: "
                    + "; ".join(f"{entry.subpath}: {entry.reason}" for entry in result.unmatched)
                )
            if result.registered:
                self.changes.append(f"registered {result.registered} local copies at {alias}")

    def _users(self):
        """{username: password} of the demo accounts whose password the demo keeps."""
        passwords = self._read_passwords()
        kept = {}
        users = get_user_model().objects
        for username, role in USERS:
            user = users.filter(username=username).first()
            if user is None:
                password = passwords.get(username) or secrets.token_urlsafe(12)
                user = users.create_user(
                    username=username, email=f"{username}@demo.invalid", password=password, role=role
                )
                if role == Role.ADMIN:
                    user.is_superuser = True
                    user.save(update_fields=["is_superuser", "is_staff"])
                passwords[username] = password
                self.changes.append(f"created user {username}")
            elif username not in passwords:
                self.stderr.write(
                    f"User {username} exists and was not made by seed_demo; its password is left alone."
                )
                continue
            kept[username] = passwords[username]
        self._write_passwords(passwords)
        return kept

    def _read_passwords(self):
        if not self.passwords_file.exists():
            return {}
        passwords = {}
        for line in self.passwords_file.read_text().splitlines():
            username, _, password = line.strip().partition(" ")
            if username and password:
                passwords[username] = password.strip()
        return passwords

    def _write_passwords(self, passwords):
        text = "".join(f"{username} {password}\n" for username, password in sorted(passwords.items()))
        if self.passwords_file.exists() and self.passwords_file.read_text() == text:
            if self.passwords_file.stat().st_mode & 0o077:
                self.passwords_file.chmod(0o600)
            return
        self.passwords_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        self.passwords_file.chmod(0o600)
        self.changes.append(f"wrote the demo passwords to {self.passwords_file}")
