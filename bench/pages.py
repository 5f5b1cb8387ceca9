"""How fast the dashboard's pages answer with a big catalog.

Loads a catalog of 1,000 subjects, 30,000 sessions and 1,000,000 raw files
(with their rig and archive copies and some transfer jobs) into PostgreSQL with
COPY, then asks each page many times through Django's test client and prints
the median server time and the number of SQL queries per page.

    python -m bench.pages                 # full size
    python -m bench.pages --scale 0.1     # a tenth of it
    BENCH_PAGES_DATABASE_URL=postgres://... python -m bench.pages

The benchmark's own PostgreSQL database (BENCH_PAGES_DATABASE_URL, by default
postgres://postgres@127.0.0.1:5432/portal_bench_pages; never DATABASE_URL, whose
catalog it would replace) is created when missing and its catalog reused when
it already has the requested size.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_pages"
FULL_SIZE = {"subjects": 1000, "sessions": 30_000, "files": 1_000_000}

# One session's files in the order they repeat: (name pattern, file type, size).
EPHYS_FILES = [
    ("{stem}_g0_t0.imec{probe}.ap.bin", "ephys-raw-neuropixels-ap-bin", 48_000_000_000),
    ("{stem}_g0_t0.imec{probe}.ap.meta", "ephys-raw-neuropixels-ap-meta", 9_000),
    ("{stem}_g0_t0.imec{probe}.lf.bin", "ephys-raw-neuropixels-lf-bin", 4_000_000_000),
    ("{stem}_g0_t0.imec{probe}.lf.meta", "ephys-raw-neuropixels-lf-meta", 8_000),
    ("imec{probe}_ks2/spike_times.npy", "ephys-raw-ks2-spike-times", 90_000_000),
    ("imec{probe}_ks2/spike_clusters.npy", "ephys-raw-ks2-spike-clusters", 45_000_000),
    ("imec{probe}_ks2/templates.npy", "ephys-raw-ks2-template", 60_000_000),
    ("imec{probe}_ks2/params.py", "ephys-raw-ks2-parameters", 300),
]
VIDEO_FILES = [("{h2o}_side_{trial}-0000.avi", "tracking-video-trial", 250_000_000)]


def _configure(database_url):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Static files are served by the web server in production; the benchmark does not need them collected.
    warnings.filterwarnings("ignore", message="No directory at")
    _create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()


def _create_database(url):
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit("The page benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    server = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))


# Loading ----------------------------------------------------------------------


def _sizes(scale):
    return {name: max(1, int(count * scale)) for name, count in FULL_SIZE.items()}


def _has_size(sizes):
    from catalog.models import RawFile, Session, Subject

    return (
        Subject.objects.count() == sizes["subjects"]
        and Session.objects.count() == sizes["sessions"]
        and RawFile.objects.count() == sizes["files"]
    )


def _copy(cursor, table, columns, rows):
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - fixed names
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _reset_sequence(cursor, table):
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1)) FROM {table}"  # noqa: S608
    )


def _load(sizes):
    """Replace the catalog and the jobs with a generated one of ``sizes``."""
    from django.db import connection, transaction

    from catalog import naming
    from catalog.models import FileType

    tables = [
        "transfers_transferitem",
        "transfers_transfertask",
        "transfers_transferjob",
        "catalog_replica",
        "catalog_rawfile",
        "catalog_session",
        "catalog_subject",
        "catalog_storagelocation",
    ]
    type_ids = dict(FileType.objects.values_list("name", "id"))
    now = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        locations = [
            (1, "rig-ephys", "local", naming.RAW_EPHYS, "filesystem", "/", "/data/rig/ephys", False),
            (2, "rig-video", "local", naming.RAW_VIDEO, "filesystem", "/", "/data/rig/video", False),
            (
                3,
                "archive-ephys",
                "archive",
                naming.RAW_EPHYS,
                "filesystem",
                "/",
                "/data/archive/ephys",
                False,
            ),
            (
                4,
                "archive-video",
                "archive",
                naming.RAW_VIDEO,
                "filesystem",
                "/",
                "/data/archive/video",
                False,
            ),
            (5, "scratch-ephys", "local", naming.RAW_EPHYS, "filesystem", "/", "/data/scratch/ephys", True),
        ]
        _copy(
            cursor,
            "catalog_storagelocation",
            [
                "id",
                "alias",
                "role",
                "dataset_type",
                "backend",
                "root_path",
                "local_path",
                "writable",
                "description",
            ],
            (row + ("",) for row in locations),
        )
        subjects = [
            (n + 1, f"{('dl', 'SC', 'tw', 'mk')[n % 4]}{n + 10}", 400_000 + n)
            for n in range(sizes["subjects"])
        ]
        _copy(
            cursor,
            "catalog_subject",
            ["id", "water_restriction_number", "subject_id", "details", "created_at"],
            ((pk, h2o, subject_id, "", now) for pk, h2o, subject_id in subjects),
        )
        sessions = []
        per_subject = sizes["sessions"] // sizes["subjects"]
        for n in range(sizes["sessions"]):
            subject_pk, h2o, _ = subjects[min(n // max(per_subject, 1), len(subjects) - 1)]
            day = datetime.date(2019, 1, 1) + datetime.timedelta(days=n % max(per_subject, 1) * 3)
            sessions.append((n + 1, subject_pk, h2o, day, "" if n % 7 else "1"))
        _copy(
            cursor,
            "catalog_session",
            ["id", "subject_id", "session_date", "ident", "rig", "notes", "created_at"],
            ((pk, subject_pk, day, ident, "rig-1", "", now) for pk, subject_pk, _, day, ident in sessions),
        )
        files, replicas = _files_and_replicas(sessions, sizes["files"], type_ids, naming)
        _copy(
            cursor,
            "catalog_rawfile",
            [
                "id",
                "session_id",
                "dataset_type",
                "subpath",
                "probe_insertion",
                "file_type_id",
                "size",
                "created_at",
            ],
            ((*row, now) for row in files),
        )
        _copy(
            cursor,
            "catalog_replica",
            ["file_id", "location_id", "state", "source", "updated_at"],
            ((*row, now) for row in replicas),
        )
        _load_jobs(cursor, sessions, files, now)
        for table in tables:
            _reset_sequence(cursor, table)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _files_and_replicas(sessions, total, type_ids, naming):
    """Raw files spread evenly over ``sessions``: ephys probes first, then videos."""
    files, replicas = [], []
    per_session, extra = divmod(total, len(sessions))
    file_pk = 0
    for index, (session_pk, _, h2o, day, ident) in enumerate(sessions):
        count = per_session + (1 if index < extra else 0)
        ephys_folder = naming.session_folder(naming.RAW_EPHYS, h2o, day, ident)
        video_folder = naming.session_folder(naming.RAW_VIDEO, h2o, day, ident)
        stem = ephys_folder.rsplit("/", 1)[1][len("catgt_") : -len("_g0")]
        video_count = count // 5
        # Two thirds of the sessions are archived; every 50th lost a rig copy.
        archived = index % 3 != 0
        for n in range(count):
            file_pk += 1
            if n < count - video_count:
                pattern, type_name, size = EPHYS_FILES[n % len(EPHYS_FILES)]
                probe = n // len(EPHYS_FILES)
                name = pattern.format(stem=stem, probe=probe)
                subpath = f"{ephys_folder}/{stem}_g0_imec{probe}/{name}"
                files.append(
                    (file_pk, session_pk, naming.RAW_EPHYS, subpath, probe + 1, type_ids[type_name], size)
                )
                rig, archive = 1, 3
            else:
                pattern, type_name, size = VIDEO_FILES[0]
                subpath = f"{video_folder}/video/{pattern.format(h2o=h2o, trial=n)}"
                files.append(
                    (file_pk, session_pk, naming.RAW_VIDEO, subpath, None, type_ids[type_name], size)
                )
                rig, archive = 2, 4
            state = "missing" if index % 50 == 0 and n == 0 else "present"
            replicas.append((file_pk, rig, state, "scan"))
            if archived:
                replicas.append((file_pk, archive, "present", "discover"))
    return files, replicas


def _load_jobs(cursor, sessions, files, now):
    """Finished archive jobs for a tenth of the sessions, a few running ones,
    and one big retrieval with an item per file of a hundred sessions."""
    jobs = []
    for index, (session_pk, *_rest) in enumerate(sessions[::10]):
        running = index % 100 == 0
        jobs.append(
            (
                len(jobs) + 1,
                "archive",
                "active" if running else "succeeded",
                1,
                3,
                session_pk,
                f"Archive session {session_pk}",
                None if running else now,
            )
        )
    big_job = len(jobs) + 1
    jobs.append((big_job, "retrieve", "active", 3, 5, None, "Retrieve a hundred sessions", None))
    chosen = {session_pk for session_pk, *_ in sessions[:100]}
    items = [(big_job, pk, "pending", "") for pk, session_pk, *_ in files if session_pk in chosen]
    _copy(
        cursor,
        "transfers_transferjob",
        [
            "id",
            "kind",
            "state",
            "source_id",
            "destination_id",
            "session_id",
            "label",
            "finished_at",
            "files_total",
            "bytes_total",
            "files_done",
            "files_skipped",
            "bytes_done",
            "nice_status",
            "error_code",
            "error_message",
            "cancel_requested",
            "attempts",
            "created_at",
            "updated_at",
        ],
        ((*row, 10, 10_000, 5, 0, 5_000, "", "", "", False, 0, now, now) for row in jobs),
    )
    _copy(cursor, "transfers_transferitem", ["job_id", "file_id", "state", "error_message"], items)
    return big_job


# Timing -----------------------------------------------------------------------


def _pages():
    from django.urls import reverse

    from catalog.models import Session, Subject
    from transfers.models import TransferJob

    subject = Subject.objects.order_by("pk").first()
    others = list(Subject.objects.order_by("pk").values_list("water_restriction_number", flat=True)[1:3])
    subject_sessions = Session.objects.filter(subject=subject).count()
    big_job = TransferJob.objects.filter(kind="retrieve").order_by("-pk").first()
    return [
        ("subjects", reverse("catalog:subjects"), {}),
        ("subjects, search 'dl1'", reverse("catalog:subjects"), {"q": "dl1"}),
        (
            f"subject ({subject_sessions} sessions)",
            reverse("catalog:subject", args=[subject.water_restriction_number]),
            {},
        ),
        (
            "search, 3 subjects",
            reverse("catalog:search"),
            {"subjects": " ".join([subject.water_restriction_number, *others])},
        ),
        (
            "search, 3 subjects, ephys, dates",
            reverse("catalog:search"),
            {
                "subjects": " ".join([subject.water_restriction_number, *others]),
                "dataset_type": "raw-ephys",
                "date_from": "2019-01-10",
                "date_to": "2019-03-01",
            },
        ),
        (
            "search, one date, all subjects",
            reverse("catalog:search"),
            {"date_from": "2019-01-04", "date_to": "2019-01-04"},
        ),
        ("transfers", reverse("transfers:jobs"), {}),
        ("transfers, unfinished", reverse("transfers:jobs"), {"state": "unfinished"}),
        ("job page (big retrieval)", reverse("transfers:job", args=[big_job.pk]), {"page": 5}),
    ]


class _QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _time_pages(requests):
    from django.db import connection
    from django.test import Client

    from archive_portal.models import Role
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username="bench@lab.example.org", role=Role.ARCHIVIST))
    results = []
    for name, url, params in _pages():
        for _ in range(3):
            client.get(url, params)
        counter = _QueryCounter()
        with connection.execute_wrapper(counter):
            response = client.get(url, params)
        if response.status_code != 200:
            raise SystemExit(f"{name}: HTTP {response.status_code}")
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url, params)
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times), max(times), counter.count))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (1.0)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (30)")
    parser.add_argument("--reload", action="store_true", help="load the catalog even if it has the size")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_PAGES_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the benchmark's own PostgreSQL database (its catalog is replaced)",
    )
    args = parser.parse_args(argv)
    _configure(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    sizes = _sizes(args.scale)
    print(
        f"Catalog: {sizes['subjects']:,} subjects, {sizes['sessions']:,} sessions, {sizes['files']:,} files "
        f"(PostgreSQL database {args.database_url.rsplit('/', 1)[-1]})"
    )
    if args.reload or not _has_size(sizes):
        print(f"Loaded in {_load(sizes):.1f} s")
    print(f"{'page':<36} {'median':>9} {'slowest':>9} {'queries':>8}")
    for name, median, slowest, queries in _time_pages(args.requests):
        print(f"{name:<36} {median * 1000:>7.1f}ms {slowest * 1000:>7.1f}ms {queries:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
