"""The loopback Globus fakes, driven by the real globus-sdk.

No Django and no database here: these tests prove that the fakes answer the
SDK the way Globus Auth and Globus Transfer do, so the portal's own tests can
rely on them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import globus_sdk
import pytest
import requests

from tests.fakes import (
    TRANSFER_SCOPE,
    FakeGlobusAuth,
    FakeGlobusTransfer,
    FakeIdentity,
    transfer_scope_with_data_access,
)

pytestmark = []

CLIENT_ID = "0c7a8f4e-3b1d-4a54-9f3e-7d2c1b6a5e10"
CLIENT_SECRET = "portal-client-secret"
REDIRECT_URI = "http://127.0.0.1:8000/accounts/globus/login/callback/"
ARCHIVE = "5b875fda-4185-11e8-bb52-0ac6873fc732"
LOCAL = "0a6e3c5e-9a2f-4c1e-8d3b-1f2e3d4c5b6a"
LOGIN_SCOPES = ["openid", "profile", "email", TRANSFER_SCOPE]


# --------------------------------------------------------------------- fixtures
@pytest.fixture
def auth():
    fake = FakeGlobusAuth(
        clients={CLIENT_ID: CLIENT_SECRET},
        identities=[
            FakeIdentity("ada@janelia.org", name="Ada Lovelace", groups=["svoboda-lab"]),
            "grace@janelia.org",
        ],
    )
    with fake:
        yield fake


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    return {"local": tmp_path / "local", "archive": tmp_path / "archive"}


@pytest.fixture
def transfer(auth, roots):
    fake = FakeGlobusTransfer(
        auth=auth,
        collections={LOCAL: roots["local"], ARCHIVE: roots["archive"]},
        display_names={ARCHIVE: "petrel archive"},
        successful_transfers_page_size=7,
    )
    with fake:
        yield fake


@pytest.fixture
def env(monkeypatch, auth, transfer):
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", auth.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_GROUPS", auth.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", transfer.url)


def login(scopes=LOGIN_SCOPES, offline=True, state="s-123"):
    """Run the browser half of the code grant with plain HTTP and exchange the code."""
    client = globus_sdk.ConfidentialAppAuthClient(CLIENT_ID, CLIENT_SECRET)
    client.oauth2_start_flow(REDIRECT_URI, requested_scopes=scopes, refresh_tokens=offline, state=state)
    resp = requests.get(client.oauth2_get_authorize_url(), allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [state]
    tokens = client.oauth2_exchange_code_for_tokens(query["code"][0])
    return client, tokens, query["code"][0]


def user_transfer_client(client, tokens, on_refresh=None) -> globus_sdk.TransferClient:
    data = tokens.by_resource_server["transfer.api.globus.org"]
    authorizer = globus_sdk.RefreshTokenAuthorizer(
        data["refresh_token"],
        client,
        access_token=data["access_token"],
        expires_at=data["expires_at_seconds"],
        on_refresh=on_refresh,
    )
    return globus_sdk.TransferClient(authorizer=authorizer)


@pytest.fixture
def tc(env):
    client, tokens, _code = login()
    return user_transfer_client(client, tokens)


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def strip_missing(value):
    """A plain JSON-able copy of an SDK payload (what the SDK would send)."""
    if isinstance(value, dict):
        return {k: strip_missing(v) for k, v in value.items() if v is not globus_sdk.MISSING}
    if isinstance(value, list):
        return [strip_missing(v) for v in value]
    return value


def submit(tc, src=LOCAL, dst=ARCHIVE, items=(("/a.bin", "/a.bin"),), **kwargs):
    tdata = globus_sdk.TransferData(src, dst, **kwargs)
    for source_path, destination_path in items:
        tdata.add_item(source_path, destination_path)
    return tc.submit_transfer(tdata)


# ------------------------------------------------------------------------- auth
def test_code_exchange_gives_transfer_token_in_other_tokens(env, auth):
    client, tokens, code = login()

    assert tokens["resource_server"] == "auth.globus.org"
    assert set(tokens["scope"].split()) == {"openid", "profile", "email"}
    assert [t["resource_server"] for t in tokens["other_tokens"]] == ["transfer.api.globus.org"]
    transfer_tok = tokens.by_resource_server["transfer.api.globus.org"]
    assert transfer_tok["scope"] == TRANSFER_SCOPE
    assert transfer_tok["refresh_token"]
    assert tokens["other_tokens"][0]["expires_in"] == 172800
    assert tokens["other_tokens"][0]["token_type"] == "Bearer"

    # the id_token is RS512-signed and verifiable through the OIDC config + JWK
    claims = tokens.decode_id_token()
    assert claims["preferred_username"] == "ada@janelia.org"
    assert claims["aud"] == CLIENT_ID

    # userinfo (what allauth's Globus provider reads)
    auth_token = tokens.by_resource_server["auth.globus.org"]["access_token"]
    info = globus_sdk.AuthClient(authorizer=globus_sdk.AccessTokenAuthorizer(auth_token)).userinfo()
    assert info["sub"] == auth.identity("ada@janelia.org").sub
    assert info["preferred_username"] == "ada@janelia.org"
    assert info["name"] == "Ada Lovelace"
    assert info["email"] == "ada@janelia.org"
    assert info["identity_provider_display_name"] == "janelia.org"

    # codes are single use
    with pytest.raises(globus_sdk.AuthAPIError) as excinfo:
        client.oauth2_exchange_code_for_tokens(code)
    assert excinfo.value.http_status == 400
    assert excinfo.value.raw_json["error"] == "invalid_grant"

    # the authorize request and issued tokens are visible to tests
    assert auth.authorize_requests[-1]["access_type"] == "offline"
    assert any(t["resource_server"] == "transfer.api.globus.org" for t in auth.issued_tokens)
    token_calls = auth.requests_to("/v2/oauth2/token", "POST")
    assert token_calls and token_calls[0]["body"]["code"] == "***"
    assert token_calls[0]["auth"] == f"Basic {CLIENT_ID}"
    assert "authorization" not in token_calls[0]["headers"]


def test_authorize_rejects_bad_requests(env, auth):
    base = auth.url + "v2/oauth2/authorize"
    good = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid " + TRANSFER_SCOPE,
        "response_type": "code",
        "state": "x",
    }
    for change, needle in [
        ({"client_id": "nope"}, "Unknown client_id"),
        ({"response_type": "token"}, "response_type"),
        ({"scope": "openid urn:globus:auth:scope:nowhere.example.org:all"}, "Unknown scope"),
        ({"scope": "openid " + TRANSFER_SCOPE + "[oops"}, "Malformed scope"),
        ({"redirect_uri": "ftp://example"}, "redirect_uri"),
    ]:
        resp = requests.get(base, params={**good, **change}, allow_redirects=False, timeout=10)
        assert resp.status_code == 400, change
        assert needle in resp.text
    auth.deny_next_login()
    resp = requests.get(base, params=good, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["error"] == ["access_denied"]


def test_login_as_selects_identity(env, auth):
    auth.login_as("grace@janelia.org")
    _client, tokens, _code = login()
    assert tokens.decode_id_token()["preferred_username"] == "grace@janelia.org"
    auth.login_as("new.person@lab.org")
    _client, tokens, _code = login(scopes=["openid", "email"])
    claims = tokens.decode_id_token()
    assert claims["email"] == "new.person@lab.org"
    assert "preferred_username" not in claims  # no profile scope, no profile claims


def test_allauth_style_exchange_with_secret_in_body(env, auth):
    """allauth posts client_id/client_secret in the form and calls userinfo with
    both a Bearer header and an access_token query parameter."""
    resp = requests.get(
        auth.url + "v2/oauth2/authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile offline_access email",
            "response_type": "code",
            "state": "abc",
        },
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    token = requests.post(
        auth.url + "v2/oauth2/token",
        data={
            "redirect_uri": REDIRECT_URI,
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=10,
    )
    assert token.status_code == 200
    assert token.headers["content-type"] == "application/json"
    access = token.json()["access_token"]
    assert "refresh_token" not in token.json()  # no access_type=offline asked
    info = requests.get(
        auth.url + "v2/oauth2/userinfo",
        params={"access_token": access},
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    ).json()
    assert info["preferred_username"] == "ada@janelia.org"

    bad = requests.post(
        auth.url + "v2/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, "wrong"),
        timeout=10,
    )
    assert bad.status_code == 401
    assert bad.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_refresh_works_then_fails_after_revoke(env, auth, transfer):
    client, tokens, _code = login()
    refreshed = []
    tc = user_transfer_client(client, tokens, on_refresh=refreshed.append)
    assert tc.task_list()["DATA"] == []

    # an expired access token gets a 401; the SDK refreshes and retries
    assert auth.expire_access_tokens() >= 1
    assert tc.task_list()["total"] == 0
    assert len(refreshed) == 1
    new = refreshed[0].by_resource_server["transfer.api.globus.org"]
    assert new["refresh_token"] == tokens.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    assert transfer.calls("/task_list") == 3  # ok, 401, retried ok
    assert [r["status"] for r in transfer.requests_to("/task_list")] == [200, 401, 200]

    auth.revoke_all("ada@janelia.org")
    rt = tokens.by_resource_server["transfer.api.globus.org"]["refresh_token"]
    with pytest.raises(globus_sdk.AuthAPIError) as excinfo:
        client.oauth2_refresh_token(rt)
    assert excinfo.value.http_status == 400
    assert excinfo.value.raw_json == {"error": "invalid_grant"}
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        globus_sdk.TransferClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(new["access_token"])
        ).task_list()
    assert excinfo.value.http_status == 401
    assert excinfo.value.code == "AuthenticationFailed"


def test_revoke_endpoint_and_introspect(env, auth):
    client, tokens, _code = login()
    transfer_tok = tokens.by_resource_server["transfer.api.globus.org"]
    assert client.oauth2_token_introspect(transfer_tok["access_token"])["active"] is True
    client.oauth2_revoke_token(transfer_tok["refresh_token"])
    assert client.oauth2_token_introspect(transfer_tok["access_token"])["active"] is False
    with pytest.raises(globus_sdk.AuthAPIError):
        client.oauth2_refresh_token(transfer_tok["refresh_token"])


def test_client_credentials_and_groups(env, auth, transfer, roots):
    client = globus_sdk.ConfidentialAppAuthClient(CLIENT_ID, CLIENT_SECRET)
    tokens = client.oauth2_client_credentials_tokens(TRANSFER_SCOPE)
    assert tokens["resource_server"] == "transfer.api.globus.org"
    assert tokens["other_tokens"] == []
    assert "refresh_token" not in tokens
    service_tc = globus_sdk.TransferClient(
        authorizer=globus_sdk.ClientCredentialsAuthorizer(client, TRANSFER_SCOPE)
    )
    write(roots["local"] / "a.bin", b"x")
    task_id = submit(service_tc)["task_id"]

    # a user does not see the portal identity's tasks
    user_client, user_tokens, _code = login(
        scopes=["openid", "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"]
    )
    user_tc = user_transfer_client(*login()[:2])
    assert user_tc.task_list()["total"] == 0
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        user_tc.get_task(task_id)
    assert excinfo.value.http_status == 404
    assert service_tc.get_task(task_id)["status"] == "ACTIVE"

    groups_token = user_tokens.by_resource_server["groups.api.globus.org"]["access_token"]
    groups = globus_sdk.GroupsClient(authorizer=globus_sdk.AccessTokenAuthorizer(groups_token))
    assert [g["name"] for g in groups.get_my_groups()] == ["svoboda-lab"]

    with pytest.raises(globus_sdk.AuthAPIError) as excinfo:
        client.oauth2_client_credentials_tokens("urn:globus:auth:scope:nope.example.org:all")
    assert excinfo.value.raw_json["error"] == "invalid_scope"


# --------------------------------------------------------------------- transfer
def test_sdk_paths_carry_the_api_version(tc, transfer):
    tc.get_submission_id()
    assert transfer.requests[-1]["path"] == "/v0.10/submission_id"
    assert transfer.calls("/submission_id") == 1 == transfer.calls("/v0.10/submission_id")


@pytest.mark.parametrize(
    ("mutate", "code", "needle"),
    [
        (
            lambda d: d.update(bogus=1),
            "ClientError.BadRequest",
            "Unknown field(s) in transfer document: bogus",
        ),
        (lambda d: d["DATA"][0].update(source_path="relative/a.bin"), "ClientError.BadRequest", "absolute"),
        (lambda d: d["DATA"][0].update(extra=True), "ClientError.BadRequest", "Unknown field(s) in DATA[0]"),
        (lambda d: d["DATA"][0].update(DATA_TYPE="delete_item"), "ClientError.BadRequest", "transfer_item"),
        (lambda d: d.update(label="x" * 129), "ClientError.BadRequest", "maximum is 128"),
        (lambda d: d.update(label="two\nlines"), "ClientError.BadRequest", "newline"),
        (lambda d: d.update(sync_level="sometimes"), "ClientError.BadRequest", "sync_level"),
        (lambda d: d.update(sync_level=7), "ClientError.BadRequest", "sync_level"),
        (lambda d: d.update(verify_checksum="yes"), "ClientError.BadRequest", "boolean"),
        (lambda d: d.update(deadline="tomorrow"), "ClientError.BadRequest", "ISO 8601"),
        (lambda d: d.update(deadline="2001-01-01T00:00:00+00:00"), "ClientError.BadRequest", "past"),
        (lambda d: d.update(DATA=[]), "ClientError.BadRequest.NoTransferItems", "at least one item"),
        (lambda d: d.update(DATA_TYPE="delete"), "ClientError.BadRequest", "DATA_TYPE"),
        (lambda d: d.update(submission_id=str(uuid.uuid4())), "ClientError.BadRequest", "submission_id"),
        (lambda d: d.update(destination_endpoint="not-a-uuid"), "ClientError.BadRequest", "UUID"),
        (
            lambda d: d.update(destination_endpoint=str(uuid.uuid4())),
            "ClientError.NotFound",
            "does not exist",
        ),
    ],
)
def test_submit_rejects_bad_documents(tc, transfer, mutate, code, needle):
    tdata = globus_sdk.TransferData(LOCAL, ARCHIVE, label="ok", sync_level="checksum", verify_checksum=True)
    tdata.add_item("/a.bin", "/a.bin")
    doc = strip_missing(tdata)
    doc["submission_id"] = tc.get_submission_id()["value"]
    mutate(doc)
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        tc.submit_transfer(doc)
    err = excinfo.value
    assert err.code == code
    assert needle in err.message
    assert err.http_status in (400, 404)
    assert transfer.tasks == []


def test_duplicate_submission_id_creates_no_second_task(tc, transfer, roots):
    write(roots["local"] / "a.bin", b"raw")
    submission_id = tc.get_submission_id()["value"]
    first = submit(tc, submission_id=submission_id, label="dl59 2019-07-31")
    assert first.http_status == 202
    assert first["code"] == "Accepted"
    assert first["DATA_TYPE"] == "transfer_result"
    assert first["submission_id"] == submission_id
    assert first["resource"] == "/transfer"
    second = submit(tc, submission_id=submission_id, label="dl59 2019-07-31")
    assert second["code"] == "Duplicate"
    assert second["task_id"] == first["task_id"]
    assert len(transfer.tasks) == 1


def test_task_list_filter_and_paging(tc, transfer, roots):
    write(roots["local"] / "a.bin", b"raw")
    ids = [submit(tc, label=f"job {i}")["task_id"] for i in range(5)]
    transfer.run_tasks(ids[0])

    got = tc.task_list(filter={"task_id": [ids[1], ids[3]]})
    assert sorted(t["task_id"] for t in got) == sorted([ids[1], ids[3]])
    assert transfer.requests[-1]["query"]["filter"] == f"task_id:{ids[1]},{ids[3]}"
    doc = got["DATA"][0]
    for key in (
        "task_id",
        "status",
        "nice_status",
        "label",
        "files",
        "files_transferred",
        "files_skipped",
        "bytes_transferred",
        "faults",
        "subtasks_total",
        "subtasks_succeeded",
        "request_time",
        "completion_time",
        "source_endpoint_id",
        "destination_endpoint_id",
        "deadline",
        "sync_level",
        "verify_checksum",
        "fatal_error",
    ):
        assert key in doc

    active = tc.task_list(filter=f"task_id:{','.join(ids)}/status:ACTIVE")
    assert {t["task_id"] for t in active} == set(ids[1:])
    done = tc.task_list(filter={"status": "SUCCEEDED"})
    assert [t["task_id"] for t in done] == [ids[0]]

    page = tc.task_list(limit=2, offset=2)
    assert (page["length"], page["limit"], page["offset"], page["total"]) == (2, 2, 2, 5)
    everything = list(tc.paginated.task_list(limit=2).items())
    assert len(everything) == 5

    for bad in ("owner:me", "status:DONE", "task_id:not-a-uuid"):
        with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
            tc.task_list(filter=bad)
        assert excinfo.value.http_status == 400
    with pytest.raises(globus_sdk.TransferAPIError):
        tc.task_list(limit=1001)


def test_successful_transfers_walks_every_page(tc, transfer, roots):
    for i in range(25):
        write(roots["local"] / "dl59" / "catgt_dl59_073119_g0" / f"f{i:02d}.ap.bin", b"%d" % i)
    tdata = globus_sdk.TransferData(
        LOCAL, ARCHIVE, label="session", sync_level="checksum", verify_checksum=True
    )
    tdata.add_item("/dl59/catgt_dl59_073119_g0", "/ePhys/dl59/catgt_dl59_073119_g0", recursive=True)
    task_id = tc.submit_transfer(tdata)["task_id"]
    assert list(tc.task_successful_transfers(task_id)) == []
    transfer.reset_requests()
    transfer.run_tasks()

    task = tc.get_task(task_id)
    assert task["status"] == "SUCCEEDED"
    assert task["files_transferred"] == 25
    assert task["nice_status"] is None
    entries = list(tc.paginated.task_successful_transfers(task_id).items())
    assert len(entries) == 25
    assert entries[0] == {
        "DATA_TYPE": "successful_transfer",
        "source_path": "/dl59/catgt_dl59_073119_g0/f00.ap.bin",
        "destination_path": "/ePhys/dl59/catgt_dl59_073119_g0/f00.ap.bin",
    }
    assert transfer.calls(f"/task/{task_id}/successful_transfers") == 4  # 7 + 7 + 7 + 4
    first = tc.task_successful_transfers(task_id)
    assert (first["marker"], first["next_marker"]) == (0, 7)
    assert (roots["archive"] / "ePhys/dl59/catgt_dl59_073119_g0/f24.ap.bin").read_bytes() == b"24"


def test_cancel(tc, transfer, roots):
    write(roots["local"] / "a.bin", b"raw")
    task_id = submit(tc)["task_id"]
    result = tc.cancel_task(task_id)
    assert result["code"] == "Canceled"
    task = tc.get_task(task_id)
    assert task["status"] == "FAILED"
    assert task["fatal_error"] == {"code": "CANCELED", "description": "canceled"}
    assert task["completion_time"]
    assert tc.cancel_task(task_id)["code"] == "TaskComplete"
    assert transfer.run_tasks() == []
    assert not (roots["archive"] / "a.bin").exists()
    events = tc.task_event_list(task_id)
    assert events["DATA"][0]["code"] == "CANCELED"


def test_ls_paging_and_missing_path(tc, transfer, roots):
    for name in ("c.avi", "a.avi", "b.avi", ".hidden"):
        write(roots["archive"] / "Videos" / "dl59" / "20190731" / "video" / name, b"v" * 3)
    path = "/Videos/dl59/20190731/video/"
    listing = tc.operation_ls(ARCHIVE, path=path, show_hidden=False)
    assert [e["name"] for e in listing] == ["a.avi", "b.avi", "c.avi"]
    entry = listing["DATA"][0]
    assert entry["type"] == "file" and entry["size"] == 3 and entry["DATA_TYPE"] == "file"
    assert len(entry["last_modified"]) == len("2019-07-31 12:00:00+00:00")
    assert entry["last_modified"].endswith("+00:00")
    assert listing["path"] == path and listing["total"] == 3

    pages, offset = [], 0
    while True:
        page = tc.operation_ls(ARCHIVE, path=path, limit=2, offset=offset)
        pages.append([e["name"] for e in page])
        offset += page["length"]
        if offset >= page["total"]:
            break
    assert pages == [[".hidden", "a.avi"], ["b.avi", "c.avi"]]
    top = tc.operation_ls(ARCHIVE, path="/Videos/")
    assert [(e["name"], e["type"]) for e in top] == [("dl59", "dir")]

    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        tc.operation_ls(ARCHIVE, path="/Videos/nope/")
    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "ClientError.NotFound"
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        tc.operation_ls(ARCHIVE, path="Videos")
    assert excinfo.value.http_status == 400
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        tc.operation_ls(ARCHIVE, path="/../../etc/")
    assert excinfo.value.http_status == 404  # normalised to /etc inside the collection

    assert tc.operation_stat(ARCHIVE, path + "a.avi")["size"] == 3
    tc.operation_mkdir(ARCHIVE, "/Videos/new")
    assert (roots["archive"] / "Videos/new").is_dir()
    assert tc.get_endpoint(ARCHIVE)["display_name"] == "petrel archive"


def test_injected_503_surfaces_as_api_error(tc, transfer):
    transfer.fail_next(1, status=503, path_contains="task_list")
    assert tc.task_list()["total"] == 0  # the SDK retried once by itself
    assert [r["status"] for r in transfer.requests_to("/task_list")] == [503, 200]

    transfer.fail_next(1, status=503)
    with tc.retry_config.tune(max_retries=0), pytest.raises(globus_sdk.GlobusAPIError) as excinfo:
        tc.task_list()
    assert excinfo.value.http_status == 503
    assert excinfo.value.code == "ServiceUnavailable"

    transfer.drop_next(1)
    with tc.retry_config.tune(max_retries=0), pytest.raises(globus_sdk.GlobusConnectionError):
        tc.get_submission_id()
    assert tc.get_submission_id()["value"]


def test_files_are_copied_and_sync_levels_honoured(tc, transfer, roots):
    write(roots["local"] / "s1/a.ap.bin", b"A" * 1000)
    write(roots["local"] / "s1/b.ap.meta", b"meta")
    task_id = submit(
        tc,
        items=[("/s1/a.ap.bin", "/ePhys/s1/a.ap.bin"), ("/s1/b.ap.meta", "/ePhys/s1/b.ap.meta")],
        sync_level="checksum",
        verify_checksum=True,
        label="archive s1",
    )["task_id"]
    assert tc.get_task(task_id)["status"] == "ACTIVE"
    transfer.run_tasks()
    task = tc.get_task(task_id)
    assert (task["status"], task["files_transferred"], task["bytes_transferred"]) == ("SUCCEEDED", 2, 1004)
    archived = roots["archive"] / "ePhys/s1/a.ap.bin"
    assert hashlib.md5(archived.read_bytes()).hexdigest() == hashlib.md5(b"A" * 1000).hexdigest()

    # retrieval never overwrites: sync_level=exists skips what is there
    write(roots["local"] / "back/a.ap.bin", b"local edit")
    task_id = submit(
        tc,
        src=ARCHIVE,
        dst=LOCAL,
        items=[("/ePhys/s1/a.ap.bin", "/back/a.ap.bin"), ("/ePhys/s1/b.ap.meta", "/back/b.ap.meta")],
        sync_level="exists",
    )["task_id"]
    transfer.run_tasks()
    task = tc.get_task(task_id)
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)
    assert (roots["local"] / "back/a.ap.bin").read_bytes() == b"local edit"
    assert [e["destination_path"] for e in tc.task_successful_transfers(task_id)] == ["/back/b.ap.meta"]

    # checksum sync re-sends only changed content
    write(roots["local"] / "s1/b.ap.meta", b"meta v2")
    task_id = submit(
        tc,
        items=[("/s1/a.ap.bin", "/ePhys/s1/a.ap.bin"), ("/s1/b.ap.meta", "/ePhys/s1/b.ap.meta")],
        sync_level="checksum",
    )["task_id"]
    transfer.run_tasks()
    task = tc.get_task(task_id)
    assert (task["files_transferred"], task["files_skipped"]) == (1, 1)

    # a missing source file fails the task with a fault
    task_id = submit(tc, items=[("/s1/missing.bin", "/ePhys/s1/missing.bin")])["task_id"]
    transfer.run_tasks()
    task = tc.get_task(task_id)
    assert task["status"] == "FAILED"
    assert task["fatal_error"]["code"] == "FILE_NOT_FOUND"
    assert task["faults"] == 1


def test_auto_complete_after_polls(tc, transfer, roots):
    transfer.auto_complete_after_polls = 3
    write(roots["local"] / "a.bin", b"raw")
    task_id = submit(tc)["task_id"]
    statuses = [tc.get_task(task_id)["status"] for _ in range(3)]
    assert statuses == ["ACTIVE", "ACTIVE", "SUCCEEDED"]
    assert (roots["archive"] / "a.bin").read_bytes() == b"raw"


def test_auto_complete_after_seconds(tc, transfer, roots):
    transfer.auto_complete_after_seconds = 0.2
    write(roots["local"] / "a.bin", b"raw")
    task_id = submit(tc)["task_id"]
    assert tc.get_task(task_id)["status"] == "ACTIVE"
    time.sleep(0.3)
    assert tc.get_task(task_id)["status"] == "SUCCEEDED"


def test_concurrent_submits_with_one_submission_id_make_one_task(env, transfer, roots):
    """Several workers retrying the same submission at once still create one task."""
    client, tokens, _code = login()
    write(roots["local"] / "a.bin", b"raw")
    submission_id = user_transfer_client(client, tokens).get_submission_id()["value"]
    results, errors = [], []

    def worker():
        try:
            tc = user_transfer_client(client, tokens)
            results.append(submit(tc, submission_id=submission_id).data)
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(r["code"] for r in results) == ["Accepted"] + ["Duplicate"] * 7
    assert len({r["task_id"] for r in results}) == 1
    assert len(transfer.tasks) == 1


def test_consent_required_until_data_access_granted(env, auth, transfer, roots):
    transfer.require_consent(ARCHIVE)
    client, tokens, _code = login()
    tc = user_transfer_client(client, tokens)
    write(roots["local"] / "a.bin", b"raw")

    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        submit(tc)
    err = excinfo.value
    assert err.http_status == 403
    assert err.code == "ConsentRequired"
    assert err.info.consent_required
    assert err.info.consent_required.required_scopes == [transfer_scope_with_data_access(ARCHIVE)]
    assert (
        f"https://auth.globus.org/scopes/{ARCHIVE}/data_access"
        in err.info.consent_required.required_scopes[0]
    )
    with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
        tc.operation_ls(ARCHIVE, path="/")
    assert excinfo.value.code == "ConsentRequired"
    assert transfer.tasks == []
    tc.operation_ls(LOCAL, path="/")  # other collections are unaffected

    # log in again asking for the scope the error named
    scopes = ["openid", "profile", "email", *err.info.consent_required.required_scopes]
    client, tokens, _code = login(scopes=scopes)
    assert tokens.by_resource_server["transfer.api.globus.org"]["scope"] == TRANSFER_SCOPE
    tc = user_transfer_client(client, tokens)
    assert submit(tc)["code"] == "Accepted"
    assert tc.operation_ls(ARCHIVE, path="/")["DATA"] == []
    assert ARCHIVE in auth.consents("ada@janelia.org", CLIENT_ID)


def test_transfer_requires_a_transfer_token(env, auth, transfer):
    _client, tokens, _code = login()
    auth_only = tokens.by_resource_server["auth.globus.org"]["access_token"]
    for authorizer in (globus_sdk.AccessTokenAuthorizer(auth_only), globus_sdk.NullAuthorizer()):
        with pytest.raises(globus_sdk.TransferAPIError) as excinfo:
            globus_sdk.TransferClient(authorizer=authorizer).task_list()
        assert excinfo.value.http_status == 401
        assert excinfo.value.code == "AuthenticationFailed"


def test_command_line_runs_both_fakes(tmp_path):
    archive = tmp_path / "archive"
    write(archive / "ePhys" / "x.bin", b"x")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes",
            "--collection",
            f"{ARCHIVE}={archive}",
            "--client",
            f"{CLIENT_ID}:{CLIENT_SECRET}",
            "--identity",
            "ada@janelia.org",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        urls = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if line == "READY" or not line:
                break
            key, _, value = line.partition("=")
            urls[key] = value
        assert set(urls) == {
            "GLOBUS_SDK_SERVICE_URL_AUTH",
            "GLOBUS_SDK_SERVICE_URL_GROUPS",
            "GLOBUS_SDK_SERVICE_URL_TRANSFER",
        }
        client = globus_sdk.ConfidentialAppAuthClient(
            CLIENT_ID, CLIENT_SECRET, base_url=urls["GLOBUS_SDK_SERVICE_URL_AUTH"]
        )
        tokens = client.oauth2_client_credentials_tokens(TRANSFER_SCOPE)
        tc = globus_sdk.TransferClient(
            base_url=urls["GLOBUS_SDK_SERVICE_URL_TRANSFER"],
            authorizer=globus_sdk.AccessTokenAuthorizer(tokens["access_token"]),
        )
        assert [e["name"] for e in tc.operation_ls(ARCHIVE, path="/ePhys/")] == ["x.bin"]
        control = requests.post(
            urls["GLOBUS_SDK_SERVICE_URL_TRANSFER"] + "_fake/run_tasks", json={}, timeout=10
        )
        assert control.json() == {"ran": []}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == 0
