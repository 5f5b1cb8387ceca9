"""A strict loopback fake of Globus Transfer, for ``GLOBUS_SDK_SERVICE_URL_TRANSFER``.

globus-sdk's ``TransferClient`` prefixes every path with ``/v0.10`` itself, so the
service URL is the bare origin (``http://127.0.0.1:PORT/``) and this fake serves:

* ``GET  /v0.10/submission_id``
* ``POST /v0.10/transfer``                       (strict validation, Duplicate handling)
* ``GET  /v0.10/task_list``                      (filter, orderby, limit/offset)
* ``GET  /v0.10/task/<id>``
* ``POST /v0.10/task/<id>/cancel``
* ``GET  /v0.10/task/<id>/successful_transfers``  (marker paging)
* ``GET  /v0.10/task/<id>/event_list``            (limit/offset)
* ``GET  /v0.10/operation/endpoint/<id>/ls``      (limit/offset, filter, orderby)
* ``GET  /v0.10/operation/endpoint/<id>/stat``
* ``POST /v0.10/operation/endpoint/<id>/mkdir``
* ``GET  /v0.10/endpoint/<id>``

Each collection UUID maps to a local directory; tasks really copy files between
them when they run (``run_tasks()``, or automatically after N polls / seconds).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
import stat as stat_mod
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._http import FakeService, Request, Response, json_response, new_request_id
from .globus_auth import TRANSFER_RS, FakeGlobusAuth, TokenInfo, transfer_scope_with_data_access

API = "/v0.10"
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SYNC_LEVELS = {"exists": 0, "size": 1, "mtime": 2, "checksum": 3}
TASK_STATUSES = ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED")

_TRANSFER_BOOL_FIELDS = (
    "verify_checksum",
    "preserve_timestamp",
    "encrypt_data",
    "skip_source_errors",
    "fail_on_quota_errors",
    "delete_destination_extra",
    "notify_on_succeeded",
    "notify_on_failed",
    "notify_on_inactive",
    "skip_activation_check",
    "store_base_path_info",
)
_TRANSFER_FIELDS = frozenset(
    {
        "DATA_TYPE",
        "DATA",
        "submission_id",
        "label",
        "source_endpoint",
        "destination_endpoint",
        "sync_level",
        "deadline",
        "source_local_user",
        "destination_local_user",
        "recursive_symlinks",
        "filter_rules",
        *_TRANSFER_BOOL_FIELDS,
    }
)
_ITEM_FIELDS = frozenset(
    {"DATA_TYPE", "source_path", "destination_path", "recursive", "external_checksum", "checksum_algorithm"}
)
_FILTER_RULE_FIELDS = frozenset({"DATA_TYPE", "method", "name", "type"})
_CHECKSUM_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _ls_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


class _BadRequest(Exception):
    def __init__(self, message: str, code: str = "ClientError.BadRequest", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class _Fatal(Exception):
    def __init__(self, code: str, description: str, details: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.details = details


@dataclass
class Collection:
    id: str
    root: Path
    display_name: str

    def document(self) -> dict[str, Any]:
        return {
            "DATA_TYPE": "endpoint",
            "id": self.id,
            "display_name": self.display_name,
            "canonical_name": f"fake#{self.id}",
            "entity_type": "GCSv5_mapped_collection",
            "gcs_version": "5.4.0",
            "owner_string": "portal@clients.auth.globus.org",
            "organization": "Loopback fake",
            "description": f"Loopback collection over {self.root}",
            "high_assurance": False,
            "is_globus_connect": False,
            "non_functional": False,
            "public": True,
            "network_use": "normal",
            "subscription_id": None,
            "https_server": None,
            "local_user_info_available": False,
        }


@dataclass
class _Task:
    task_id: str
    submission_id: str
    owner_id: str
    owner_username: str
    label: str | None
    source: Collection
    destination: Collection
    items: list[dict[str, Any]]
    options: dict[str, Any]
    sync_level: int | None
    deadline: dt.datetime
    request_time: dt.datetime
    seq: int
    status: str = "ACTIVE"
    nice_status: str | None = "Queued"
    fatal_error: dict[str, str] | None = None
    completion_time: dt.datetime | None = None
    files: int = 0
    directories: int = 0
    files_transferred: int = 0
    files_skipped: int = 0
    bytes_transferred: int = 0
    bytes_checksummed: int = 0
    faults: int = 0
    skipped_errors: int = 0
    polls: int = 0
    successful: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED")

    def event(self, code: str, description: str, details: str = "", is_error: bool = False) -> None:
        self.events.append(
            {
                "DATA_TYPE": "event",
                "code": code,
                "description": description,
                "details": details,
                "is_error": is_error,
                "time": _now().strftime("%Y-%m-%d %H:%M:%S+00:00"),
            }
        )

    def document(self) -> dict[str, Any]:
        active = self.status in ("ACTIVE", "INACTIVE")
        pending = len(self.items) if not self.final and self.files == 0 else 0
        done = self.files_transferred + self.files_skipped
        canceled = bool(self.fatal_error and self.fatal_error["code"] == "CANCELED")
        failed = self.status == "FAILED" and not canceled
        elapsed = max(1, int(((self.completion_time or _now()) - self.request_time).total_seconds()))
        return {
            "DATA_TYPE": "task",
            "task_id": self.task_id,
            "type": "TRANSFER",
            "status": self.status,
            "nice_status": self.nice_status if active else None,
            "nice_status_short_description": self.nice_status if active else None,
            "nice_status_details": None,
            "nice_status_expires_in": -1 if active else None,
            "is_ok": (self.nice_status in ("OK", "Queued")) if active else None,
            "is_paused": False,
            "label": self.label,
            "owner_id": self.owner_id,
            "username": "u_" + self.owner_id.replace("-", "")[:26],
            "command": "API 0.10",
            "request_time": _iso(self.request_time),
            "completion_time": _iso(self.completion_time),
            "deadline": _iso(self.deadline),
            "source_endpoint": self.source.display_name,
            "source_endpoint_id": self.source.id,
            "source_endpoint_display_name": self.source.display_name,
            "destination_endpoint": self.destination.display_name,
            "destination_endpoint_id": self.destination.id,
            "destination_endpoint_display_name": self.destination.display_name,
            "sync_level": self.sync_level,
            "verify_checksum": bool(self.options.get("verify_checksum")),
            "preserve_timestamp": bool(self.options.get("preserve_timestamp")),
            "encrypt_data": bool(self.options.get("encrypt_data")),
            "skip_source_errors": bool(self.options.get("skip_source_errors")),
            "fail_on_quota_errors": bool(self.options.get("fail_on_quota_errors")),
            "delete_destination_extra": bool(self.options.get("delete_destination_extra")),
            "recursive_symlinks": self.options.get("recursive_symlinks") or "ignore",
            "filter_rules": self.options.get("filter_rules"),
            "files": self.files,
            "directories": self.directories,
            "symlinks": 0,
            "files_transferred": self.files_transferred,
            "files_skipped": self.files_skipped,
            "bytes_transferred": self.bytes_transferred,
            "bytes_checksummed": self.bytes_checksummed,
            "effective_bytes_per_second": self.bytes_transferred // elapsed,
            "faults": self.faults,
            "subtasks_total": max(len(self.items), done + pending + (1 if failed or canceled else 0)),
            "subtasks_pending": pending if not self.final else 0,
            "subtasks_retrying": 0,
            "subtasks_succeeded": done,
            "subtasks_failed": 1 if failed else 0,
            "subtasks_canceled": (1 if canceled else 0),
            "subtasks_expired": 1 if self.fatal_error and self.fatal_error["code"] == "EXPIRED" else 0,
            "subtasks_skipped_errors": self.skipped_errors,
            "fatal_error": self.fatal_error,
            "history_deleted": False,
            "canceled_by_admin": None,
            "canceled_by_admin_message": None,
        }


class FakeGlobusTransfer(FakeService):
    """Loopback Globus Transfer over local directories.

    :param auth: a ``FakeGlobusAuth`` whose transfer tokens are required, or None
        to accept any Bearer token (all tasks then belong to one owner)
    :param collections: ``{collection_uuid: local_root_dir}``
    :param display_names: optional ``{collection_uuid: display name}``
    :param successful_transfers_page_size: page size of ``successful_transfers``
    :param auto_complete_after_polls: a task runs when it is polled (``task/<id>``
        or a ``task_list`` row) for the N-th time; 0 runs it at submission
    :param auto_complete_after_seconds: a task runs on the first request at least
        this long after its submission
    """

    name = "fake-globus-transfer"

    def __init__(
        self,
        auth: FakeGlobusAuth | None = None,
        collections: dict[str, str | os.PathLike[str]] | None = None,
        *,
        display_names: dict[str, str] | None = None,
        successful_transfers_page_size: int = 100,
        auto_complete_after_polls: int | None = None,
        auto_complete_after_seconds: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.auth = auth
        self.collections: dict[str, Collection] = {}
        for cid, root in (collections or {}).items():
            self.add_collection(cid, root, (display_names or {}).get(cid))
        self.successful_transfers_page_size = successful_transfers_page_size
        self.auto_complete_after_polls = auto_complete_after_polls
        self.auto_complete_after_seconds = auto_complete_after_seconds
        self._consent_required: set[str] = set()
        self._submission_ids: set[str] = set()
        self._accepted: dict[str, str] = {}  # submission_id -> task_id
        self._tasks: dict[str, _Task] = {}
        self._seq = 0

    # ------------------------------------------------------------ test controls
    def add_collection(
        self, collection_id: str, root: str | os.PathLike[str], display_name: str | None = None
    ) -> Collection:
        cid = str(collection_id).lower()
        if not _UUID_RE.match(cid):
            raise ValueError(f"collection id must be a UUID: {collection_id!r}")
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        coll = Collection(cid, path.resolve(), display_name or f"Fake collection {cid[:8]}")
        with self._lock:
            self.collections[cid] = coll
        return coll

    def require_consent(self, collection_id: str | uuid.UUID) -> None:
        """Make the collection behave as a GCSv5 mapped collection: submit and ls
        answer 403 ConsentRequired until the token carries its data_access consent."""
        cid = str(collection_id).lower()
        with self._lock:
            self._consent_required.add(cid)
        if self.auth is not None:
            self.auth.require_consent(cid)

    def _needs_consent(self, cid: str) -> bool:
        with self._lock:
            if cid in self._consent_required:
                return True
        return self.auth is not None and self.auth.consent_required(cid)

    def run_tasks(self, task_id: str | None = None) -> list[str]:
        """Run every ACTIVE task (or one task) to completion now; returns their ids."""
        ran = []
        with self._lock:
            tasks = [self._tasks[task_id]] if task_id else sorted(self._tasks.values(), key=lambda t: t.seq)
            for task in tasks:
                if task.status == "ACTIVE":
                    self._execute(task)
                    ran.append(task.task_id)
        return ran

    def fail_task(
        self, task_id: str, code: str = "PERMISSION_DENIED", description: str = "Permission denied"
    ) -> None:
        """Force an unfinished task to FAILED with the given fatal error."""
        with self._lock:
            task = self._tasks[task_id]
            if not task.final:
                self._finish_failed(task, code, description, description)

    def task(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            return self._tasks[task_id].document()

    @property
    def tasks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.document() for t in sorted(self._tasks.values(), key=lambda t: t.seq)]

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        if action == "run_tasks":
            return {"ran": self.run_tasks(payload.get("task_id"))}
        if action == "require_consent":
            self.require_consent(payload["collection_id"])
            return {"ok": True}
        if action == "add_collection":
            coll = self.add_collection(payload["collection_id"], payload["root"], payload.get("display_name"))
            return {"id": coll.id, "root": str(coll.root)}
        if action == "fail_task":
            self.fail_task(
                payload["task_id"],
                payload.get("code", "PERMISSION_DENIED"),
                payload.get("description", "Permission denied"),
            )
            return {"ok": True}
        if action == "tasks":
            return self.tasks
        if action == "configure":
            for key in (
                "auto_complete_after_polls",
                "auto_complete_after_seconds",
                "successful_transfers_page_size",
            ):
                if key in payload:
                    setattr(self, key, payload[key])
            return {"ok": True}
        return super().control(action, payload)

    def _path_matches(self, path: str, prefix: str) -> bool:
        return path.startswith(prefix) or (not prefix.startswith(API) and path.startswith(API + prefix))

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _error(req: Request, status: int, code: str, message: str, **extra: Any) -> Response:
        body = {"code": code, "message": message, "request_id": new_request_id(), "resource": req.path}
        body.update(extra)
        return json_response(status, body)

    # ------------------------------------------------------------------ routing
    _ROUTES = [
        ("GET", re.compile(r"^/v0\.10/submission_id$"), "_submission_id"),
        ("POST", re.compile(r"^/v0\.10/transfer$"), "_submit_transfer"),
        ("GET", re.compile(r"^/v0\.10/task_list$"), "_task_list"),
        ("GET", re.compile(r"^/v0\.10/task/(?P<task_id>[^/]+)$"), "_get_task"),
        ("POST", re.compile(r"^/v0\.10/task/(?P<task_id>[^/]+)/cancel$"), "_cancel_task"),
        (
            "GET",
            re.compile(r"^/v0\.10/task/(?P<task_id>[^/]+)/successful_transfers$"),
            "_successful_transfers",
        ),
        ("GET", re.compile(r"^/v0\.10/task/(?P<task_id>[^/]+)/event_list$"), "_event_list"),
        ("GET", re.compile(r"^/v0\.10/operation/endpoint/(?P<cid>[^/]+)/ls$"), "_ls"),
        ("GET", re.compile(r"^/v0\.10/operation/endpoint/(?P<cid>[^/]+)/stat$"), "_stat"),
        ("POST", re.compile(r"^/v0\.10/operation/endpoint/(?P<cid>[^/]+)/mkdir$"), "_mkdir"),
        ("GET", re.compile(r"^/v0\.10/endpoint/(?P<cid>[^/]+)$"), "_get_endpoint"),
    ]

    def handle(self, req: Request) -> Response:
        path = req.path
        method_mismatch = False
        for method, pattern, name in self._ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if method != req.method:
                method_mismatch = True
                continue
            owner, error = self._authenticate(req)
            if error is not None:
                return error
            self._auto_complete_by_time()
            try:
                return getattr(self, name)(req, owner, **match.groupdict())
            except _BadRequest as err:
                return self._error(req, err.status, err.code, err.message)
        if method_mismatch:
            return self._error(
                req, 405, "ClientError.MethodNotAllowed", f"{req.method} not allowed on {path}"
            )
        return self._error(req, 404, "ClientError.NotFound", f"No such resource: {path}")

    def _authenticate(self, req: Request) -> tuple[TokenInfo | None, Response | None]:
        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, self._error(req, 401, "AuthenticationFailed", "No Authorization header")
        if self.auth is None:
            return (
                TokenInfo(
                    token=token,
                    kind="access",
                    client_id="anonymous",
                    sub="00000000-0000-0000-0000-000000000000",
                    username="anonymous",
                    resource_server=TRANSFER_RS,
                    scopes=[],
                    data_access=set(),
                    issued_at=0,
                    expires_at=None,
                    grant_id="",
                ),
                None,
            )
        info = self.auth.validate_access_token(token, TRANSFER_RS)
        if info is None:
            return None, self._error(req, 401, "AuthenticationFailed", "Token is not active")
        return info, None

    def _consent_error(self, req: Request, owner: TokenInfo, collection_ids: list[str]) -> Response | None:
        missing = []
        for cid in collection_ids:
            if cid not in missing and self._needs_consent(cid) and cid not in owner.data_access:
                missing.append(cid)
        if not missing:
            return None
        return self._error(
            req,
            403,
            "ConsentRequired",
            "Missing required data_access consent",
            required_scopes=[transfer_scope_with_data_access(*missing)],
        )

    def _collection(self, cid: str) -> Collection:
        if not isinstance(cid, str) or not _UUID_RE.match(cid):
            raise _BadRequest(f"Invalid endpoint id: {cid!r} is not a UUID")
        with self._lock:
            coll = self.collections.get(cid.lower())
        if coll is None:
            raise _BadRequest(f"Endpoint {cid} does not exist", "ClientError.NotFound", 404)
        return coll

    # ------------------------------------------------------------ submission
    def _submission_id(self, req: Request, owner: TokenInfo) -> Response:
        value = str(uuid.uuid4())
        with self._lock:
            self._submission_ids.add(value)
        return json_response(200, {"value": value})

    def _submit_transfer(self, req: Request, owner: TokenInfo) -> Response:
        try:
            doc = req.json()
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("Request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise _BadRequest("Request body must be a JSON object")
        if "DATA_TYPE" not in doc:
            raise _BadRequest("Missing required field 'DATA_TYPE'")
        if doc["DATA_TYPE"] != "transfer":
            raise _BadRequest(f"Invalid DATA_TYPE {doc['DATA_TYPE']!r}, expected 'transfer'")
        submission_id = doc.get("submission_id")
        if not isinstance(submission_id, str) or not submission_id:
            raise _BadRequest("Missing required field 'submission_id'")
        with self._lock:
            existing = self._accepted.get(submission_id)
            if existing is not None:
                return json_response(
                    200,
                    {
                        "DATA_TYPE": "transfer_result",
                        "code": "Duplicate",
                        "message": f"A transfer with id '{existing}' has already been accepted",
                        "request_id": new_request_id(),
                        "resource": req.path,
                        "submission_id": submission_id,
                        "task_id": existing,
                        "task_link": _task_link(existing),
                    },
                )
            if submission_id not in self._submission_ids:
                raise _BadRequest(
                    f"Invalid submission_id {submission_id!r}: it was not issued by GET /submission_id"
                )

        unknown = sorted(set(doc) - _TRANSFER_FIELDS)
        if unknown:
            raise _BadRequest(f"Unknown field(s) in transfer document: {', '.join(unknown)}")
        for key in ("source_endpoint", "destination_endpoint"):
            if key not in doc:
                raise _BadRequest(f"Missing required field {key!r}")
        source = self._collection(doc["source_endpoint"])
        destination = self._collection(doc["destination_endpoint"])

        label = doc.get("label")
        if label is not None:
            if not isinstance(label, str):
                raise _BadRequest("'label' must be a string")
            if len(label) > 128:
                raise _BadRequest(f"'label' is {len(label)} characters long; the maximum is 128")
            if "\r" in label or "\n" in label:
                raise _BadRequest("'label' must not contain newline characters")
            if label != label.strip():
                raise _BadRequest("'label' must not have leading or trailing whitespace")
            if not label.isprintable():
                raise _BadRequest("'label' must contain only printable characters")

        sync_level = doc.get("sync_level")
        if sync_level is not None:
            if isinstance(sync_level, bool):
                raise _BadRequest(f"Invalid sync_level {sync_level!r}")
            if isinstance(sync_level, str):
                if sync_level not in SYNC_LEVELS:
                    raise _BadRequest(
                        f"Invalid sync_level {sync_level!r}; use 0-3 or exists, size, mtime, checksum"
                    )
                sync_level = SYNC_LEVELS[sync_level]
            elif not isinstance(sync_level, int) or not 0 <= sync_level <= 3:
                raise _BadRequest(
                    f"Invalid sync_level {sync_level!r}; use 0-3 or exists, size, mtime, checksum"
                )

        options: dict[str, Any] = {}
        for key in _TRANSFER_BOOL_FIELDS:
            value = doc.get(key)
            if value is not None and not isinstance(value, bool):
                raise _BadRequest(f"{key!r} must be a boolean, got {value!r}")
            options[key] = value
        for key in ("source_local_user", "destination_local_user"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise _BadRequest(f"{key!r} must be a string")
        recursive_symlinks = doc.get("recursive_symlinks")
        if recursive_symlinks is not None and recursive_symlinks not in ("ignore", "keep", "copy"):
            raise _BadRequest(f"Invalid recursive_symlinks {recursive_symlinks!r}")
        options["recursive_symlinks"] = recursive_symlinks
        options["filter_rules"] = _validate_filter_rules(doc.get("filter_rules"))

        now = _now()
        deadline_raw = doc.get("deadline")
        if deadline_raw is None:
            deadline = now + dt.timedelta(days=1)
        else:
            if not isinstance(deadline_raw, str):
                raise _BadRequest("'deadline' must be an ISO 8601 date-time string")
            try:
                deadline = dt.datetime.fromisoformat(deadline_raw.strip())
            except ValueError:
                raise _BadRequest(f"Invalid deadline {deadline_raw!r}; expected ISO 8601") from None
            if deadline.tzinfo is None:
                deadline = deadline.replace(tzinfo=dt.UTC)
            if deadline <= now:
                raise _BadRequest(f"deadline {deadline_raw!r} is in the past")

        items = doc.get("DATA")
        if not isinstance(items, list):
            raise _BadRequest("'DATA' must be a list of transfer_item documents")
        if not items:
            raise _BadRequest(
                "A transfer requires at least one item", "ClientError.BadRequest.NoTransferItems"
            )
        clean_items = [_validate_item(i, item) for i, item in enumerate(items)]

        consent = self._consent_error(req, owner, [source.id, destination.id])
        if consent is not None:
            return consent

        with self._lock:
            # re-check under the lock: a concurrent submit may have won the race
            existing = self._accepted.get(submission_id)
            if existing is not None:
                return self._submit_transfer(req, owner)
            self._seq += 1
            task = _Task(
                task_id=str(uuid.uuid4()),
                submission_id=submission_id,
                owner_id=owner.sub,
                owner_username=owner.username,
                label=label,
                source=source,
                destination=destination,
                items=clean_items,
                options=options,
                sync_level=sync_level,
                deadline=deadline,
                request_time=now,
                seq=self._seq,
            )
            task.files = sum(1 for it in clean_items if not it["recursive"])
            task.directories = sum(1 for it in clean_items if it["recursive"])
            self._tasks[task.task_id] = task
            self._accepted[submission_id] = task.task_id
            if self.auto_complete_after_polls == 0:
                self._execute(task)
        return json_response(
            202,
            {
                "DATA_TYPE": "transfer_result",
                "code": "Accepted",
                "message": (
                    "The transfer has been accepted and a task has been created and queued for execution"
                ),
                "request_id": new_request_id(),
                "resource": "/transfer",
                "submission_id": submission_id,
                "task_id": task.task_id,
                "task_link": _task_link(task.task_id),
            },
        )

    # ------------------------------------------------------------------ tasks
    def _visible_task(self, owner: TokenInfo, task_id: str) -> _Task:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or task.owner_id != owner.sub:
            raise _BadRequest(f"Task {task_id} not found", "ClientError.NotFound", 404)
        return task

    def _poll(self, task: _Task) -> None:
        task.polls += 1
        if task.status == "ACTIVE":
            if task.nice_status == "Queued" and task.polls > 1:
                task.nice_status = "OK"
            n = self.auto_complete_after_polls
            if n is not None and task.polls >= n:
                self._execute(task)

    def _auto_complete_by_time(self) -> None:
        delay = self.auto_complete_after_seconds
        if delay is None:
            return
        now = time.time()
        with self._lock:
            for task in sorted(self._tasks.values(), key=lambda t: t.seq):
                if task.status == "ACTIVE" and now - task.submitted_at >= delay:
                    self._execute(task)

    def _get_task(self, req: Request, owner: TokenInfo, task_id: str) -> Response:
        with self._lock:
            task = self._visible_task(owner, task_id)
            self._poll(task)
            return json_response(200, task.document())

    def _task_list(self, req: Request, owner: TokenInfo) -> Response:
        limit = _int_arg(req, "limit", 10, 1, 1000)
        offset = _int_arg(req, "offset", 0, 0, None)
        if offset + limit > 1000:
            raise _BadRequest("offset + limit must not exceed 1000")
        predicates = []
        for raw in req.args("filter"):
            for clause in filter(None, raw.split("/")):
                predicates.append(_task_filter(clause))
        order_key, reverse = _task_order(req.arg("orderby"))
        with self._lock:
            tasks = [t for t in self._tasks.values() if t.owner_id == owner.sub]
            tasks = [t for t in tasks if all(p(t) for p in predicates)]
            tasks.sort(key=lambda t: t.seq, reverse=reverse)
            tasks.sort(key=order_key, reverse=reverse)
            page = tasks[offset : offset + limit]
            for task in page:
                self._poll(task)
            docs = [t.document() for t in page]
        return json_response(
            200,
            {
                "DATA_TYPE": "task_list",
                "DATA": docs,
                "length": len(docs),
                "limit": limit,
                "offset": offset,
                "total": len(tasks),
            },
        )

    def _cancel_task(self, req: Request, owner: TokenInfo, task_id: str) -> Response:
        with self._lock:
            task = self._visible_task(owner, task_id)
            if task.final:
                return json_response(
                    200,
                    {
                        "DATA_TYPE": "result",
                        "code": "TaskComplete",
                        "message": f"Can't cancel task {task_id} because it is already complete",
                        "request_id": new_request_id(),
                        "resource": f"/task/{task_id}/cancel",
                    },
                )
            task.status = "FAILED"
            task.fatal_error = {"code": "CANCELED", "description": "canceled"}
            task.completion_time = _now()
            task.event("CANCELED", "canceled", "Task canceled by its owner")
        return json_response(
            200,
            {
                "DATA_TYPE": "result",
                "code": "Canceled",
                "message": "The task has been cancelled successfully.",
                "request_id": new_request_id(),
                "resource": f"/task/{task_id}/cancel",
            },
        )

    def _successful_transfers(self, req: Request, owner: TokenInfo, task_id: str) -> Response:
        raw = req.arg("marker")
        try:
            marker = int(raw) if raw not in (None, "") else 0
        except ValueError:
            raise _BadRequest(f"Invalid marker {raw!r}") from None
        if marker < 0:
            raise _BadRequest(f"Invalid marker {raw!r}")
        size = max(1, int(self.successful_transfers_page_size))
        with self._lock:
            task = self._visible_task(owner, task_id)
            page = [dict(x) for x in task.successful[marker : marker + size]]
            total = len(task.successful)
        next_marker = marker + size if marker + size < total else None
        return json_response(
            200,
            {"DATA_TYPE": "successful_transfers", "marker": marker, "next_marker": next_marker, "DATA": page},
        )

    def _event_list(self, req: Request, owner: TokenInfo, task_id: str) -> Response:
        limit = _int_arg(req, "limit", 10, 1, 1000)
        offset = _int_arg(req, "offset", 0, 0, None)
        with self._lock:
            task = self._visible_task(owner, task_id)
            events = list(reversed(task.events))
        page = events[offset : offset + limit]
        return json_response(
            200,
            {
                "DATA_TYPE": "event_list",
                "DATA": page,
                "length": len(page),
                "limit": limit,
                "offset": offset,
                "total": len(events),
            },
        )

    # ------------------------------------------------------------ operations
    def _get_endpoint(self, req: Request, owner: TokenInfo, cid: str) -> Response:
        return json_response(200, self._collection(cid).document())

    def _op_path(self, coll: Collection, raw: str | None, default: str = "/~/") -> tuple[str, Path]:
        path = raw if raw not in (None, "") else default
        assert path is not None
        _check_path(path, "path")
        local = _local(coll, path)
        if local is None:
            raise _BadRequest(f"Path {path} is outside the collection", "EndpointPermissionDenied", 403)
        return path, local

    def _ls(self, req: Request, owner: TokenInfo, cid: str) -> Response:
        coll = self._collection(cid)
        consent = self._consent_error(req, owner, [coll.id])
        if consent is not None:
            return consent
        path, local = self._op_path(coll, req.arg("path"))
        limit = _int_arg(req, "limit", 100000, 0, 100000)
        offset = _int_arg(req, "offset", 0, 0, None)
        show_hidden = (req.arg("show_hidden") or "1").lower() not in ("0", "false")
        if not local.exists():
            return self._error(
                req,
                404,
                "ClientError.NotFound",
                f"Directory '{path}' not found on endpoint {coll.display_name} ({coll.id})",
            )
        if not local.is_dir():
            return self._error(
                req,
                502,
                "ExternalError.DirListingFailed.NotDirectory",
                f"Path '{path}' on endpoint {coll.display_name} ({coll.id}) is not a directory",
            )
        entries = []
        for child in local.iterdir():
            if not show_hidden and child.name.startswith("."):
                continue
            entries.append(_file_doc(child))
        for raw in req.args("filter"):
            for clause in filter(None, raw.split("/")):
                pred = _ls_filter(clause)
                entries = [e for e in entries if pred(e)]
        entries = _ls_order(entries, req.arg("orderby"))
        page = entries[offset : offset + limit] if limit else []
        home = path in ("~", "~/") or path.startswith("/~")
        absolute = posixpath.normpath(
            "/" + (path[2:] if path.startswith("/~") else path.lstrip("~")).lstrip("/")
        )
        shown = path if home else absolute
        return json_response(
            200,
            {
                "DATA_TYPE": "file_list",
                "DATA": page,
                "absolute_path": posixpath.join(absolute, ""),
                "path": posixpath.join(shown, ""),
                "endpoint": coll.id,
                "length": len(page),
                "total": len(entries),
                "rename_supported": True,
                "symlink_supported": False,
            },
        )

    def _stat(self, req: Request, owner: TokenInfo, cid: str) -> Response:
        coll = self._collection(cid)
        consent = self._consent_error(req, owner, [coll.id])
        if consent is not None:
            return consent
        path, local = self._op_path(coll, req.arg("path"))
        if not local.exists():
            return self._error(
                req,
                404,
                "NotFound",
                f"Path not found, Error (list)\nEndpoint: {coll.display_name} ({coll.id})\n"
                f"Message: No such file or directory\n---\nDetails: Error: '{path}' not found\n",
            )
        return json_response(200, _file_doc(local))

    def _mkdir(self, req: Request, owner: TokenInfo, cid: str) -> Response:
        coll = self._collection(cid)
        consent = self._consent_error(req, owner, [coll.id])
        if consent is not None:
            return consent
        try:
            doc = req.json()
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("Request body is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("DATA_TYPE") != "mkdir":
            raise _BadRequest("Body must be a mkdir document")
        unknown = sorted(set(doc) - {"DATA_TYPE", "path", "local_user"})
        if unknown:
            raise _BadRequest(f"Unknown field(s) in mkdir document: {', '.join(unknown)}")
        if not isinstance(doc.get("path"), str):
            raise _BadRequest("Missing required field 'path'")
        path, local = self._op_path(coll, doc["path"])
        if local.exists():
            return self._error(req, 502, "ExternalError.MkdirFailed.Exists", f"Path already exists: {path}")
        if not local.parent.is_dir():
            return self._error(req, 404, "ClientError.NotFound", f"Parent directory of {path} not found")
        local.mkdir()
        return json_response(
            202,
            {
                "DATA_TYPE": "mkdir_result",
                "code": "DirectoryCreated",
                "message": "The directory was created successfully",
                "request_id": new_request_id(),
                "resource": req.path,
            },
        )

    # ------------------------------------------------------------- execution
    def _finish_failed(self, task: _Task, code: str, description: str, details: str) -> None:
        task.status = "FAILED"
        task.fatal_error = {"code": code, "description": description}
        task.completion_time = _now()
        task.faults += 1
        task.event(code, description, details, is_error=True)

    def _execute(self, task: _Task) -> None:
        """Run a task to completion against the mapped local directories."""
        if task.status != "ACTIVE":
            return
        task.event("STARTED", "started", "Task started")
        if _now() > task.deadline:
            task.status = "FAILED"
            task.fatal_error = {"code": "EXPIRED", "description": "deadline expired"}
            task.completion_time = _now()
            task.event("EXPIRED", "deadline expired", "Task failed to complete before its deadline")
            return
        task.files = 0
        task.directories = 0
        try:
            for item in task.items:
                self._run_item(task, item)
        except _Fatal as fatal:
            self._finish_failed(task, fatal.code, fatal.description, fatal.details)
            return
        task.status = "SUCCEEDED"
        task.nice_status = None
        task.completion_time = _now()
        task.event("SUCCEEDED", "succeeded", "Task completed successfully")

    def _run_item(self, task: _Task, item: dict[str, Any]) -> None:
        src = _local(task.source, item["source_path"])
        dst = _local(task.destination, item["destination_path"])
        if src is None or dst is None:
            raise _Fatal("PERMISSION_DENIED", "Permission denied", "path outside the collection")
        if not item["recursive"]:
            if not src.exists():
                self._source_error(
                    task,
                    "FILE_NOT_FOUND",
                    "file not found",
                    f"{item['source_path']}: No such file or directory",
                )
                return
            if src.is_dir():
                self._source_error(
                    task,
                    "IS_A_DIRECTORY",
                    "is a directory",
                    f"{item['source_path']} is a directory; set recursive",
                )
                return
            self._transfer_file(task, src, dst, item["source_path"], item["destination_path"], item)
            return
        if not src.exists():
            self._source_error(
                task, "FILE_NOT_FOUND", "file not found", f"{item['source_path']}: No such file or directory"
            )
            return
        if not src.is_dir():
            self._source_error(
                task, "NOT_A_DIRECTORY", "not a directory", f"{item['source_path']} is not a directory"
            )
            return
        if dst.exists() and not dst.is_dir():
            raise _Fatal("NOT_A_DIRECTORY", "not a directory", f"{item['destination_path']} is a file")
        task.directories += 1
        dst.mkdir(parents=True, exist_ok=True)
        rules = task.options.get("filter_rules") or []
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            dirnames[:] = [d for d in dirnames if _included(rules, d, "dir")]
            rel_dir = os.path.relpath(dirpath, src)
            for dname in dirnames:
                task.directories += 1
                (dst / rel_dir / dname).mkdir(parents=True, exist_ok=True)
            for fname in sorted(filenames):
                if not _included(rules, fname, "file"):
                    continue
                rel = fname if rel_dir == "." else posixpath.join(rel_dir.replace(os.sep, "/"), fname)
                self._transfer_file(
                    task,
                    Path(dirpath) / fname,
                    dst / rel,
                    posixpath.join(item["source_path"], rel),
                    posixpath.join(item["destination_path"], rel),
                    item,
                )

    def _source_error(self, task: _Task, code: str, description: str, details: str) -> None:
        if task.options.get("skip_source_errors"):
            task.skipped_errors += 1
            task.event("SKIPPED_ERRORS", description, details, is_error=True)
            return
        raise _Fatal(code, description, details)

    def _transfer_file(
        self, task: _Task, src: Path, dst: Path, src_path: str, dst_path: str, item: dict[str, Any]
    ) -> None:
        task.files += 1
        if dst.is_dir():
            raise _Fatal("IS_A_DIRECTORY", "is a directory", f"{dst_path} is a directory on the destination")
        level = task.sync_level
        if dst.exists() and level is not None:
            s_stat, d_stat = src.stat(), dst.stat()
            skip = (
                level == 0
                or (level == 1 and s_stat.st_size == d_stat.st_size)
                or (
                    level == 2
                    and s_stat.st_size == d_stat.st_size
                    and int(s_stat.st_mtime) <= int(d_stat.st_mtime)
                )
                or (level == 3 and _digest(src, "md5") == _digest(dst, "md5"))
            )
            if level == 3:
                task.bytes_checksummed += s_stat.st_size + d_stat.st_size
            if skip:
                task.files_skipped += 1
                return
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        size = dst.stat().st_size
        if task.options.get("preserve_timestamp"):
            st = src.stat()
            os.utime(dst, (st.st_atime, st.st_mtime))
        if item.get("external_checksum"):
            algo = _CHECKSUM_ALGORITHMS[(item.get("checksum_algorithm") or "MD5").upper()]
            task.bytes_checksummed += size
            if _digest(dst, algo) != item["external_checksum"].lower():
                raise _Fatal(
                    "EXTERNAL_CHECKSUM_MISMATCH",
                    "checksum mismatch",
                    f"{dst_path}: checksum does not match external_checksum",
                )
        if task.options.get("verify_checksum") or level == 3:
            task.bytes_checksummed += size
            if _digest(src, "md5") != _digest(dst, "md5"):
                raise _Fatal("VERIFY_CHECKSUM", "checksum verification failed", dst_path)
        task.files_transferred += 1
        task.bytes_transferred += size
        task.successful.append(
            {"DATA_TYPE": "successful_transfer", "source_path": src_path, "destination_path": dst_path}
        )


# ---------------------------------------------------------------- helpers
def _task_link(task_id: str) -> dict[str, str]:
    return {
        "DATA_TYPE": "link",
        "href": f"task/{task_id}?format=json",
        "rel": "related",
        "resource": "task",
        "title": "related task",
    }


def _int_arg(req: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = req.arg(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"Invalid '{name}' parameter {raw!r}: not an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _BadRequest(f"Invalid '{name}' parameter {raw!r}: must be {bound}")
    return value


def _check_path(path: Any, name: str) -> None:
    if not isinstance(path, str) or not path:
        raise _BadRequest(f"'{name}' must be a non-empty string")
    if not (path.startswith("/") or path.startswith("~")):
        raise _BadRequest(f"'{name}' {path!r} must be an absolute path (start with '/' or '/~/')")
    if any(c in path for c in "\x00\r\n"):
        raise _BadRequest(f"'{name}' {path!r} contains an invalid character")


def _local(coll: Collection, path: str) -> Path | None:
    """Map a collection path onto the local root; None if it would escape the root."""
    if path.startswith("/~"):
        rest = path[2:]
    elif path.startswith("~"):
        rest = path[1:]
    else:
        rest = path
    norm = posixpath.normpath("/" + rest.lstrip("/"))
    local = coll.root / norm.lstrip("/") if norm != "/" else coll.root
    resolved = Path(os.path.realpath(local))
    if resolved != coll.root and coll.root not in resolved.parents:
        return None
    return local


def _validate_item(index: int, item: Any) -> dict[str, Any]:
    where = f"DATA[{index}]"
    if not isinstance(item, dict):
        raise _BadRequest(f"{where} must be a transfer_item object")
    if item.get("DATA_TYPE") != "transfer_item":
        raise _BadRequest(f"{where} has DATA_TYPE {item.get('DATA_TYPE')!r}; expected 'transfer_item'")
    unknown = sorted(set(item) - _ITEM_FIELDS)
    if unknown:
        raise _BadRequest(f"Unknown field(s) in {where}: {', '.join(unknown)}")
    for key in ("source_path", "destination_path"):
        if key not in item:
            raise _BadRequest(f"{where} is missing required field {key!r}")
        _check_path(item[key], f"{where}.{key}")
    recursive = item.get("recursive")
    if recursive is not None and not isinstance(recursive, bool):
        raise _BadRequest(f"{where}.recursive must be a boolean")
    checksum = item.get("external_checksum")
    algorithm = item.get("checksum_algorithm")
    if checksum is not None:
        if not isinstance(checksum, str) or not re.fullmatch(r"[0-9a-fA-F]+", checksum):
            raise _BadRequest(f"{where}.external_checksum must be a hex string")
        if recursive:
            raise _BadRequest(f"{where}: external_checksum cannot be used with recursive items")
    if algorithm is not None and (
        not isinstance(algorithm, str) or algorithm.upper() not in _CHECKSUM_ALGORITHMS
    ):
        raise _BadRequest(f"{where}.checksum_algorithm {algorithm!r} is not supported")
    return {
        "source_path": item["source_path"],
        "destination_path": item["destination_path"],
        "recursive": bool(recursive),
        "external_checksum": checksum,
        "checksum_algorithm": algorithm,
    }


def _validate_filter_rules(rules: Any) -> list[dict[str, Any]] | None:
    if rules is None:
        return None
    if not isinstance(rules, list):
        raise _BadRequest("'filter_rules' must be a list")
    out = []
    for i, rule in enumerate(rules):
        where = f"filter_rules[{i}]"
        if not isinstance(rule, dict) or rule.get("DATA_TYPE") != "filter_rule":
            raise _BadRequest(f"{where} must be a filter_rule document")
        unknown = sorted(set(rule) - _FILTER_RULE_FIELDS)
        if unknown:
            raise _BadRequest(f"Unknown field(s) in {where}: {', '.join(unknown)}")
        if rule.get("method") not in ("include", "exclude"):
            raise _BadRequest(f"{where}.method must be 'include' or 'exclude'")
        if not isinstance(rule.get("name"), str) or not rule["name"]:
            raise _BadRequest(f"{where}.name must be a non-empty string")
        if rule.get("type") not in (None, "file", "dir"):
            raise _BadRequest(f"{where}.type must be 'file' or 'dir'")
        out.append(
            {
                "DATA_TYPE": "filter_rule",
                "method": rule["method"],
                "name": rule["name"],
                "type": rule.get("type"),
            }
        )
    return out


def _included(rules: list[dict[str, Any]], name: str, kind: str) -> bool:
    for rule in rules:
        if rule["type"] not in (None, kind):
            continue
        if fnmatch.fnmatchcase(name, rule["name"]):
            return rule["method"] == "include"
    return True


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_doc(path: Path) -> dict[str, Any]:
    st = path.lstat()
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    return {
        "DATA_TYPE": "file",
        "name": path.name,
        "type": "dir" if is_dir else "file",
        "size": st.st_size,
        "last_modified": _ls_time(st.st_mtime),
        "permissions": format(stat_mod.S_IMODE(st.st_mode), "04o"),
        "user": "portal",
        "group": "portal",
        "link_target": None,
        "link_group": None,
        "link_last_modified": None,
        "link_size": None,
        "link_user": None,
    }


def _parse_time_range(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    start, _, end = value.partition(",")

    def parse(v: str) -> dt.datetime | None:
        v = v.strip()
        if not v:
            return None
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            raise _BadRequest(f"Invalid date {v!r} in filter") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    return parse(start), parse(end)


def _task_filter(clause: str):
    key, sep, value = clause.partition(":")
    if not sep:
        raise _BadRequest(f"Invalid filter clause {clause!r}; expected field:value")
    if key == "task_id":
        ids = {v.strip().lower() for v in value.split(",") if v.strip()}
        for tid in ids:
            if not _UUID_RE.match(tid):
                raise _BadRequest(f"Invalid task_id {tid!r} in filter")
        return lambda t: t.task_id in ids
    if key == "status":
        statuses = {v.strip().upper() for v in value.split(",") if v.strip()}
        bad = statuses - set(TASK_STATUSES)
        if bad:
            raise _BadRequest(f"Invalid status value(s) in filter: {', '.join(sorted(bad))}")
        return lambda t: t.status in statuses
    if key == "type":
        types = {v.strip().upper() for v in value.split(",") if v.strip()}
        if types - {"TRANSFER", "DELETE"}:
            raise _BadRequest(f"Invalid type value in filter: {value!r}")
        return lambda t: "TRANSFER" in types
    if key == "label":
        if value.startswith("~"):
            needle = value[1:].lower()
            return lambda t: bool(t.label) and needle in t.label.lower()
        return lambda t: t.label == value
    if key in ("request_time", "completion_time"):
        start, end = _parse_time_range(value)

        def in_range(t: _Task) -> bool:
            when = getattr(t, key)
            if when is None:
                return False
            return (start is None or when >= start) and (end is None or when <= end)

        return in_range
    raise _BadRequest(f"Invalid filter field {key!r} for task_list")


def _task_order(orderby: str | None):
    if not orderby:
        return (lambda t: t.request_time), True
    parts = orderby.split(",")[0].split()
    field_name = parts[0]
    direction = parts[1].upper() if len(parts) > 1 else "ASC"
    if direction not in ("ASC", "DESC"):
        raise _BadRequest(f"Invalid orderby direction {direction!r}")
    keys = {
        "request_time": lambda t: t.request_time,
        "completion_time": lambda t: t.completion_time or dt.datetime.max.replace(tzinfo=dt.UTC),
        "label": lambda t: t.label or "",
        "status": lambda t: t.status,
    }
    if field_name not in keys:
        raise _BadRequest(f"Invalid orderby field {field_name!r}")
    return keys[field_name], direction == "DESC"


def _ls_filter(clause: str):
    key, sep, value = clause.partition(":")
    if not sep:
        raise _BadRequest(f"Invalid filter clause {clause!r}; expected field:value")
    if key == "type":
        kinds = set(value.split(","))
        if kinds - {"file", "dir", "symlink"}:
            raise _BadRequest(f"Invalid type filter {value!r}")
        return lambda e: e["type"] in kinds
    if key == "name":
        if value.startswith("~"):
            pattern = value[1:]
            return lambda e: fnmatch.fnmatchcase(e["name"], pattern)
        if value.startswith("!~"):
            pattern = value[2:]
            return lambda e: not fnmatch.fnmatchcase(e["name"], pattern)
        if value.startswith("="):
            value = value[1:]
        names = set(value.split(","))
        return lambda e: e["name"] in names
    raise _BadRequest(f"Invalid filter field {key!r} for ls")


def _ls_order(entries: list[dict[str, Any]], orderby: str | None) -> list[dict[str, Any]]:
    specs = [s.strip() for s in (orderby or "name ASC").split(",") if s.strip()]
    for spec in reversed(specs):
        parts = spec.split()
        name = parts[0]
        desc = len(parts) > 1 and parts[1].upper() == "DESC"
        if name not in ("name", "type", "size", "last_modified", "permissions"):
            raise _BadRequest(f"Invalid orderby field {name!r}")
        entries = sorted(entries, key=lambda e, n=name: e[n], reverse=desc)
    return entries


__all__ = ["API", "Collection", "FakeGlobusTransfer", "SYNC_LEVELS"]
