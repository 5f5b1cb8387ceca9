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
    files = []
    for index in range(count):
        name = (
            f"{prefix}{index:04d}.nidq.bin"
            if dataset_type == naming.RAW_EPHYS
            else f"video/{prefix}_{index}.txt"
        )
        subpath = f"{folder}/{name}"
        file = RawFile.objects.create(
            session=session,
            dataset_type=dataset_type,
            subpath=subpath,
            file_type=file_type_for(dataset_type, name.rsplit("/", 1)[-1]),
            size=size,
        )
        Replica.objects.create(
            file=file, location=location, state=ReplicaState.PRESENT, source=ReplicaSource.SCAN
        )
        if on_disk is not None:
            path = Path(on_disk) / location.root_path.lstrip("/") / subpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content_of(subpath, size))
        files.append(file)
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
