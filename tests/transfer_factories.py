"""Builders for transfer tests: storage locations over real directories, sessions
whose raw files exist on disk with a local replica, Globus clients for the fakes."""

import hashlib
import uuid
from pathlib import Path

import globus_sdk

from catalog import naming
from catalog.models import (
    Backend,
    FileType,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    StorageLocation,
)
from tests.factories import SessionFactory, file_type_for
from tests.fakes import FakeGlobusAuth, FakeGlobusTransfer


def ensure_file_types():
    """The seeded file types; a transactional test before this one may have flushed them."""
    rules = list(naming.SEED_FILE_TYPES) + [
        naming.FileTypeRule(name, dataset_type, "", "Unknown file")
        for dataset_type, name in naming.UNKNOWN_FILE_TYPE.items()
    ]
    for order, rule in enumerate(rules):
        FileType.objects.get_or_create(
            name=rule.name,
            defaults={
                "dataset_type": rule.dataset_type,
                "glob": rule.glob,
                "description": rule.description,
                "order": order,
            },
        )


def filesystem_location(
    root, alias, *, role=LocationRole.LOCAL, dataset_type=naming.RAW_EPHYS, writable=False
):
    path = Path(root) / alias
    path.mkdir(parents=True, exist_ok=True)
    return StorageLocation.objects.create(
        alias=alias,
        role=role,
        dataset_type=dataset_type,
        backend=Backend.FILESYSTEM,
        local_path=str(path),
        root_path="/",
        writable=writable,
    )


def globus_location(
    alias, *, role=LocationRole.LOCAL, dataset_type=naming.RAW_EPHYS, writable=False, root_path=None
):
    if root_path is None:
        root_path = "/ePhys" if dataset_type == naming.RAW_EPHYS else "/Videos"
    return StorageLocation.objects.create(
        alias=alias,
        role=role,
        dataset_type=dataset_type,
        backend=Backend.GLOBUS,
        collection_id=uuid.uuid4(),
        root_path=root_path,
        writable=writable,
    )


def content_of(subpath, size):
    """Deterministic bytes for a file, different for every subpath."""
    seed = hashlib.sha256(subpath.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def add_files(session, location, *, count=3, size=100, dataset_type=None, on_disk=None, prefix="file"):
    """``count`` raw files of ``session`` with a present replica at ``location``.

    ``on_disk`` is the directory that holds the location's root (the location's
    local_path, or the fake collection's directory for a Globus location); the
    files' bytes are written there when it is given.
    """
    dataset_type = dataset_type or location.dataset_type
    folder = session.folder(dataset_type)
    file_types = {}
    files = []
    for index in range(count):
        name = (
            f"{prefix}{index:04d}.nidq.bin"
            if dataset_type == naming.RAW_EPHYS
            else f"video/{prefix}_{index}.txt"
        )
        base = name.rsplit("/", 1)[-1]
        pattern = naming.match_file_type(dataset_type, base)
        if pattern not in file_types:
            file_types[pattern] = file_type_for(dataset_type, base)
        files.append(
            RawFile(
                session=session,
                dataset_type=dataset_type,
                subpath=f"{folder}/{name}",
                file_type=file_types[pattern],
                size=size,
            )
        )
    files = RawFile.objects.bulk_create(files)
    Replica.objects.bulk_create(
        Replica(file=file, location=location, state=ReplicaState.PRESENT, source=ReplicaSource.SCAN)
        for file in files
    )
    if on_disk is not None:
        for file in files:
            path = Path(on_disk) / location.root_path.lstrip("/") / file.subpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content_of(file.subpath, size))
    return files


def archived_session(archive, *, count=3, size=100, on_disk=None, session=None):
    """A session whose files exist only at the archive."""
    session = session or SessionFactory()
    files = add_files(session, archive, count=count, size=size, on_disk=on_disk)
    Replica.objects.filter(file__in=files).update(source=ReplicaSource.DISCOVER)
    return session, files


def fake_transfer_client(fake):
    """A TransferClient for a fake started with ``auth=None`` (any bearer token works).

    The SDK's own retries keep their count but sleep only briefly, so tests
    with injected failures stay fast.
    """
    client = globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("test-token"), base_url=fake.url
    )
    fast_retries(client)
    return client


def fast_retries(client):
    client.retry_config.backoff = lambda context: 0.01
    client.retry_config.max_sleep = 0.05
    return client


# ------------------------------------------------------- loopback Globus

PORTAL_CLIENT_ID = "7d1f6a0e-52c4-4b8e-9a43-1c2b3d4e5f60"
PORTAL_CLIENT_SECRET = "portal-test-secret"


class GlobusWorld:
    """Fake Globus Auth and Transfer, with collections over directories under ``root``."""

    def __init__(self, root, auth, transfer):
        self.root = Path(root)
        self.auth = auth
        self.transfer = transfer

    def location(self, alias, **kwargs):
        """A Globus StorageLocation whose collection the fake maps to a directory."""
        return self.map(globus_location(alias, **kwargs))

    def map(self, location):
        """Serve ``location``'s collection from this world's directory for it."""
        self.transfer.add_collection(str(location.collection_id), self.directory(location))
        return location

    def directory(self, location):
        return self.root / "collections" / location.alias

    def path_of(self, location, file):
        return self.directory(location) / location.root_path.lstrip("/") / file.subpath

    def calls(self, path, method=None):
        return self.transfer.calls("/v0.10/" + path.lstrip("/"), method)


def start_globus(root, *, auth=True, **transfer_options):
    """Start the fakes; ``auth=False`` makes the transfer fake accept any bearer token."""
    fake_auth = FakeGlobusAuth(clients={PORTAL_CLIENT_ID: PORTAL_CLIENT_SECRET}).start() if auth else None
    transfer = FakeGlobusTransfer(auth=fake_auth, **transfer_options).start()
    return GlobusWorld(root, fake_auth, transfer)


def stop_globus(world):
    world.transfer.stop()
    if world.auth is not None:
        world.auth.stop()


def point_sdk_at(world, monkeypatch, settings):
    """Make globus-sdk (and the portal's client module) talk to the fakes."""
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", world.transfer.url)
    if world.auth is not None:
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", world.auth.url)
        monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_GROUPS", world.auth.url)
    settings.GLOBUS_CLIENT_ID = PORTAL_CLIENT_ID
    settings.GLOBUS_CLIENT_SECRET = PORTAL_CLIENT_SECRET
