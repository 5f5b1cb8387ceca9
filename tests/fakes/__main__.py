"""Run the Globus Auth and Transfer fakes until killed.

    python -m tests.fakes --auth-port 8701 --transfer-port 8702 \\
        --collection 5b875fda-4185-11e8-bb52-0ac6873fc732=/tmp/archive \\
        --collection 11111111-2222-3333-4444-555555555555=/tmp/local \\
        --client PORTAL_CLIENT_ID:PORTAL_SECRET --identity ada@janelia.org

Prints ``GLOBUS_SDK_SERVICE_URL_AUTH=...``, ``GLOBUS_SDK_SERVICE_URL_GROUPS=...``
and ``GLOBUS_SDK_SERVICE_URL_TRANSFER=...`` lines (flushed) once both listen,
then a ``READY`` line. Tests in other processes steer the fakes with
``POST <url>_fake/<action>`` (JSON body), e.g. ``_fake/login_as``,
``_fake/run_tasks``, ``_fake/fail_next``, ``_fake/expire_access_tokens``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .globus_auth import FakeGlobusAuth, FakeIdentity
from .globus_transfer import FakeGlobusTransfer


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    left, found, right = text.partition(sep)
    if not found or not left or not right:
        raise argparse.ArgumentTypeError(f"{what} must look like LEFT{sep}RIGHT, got {text!r}")
    return left, right


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--auth-port", type=int, default=0)
    parser.add_argument("--transfer-port", type=int, default=0)
    parser.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="UUID=DIR",
        type=lambda s: _pair(s, "=", "--collection"),
    )
    parser.add_argument(
        "--client", action="append", default=[], metavar="ID:SECRET", type=lambda s: _pair(s, ":", "--client")
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        metavar="CLIENT_ID=URI",
        type=lambda s: _pair(s, "=", "--redirect-uri"),
        help="restrict a client's redirect URIs (default: any http(s) URI)",
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="USERNAME[=Full Name]",
        help="identity to log in as; the first one is the default login",
    )
    parser.add_argument(
        "--require-consent",
        action="append",
        default=[],
        metavar="UUID",
        help="collection needing a data_access consent (GCSv5 mapped)",
    )
    parser.add_argument("--auto-complete-after-polls", type=int, default=None)
    parser.add_argument("--auto-complete-after-seconds", type=float, default=None)
    parser.add_argument("--page-size", type=int, default=100, help="successful_transfers page size")
    parser.add_argument("--access-token-lifetime", type=int, default=172800)
    parser.add_argument("--json", action="store_true", help="print the URLs as one JSON line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    identities = []
    for spec in args.identity or ["ada@janelia.org"]:
        username, _, name = spec.partition("=")
        identities.append(FakeIdentity(username=username, name=name))
    redirect_uris: dict[str, list[str]] = {}
    for client_id, uri in args.redirect_uri:
        redirect_uris.setdefault(client_id, []).append(uri)
    auth = FakeGlobusAuth(
        clients=dict(args.client),
        identities=identities,
        redirect_uris=redirect_uris,
        access_token_lifetime=args.access_token_lifetime,
        host=args.host,
        port=args.auth_port,
    )
    transfer = FakeGlobusTransfer(
        auth=auth,
        collections=dict(args.collection),
        successful_transfers_page_size=args.page_size,
        auto_complete_after_polls=args.auto_complete_after_polls,
        auto_complete_after_seconds=args.auto_complete_after_seconds,
        host=args.host,
        port=args.transfer_port,
    )
    for cid in args.require_consent:
        transfer.require_consent(cid)
    auth.start()
    transfer.start()
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.json:
        print(json.dumps({"auth": auth.url, "groups": auth.url, "transfer": transfer.url}), flush=True)
    else:
        print(f"GLOBUS_SDK_SERVICE_URL_AUTH={auth.url}", flush=True)
        print(f"GLOBUS_SDK_SERVICE_URL_GROUPS={auth.url}", flush=True)
        print(f"GLOBUS_SDK_SERVICE_URL_TRANSFER={transfer.url}", flush=True)
        print("READY", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        transfer.stop()
        auth.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
