"""How fast discovery registers a large archive, and how little memory it needs.

Writes a synthetic raw-ephys tree (100,000 files in 2,000 session folders by
default, plus junk that pruning must skip) and walks it twice per database
(SQLite and PostgreSQL) and per backend: the filesystem walker, and the Globus
walker through the loopback Transfer fake over HTTP with the portal's own
client-credentials identity. The first walk registers everything, the second
finds everything unchanged. Each walk runs in a fresh process, so its peak
memory is its own. Prints files per second, API calls and peak memory.

    python -m bench.discovery                               # full size
    python -m bench.discovery --files 5000 --sessions 100   # a quick check
    BENCH_DISCOVERY_FILES=5000 BENCH_DISCOVERY_SESSIONS=100 python -m bench.discovery
    python -m bench.discovery --databases sqlite --backends filesystem

PostgreSQL comes from BENCH_DISCOVERY_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/portal_bench): that database is dropped and
created again, so never point it at one that matters. SQLite uses a throwaway
file. PostgreSQL is skipped with a note when the server cannot be reached.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"
COLLECTION = "5b875fda-4185-11e8-bb52-0ac6873fc732"
CLIENT_ID, CLIENT_SECRET = "portal-bench-client", "portal-bench-secret"
SESSIONS_PER_SUBJECT = 20
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
    "pc_features.npy",
    "pc_feature_ind.npy",
    "similar_templates.npy",
    "template_features.npy",
)


# The tree -----------------------------------------------------------------------------


def _session_files(h2o, day, count):
    """``count`` subpaths of one session: NI-DAQ files, then probes with their bands and Kilosort output."""
    from catalog import naming

    folder = naming.session_folder(naming.RAW_EPHYS, h2o, day)
    stem = folder.split("/")[1][len("catgt_") : -len("_g0")]
    names = [f"{folder}/{stem}_g0_tcat.nidq.{suffix}" for suffix in ("bin", "meta", "XD_0_1_0.txt")]
    probe = 0
    while len(names) < count:
        probe_dir = f"{folder}/{naming.probe_folder(h2o, day, '', probe + 1)}"
        base = f"{probe_dir}/{stem}_g0_tcat.imec{probe}"
        names += [f"{base}.{band}" for band in ("ap.bin", "ap.meta", "lf.bin", "lf.meta", "SY_384_6_500.txt")]
        names += [f"{probe_dir}/imec{probe}_ks2/{name}" for name in KILOSORT]
        probe += 1
    return names[:count]


def write_tree(root, *, files, sessions):
    """Write the synthetic tree; returns (files registered by a walk, folders a pruned walk lists)."""
    import datetime

    per_session, extra = divmod(files, sessions)
    written = 0
    folders = {root}
    for index in range(sessions):
        h2o = f"bm{index // SESSIONS_PER_SUBJECT + 1}"
        day = datetime.date(2019, 1, 1) + datetime.timedelta(days=index % SESSIONS_PER_SUBJECT)
        for subpath in _session_files(h2o, day, per_session + (1 if index < extra else 0)):
            path = root / subpath
            if path.parent not in folders:
                path.parent.mkdir(parents=True, exist_ok=True)
                folders.update([path.parent, *path.parent.parents])
            with open(path, "wb") as handle:
                handle.truncate(1000 + written % 50_000)  # sparse: sizes vary, the disk stays empty
            written += 1
    # Junk the walk reports without listing: a scratch folder, a bad session folder, stray files.
    junk = root / "scratch"
    junk.mkdir(exist_ok=True)
    for index in range(1000):
        (junk / f"tmp{index}.bin").touch()
    (root / "bm1" / "catgt_bm1_023019_g0").mkdir(exist_ok=True)
    (root / "bm1" / "catgt_bm1_023019_g0" / "x.ap.bin").touch()
    (root / "README.md").touch()
    return written, len({folder for folder in folders if root == folder or root in folder.parents})


# One walk, in its own process ----------------------------------------------------------


def _setup_django(database_url, var_dir):
    os.environ["DATABASE_URL"] = database_url
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("PORTAL_DEVELOPMENT", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "archive_portal.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["GLOBUS_CLIENT_ID"], os.environ["GLOBUS_CLIENT_SECRET"] = CLIENT_ID, CLIENT_SECRET
    import django

    django.setup()


def _location(backend, tree):
    from catalog.models import Backend, LocationRole, StorageLocation

    fields = {"role": LocationRole.ARCHIVE, "dataset_type": "raw-ephys", "backend": backend}
    if backend == Backend.GLOBUS:
        fields.update(collection_id=COLLECTION, root_path="/ePhys", local_path="")
    else:
        fields.update(local_path=str(tree))
    location, _ = StorageLocation.objects.update_or_create(alias="bench-archive", defaults=fields)
    return location


def _fake_calls(transfer_url, action):
    import requests

    return requests.post(f"{transfer_url}_fake/{action}", json={}, timeout=60).json()


def prepare(args):
    """Child process: an up-to-date schema and an empty catalog."""
    _setup_django(args.database_url, args.var_dir)
    from django.core.management import call_command

    from catalog.models import DiscoveryRun, RawFile, Replica, Session, Subject

    call_command("migrate", verbosity=0)
    for model in (DiscoveryRun, Replica, RawFile, Session, Subject):
        model.objects.all().delete()
    print("RESULT {}", flush=True)


def walk_once(args):
    """Child process: one walk of the tree; prints one JSON line with what it measured."""
    _setup_django(args.database_url, args.var_dir)
    from transfers import discovery

    location = _location(args.backend, args.tree)
    if args.backend == "globus":
        _fake_calls(os.environ["GLOBUS_SDK_SERVICE_URL_TRANSFER"], "reset_requests")
    run, _ = discovery.request_run(location=location)
    if args.tracemalloc:
        tracemalloc.start()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    run = discovery.execute_run(run.pk, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "state": run.state,
        "error": run.error_message,
        "seconds": seconds,
        "files_seen": run.files_seen,
        "registered": run.registered,
        "unchanged": run.unchanged,
        "unmatched": run.unmatched,
        "folders": run.directories_listed,
        "rss_before_kib": rss_before,
        "rss_peak_kib": rss_after,
    }
    if args.tracemalloc:
        result["traced_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    if args.backend == "globus":
        requests_made = _fake_calls(os.environ["GLOBUS_SDK_SERVICE_URL_TRANSFER"], "requests")
        result["api_calls"] = len(requests_made)
        result["ls_calls"] = sum(1 for request in requests_made if request["path"].endswith("/ls"))
    print("RESULT " + json.dumps(result), flush=True)


def serve_fake(args):
    """Child process: the loopback Globus fakes over the tree, until killed."""
    import signal
    import threading

    from tests.fakes import FakeGlobusAuth, FakeGlobusTransfer

    auth = FakeGlobusAuth(clients={CLIENT_ID: CLIENT_SECRET}, identities=["bench@lab.example.org"]).start()
    transfer = FakeGlobusTransfer(auth=auth, collections={COLLECTION: args.collection_root}).start()
    print(f"AUTH {auth.url}", flush=True)
    print(f"TRANSFER {transfer.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    transfer.stop()
    auth.stop()


# The driver ----------------------------------------------------------------------------


def _postgres_ready(url):
    """Drop and create the benchmark database; None when PostgreSQL cannot be reached."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    server = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **server) as admin:
            name = sql.Identifier(config["NAME"])
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    except psycopg.OperationalError as error:
        return str(error).strip().splitlines()[0]
    return None


