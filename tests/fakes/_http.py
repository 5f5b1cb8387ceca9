"""Shared loopback HTTP machinery for the Globus fakes.

Each fake is a ``FakeService``: a ``ThreadingHTTPServer`` on 127.0.0.1 run in
a daemon thread, with a request log, fault injection (``fail_next`` /
``drop_next``) and a small control API under ``/_fake/`` so that tests running
in another process (browser tests, benchmarks) can steer a fake started with
``python -m tests.fakes``. The control paths are never used by globus-sdk.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Form / JSON fields whose values never go into the request log.
SECRET_FIELDS = frozenset(
    {
        "client_secret",
        "refresh_token",
        "access_token",
        "code",
        "code_verifier",
        "token",
        "password",
    }
)
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

DROP = object()  # a handler result meaning "close the connection, send nothing"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_address: tuple[str, int] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode("utf-8")
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return Response(status, body, hdrs)


def text_response(status: int, text: str, content_type: str = "text/html; charset=utf-8") -> Response:
    return Response(status, text.encode("utf-8"), {"Content-Type": content_type})


def redirect_response(location: str) -> Response:
    return Response(302, b"", {"Location": location})


def new_request_id() -> str:
    return uuid.uuid4().hex[:9]


class _Fault:
    def __init__(
        self,
        kind: str,
        count: int,
        status: int = 503,
        path_contains: str | None = None,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.kind = kind
        self.remaining = count
        self.status = status
        self.path_contains = path_contains
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path_contains is None or self.path_contains in path)


def _mask_body(req: Request) -> Any:
    if not req.body:
        return None
    ctype = req.content_type
    try:
        if ctype == "application/x-www-form-urlencoded":
            return {k: ("***" if k in SECRET_FIELDS else v) for k, v in req.form().items()}
        if ctype == "application/json" or req.body[:1] in (b"{", b"["):
            data = req.json()
            if isinstance(data, dict):
                return {k: ("***" if k in SECRET_FIELDS else v) for k, v in data.items()}
            return data
    except (ValueError, UnicodeDecodeError):
        pass
    return f"<{len(req.body)} bytes>"


def _describe_auth(req: Request) -> str | None:
    """Scheme of the Authorization header (and the client id for Basic), no secret."""
    value = req.header("authorization")
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            client_id = base64.b64decode(rest.strip()).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            client_id = "?"
        return f"Basic {client_id}"
    return scheme


class FakeService:
    """Base class: lifecycle, routing hook, request log, fault injection."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeService:
        if self._server is not None:
            return self
        service = self

        class Handler(_Handler):
            fake = service

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, suitable for GLOBUS_SDK_SERVICE_URL_*."""
        return f"http://{self._host}:{self.port}/"

    # ----------------------------------------------------------- fault injection
    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        path_contains: str | None = None,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with an error of ``status``."""
        with self._lock:
            self._faults.append(_Fault("fail", n, status, path_contains, code, message, retry_after))

    def drop_next(self, n: int = 1, path_contains: str | None = None) -> None:
        """Close the connection of the next ``n`` matching requests without answering."""
        with self._lock:
            self._faults.append(_Fault("drop", n, path_contains=path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def fault_response(self, fault: _Fault, req: Request) -> Response:
        """Error document for an injected failure; services override the shape."""
        body = {
            "code": fault.code or _default_error_code(fault.status),
            "message": fault.message or "Injected failure from the loopback fake",
            "request_id": new_request_id(),
            "resource": req.path,
        }
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return json_response(fault.status, body, headers)

    # ------------------------------------------------------------------- logging
    def calls(self, path_prefix: str = "", method: str | None = None) -> int:
        """Number of logged requests whose path starts with ``path_prefix``."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if self._path_matches(r["path"], path_prefix)
                and (method is None or r["method"] == method.upper())
            )

    def requests_to(self, path_prefix: str = "", method: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.requests
                if self._path_matches(r["path"], path_prefix)
                and (method is None or r["method"] == method.upper())
            ]

    def _path_matches(self, path: str, prefix: str) -> bool:
        return path.startswith(prefix)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------- routing
    def handle(self, req: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Out-of-process control hook: ``POST /_fake/<action>`` with a JSON body."""
        if action == "fail_next":
            self.fail_next(**payload)
            return {"ok": True}
        if action == "drop_next":
            self.drop_next(**payload)
            return {"ok": True}
        if action == "clear_faults":
            self.clear_faults()
            return {"ok": True}
        if action == "requests":
            with self._lock:
                return list(self.requests)
        if action == "reset_requests":
            self.reset_requests()
            return {"ok": True}
        raise KeyError(action)

    def _dispatch(self, req: Request) -> Response | object:
        if req.path.startswith("/_fake/"):
            action = req.path[len("/_fake/") :].strip("/")
            try:
                payload = req.json() if req.body else {}
                result = self.control(action, payload or {})
            except KeyError:
                return json_response(404, {"error": f"unknown control action {action!r}"})
            except (TypeError, ValueError) as err:
                return json_response(400, {"error": str(err)})
            return json_response(200, result)

        record: dict[str, Any] = {
            "method": req.method,
            "path": req.path,
            "query": {k: (v if len(v) > 1 else v[0]) for k, v in req.query.items()},
            "headers": {k: v for k, v in req.headers.items() if k not in SECRET_HEADERS},
            "auth": _describe_auth(req),
            "body": _mask_body(req),
            "time": time.time(),
            "status": None,
        }
        with self._lock:
            self.requests.append(record)

        fault = self._take_fault(req.path)
        if fault is not None and fault.kind == "drop":
            record["status"] = "dropped"
            return DROP
        if fault is not None:
            resp = self.fault_response(fault, req)
        else:
            try:
                resp = self.handle(req)
            except Exception as err:  # a bug in the fake must be loud, not a hang
                import traceback

                traceback.print_exc()
                resp = json_response(
                    500,
                    {
                        "code": "InternalError",
                        "message": f"fake crashed: {err!r}",
                        "request_id": new_request_id(),
                        "resource": req.path,
                    },
                )
        record["status"] = resp.status
        return resp


def _default_error_code(status: int) -> str:
    return {
        500: "InternalError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
        429: "RequestLimitExceeded",
    }.get(status, "Error")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeService
    protocol_version = "HTTP/1.1"
    server_version = "FakeGlobus/1.0"
    # Headers and body go out in two writes; without this each call waits on
    # delayed ACKs (about 40 ms) on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle_any(self) -> None:
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            client_address=self.client_address,
        )
        result = self.fake._dispatch(req)
        if result is DROP:
            self.close_connection = True
            try:
                import socket

                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        assert isinstance(result, Response)
        self.send_response(result.status)
        for key, value in result.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle_any


Route = Callable[..., Response]