def _child(argv, env):
    completed = subprocess.run(
        [sys.executable, "-m", "bench.discovery", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"benchmark walk failed:\n{completed.stdout}\n{completed.stderr}")


def _start_fake(collection_root, env):
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.discovery", "--serve-fake", str(collection_root)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    urls = {}
    while len(urls) < 2:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the loopback Globus fakes did not start")
        name, _, url = line.strip().partition(" ")
        urls[name] = url
    return process, urls


def _row(database, backend, walk, result):
    rate = result["registered" if walk == "first" else "unchanged"] / result["seconds"]
    peak = result["rss_peak_kib"] / 1024
    growth = peak - result["rss_before_kib"] / 1024
    traced = result.get("traced_peak_bytes")
    return (
        f"{database:<10} {backend:<10} {walk:<9} {result['state']:<9} {result['seconds']:8.1f} s "
        f"{rate:9,.0f} files/s {result.get('api_calls', 0):9,} {peak:7.0f} MiB {growth:6.0f} MiB"
        + (f" {traced / 2**20:6.1f} MiB" if traced is not None else "")
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=int(os.environ.get("BENCH_DISCOVERY_FILES", 100_000)))
    parser.add_argument(
        "--sessions", type=int, default=int(os.environ.get("BENCH_DISCOVERY_SESSIONS", 2_000))
    )
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--backends", default="filesystem,globus")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (slows the walks)"
    )
    parser.add_argument("--serve-fake", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--walk", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        args.collection_root = args.serve_fake
        serve_fake(args)
    elif args.prepare:
        prepare(args)
    elif args.walk:
        walk_once(args)
    elif _drive(args):
        raise SystemExit(1)  # ``python -m bench`` calls main() and reads the exit status


def _drive(args):
    """Write the tree, walk it every way asked, print the table; returns 1 when a walk failed."""
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-discovery-"))
    fake = None
    try:
        collection = workdir / "collection"
        tree = collection / "ePhys"
        started = time.perf_counter()
        files, folders = write_tree(tree, files=args.files, sessions=args.sessions)
        print(
            f"Tree: {files:,} raw files in {args.sessions:,} session folders ({folders:,} folders to list), "
            "plus junk the walk must report without listing (a folder of 1,000 files, a bad session "
            f"folder, a stray file); written in {time.perf_counter() - started:.0f} s.",
            flush=True,
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        backends = [name for name in args.backends.split(",") if name]
        if "globus" in backends:
            fake, urls = _start_fake(collection, env)
            env["GLOBUS_SDK_SERVICE_URL_AUTH"] = urls["AUTH"]
            env["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = urls["TRANSFER"]
        print(
            f"\n{'database':<10} {'backend':<10} {'walk':<9} {'state':<9} {'time':>10} {'rate':>16} "
            f"{'API calls':>9} {'peak RSS':>11} {'growth':>10}" + (" traced" if args.tracemalloc else ""),
            flush=True,
        )
        for database in [name for name in args.databases.split(",") if name]:
            if database == "sqlite":
                url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            else:
                url = os.environ.get("BENCH_DISCOVERY_DATABASE_URL", DEFAULT_POSTGRES_URL)
                problem = _postgres_ready(url)
                if problem:
                    print(f"{database:<10} skipped: PostgreSQL is not reachable ({problem})", flush=True)
                    continue
            database_args = [f"--database-url={url}", f"--var-dir={workdir / 'var'}"]
            for backend in backends:
                _child(["--prepare", *database_args], env)
                for walk in ("first", "again"):
                    child = [
                        "--walk",
                        *database_args,
                        f"--backend={backend}",
                        f"--tree={tree}",
                        f"--batch-size={args.batch_size}",
                    ]
                    if args.tracemalloc:
                        child.append("--tracemalloc")
                    result = _child(child, env)
                    print(_row(database, backend, walk, result), flush=True)
                    if result["state"] != "succeeded" or result["files_seen"] < files:
                        print(f"  the walk did not finish: {result['error']}", flush=True)
                        return 1
        print(
            "\nrate: files registered (first walk) or found unchanged (again) per second; API calls: "
            "requests to the Transfer fake (one operation_ls per folder); peak RSS: the "
            "walking process's maximum resident size; growth: how much of it the walk added.",
            flush=True,
        )
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main()
