"""A strict loopback fake of Globus Auth (and the small part of Globus Groups
the portal may read), for ``GLOBUS_SDK_SERVICE_URL_AUTH``.

Serves what globus-sdk's ``ConfidentialAppAuthClient`` / ``AuthClient`` and
django-allauth's Globus provider send:

* ``GET  /v2/oauth2/authorize``            browser step of the code grant (302 back)
* ``POST /v2/oauth2/token``                authorization_code, refresh_token,
                                           client_credentials
* ``GET|POST /v2/oauth2/userinfo``         OIDC userinfo (Bearer, auth.globus.org token)
* ``POST /v2/oauth2/token/revoke``         revocation
* ``POST /v2/oauth2/token/introspect``     introspection
* ``GET  /.well-known/openid-configuration`` and ``GET /jwk.json`` (id_token checks)
* ``GET  /v2/api/identities``              identity lookup by ids / usernames
* ``GET  /v2/groups/my_groups``            Globus Groups, when
                                           ``GLOBUS_SDK_SERVICE_URL_GROUPS`` points here

Tokens are opaque random strings. The transfer token comes back in
``other_tokens`` exactly as the real service sends it. GCSv5 ``data_access``
consents are tracked per (identity, client) and stamped on every access token
issued afterwards, which is what ``FakeGlobusTransfer`` checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._http import (
    FakeService,
    Request,
    Response,
    json_response,
    new_request_id,
    redirect_response,
    text_response,
)

AUTH_RS = "auth.globus.org"
TRANSFER_RS = "transfer.api.globus.org"
GROUPS_RS = "groups.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
GROUPS_SCOPE = "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
VIEW_IDENTITY_SET = "urn:globus:auth:scope:auth.globus.org:view_identity_set"
OIDC_SCOPES = ("openid", "profile", "email")

# scope names each well-known resource server offers
_KNOWN_SCOPE_NAMES = {
    AUTH_RS: {"openid", "profile", "email", "view_identity_set", "view_identities"},
    TRANSFER_RS: {"all"},
    GROUPS_RS: {"all", "view_my_groups_and_memberships"},
}
_COLLECTION_SCOPE_NAMES = {"data_access", "https", "manage_collections"}
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IDENTITY_NS = uuid.UUID("5b0b4a1e-5f43-4a59-9a5c-0c1f2c7e3a10")

ACCESS_TOKEN_LIFETIME = 172800  # seconds, what Globus Auth issues
CODE_LIFETIME = 600


def data_access_scope(collection_id: str | uuid.UUID) -> str:
    """The GCSv5 mapped collection consent scope, as globus-sdk spells it."""
    return f"https://auth.globus.org/scopes/{collection_id}/data_access"


def transfer_scope_with_data_access(*collection_ids: str | uuid.UUID) -> str:
    """``transfer:all[*data_access ...]``: the scope a ConsentRequired error asks for."""
    if not collection_ids:
        return TRANSFER_SCOPE
    deps = " ".join(f"*{data_access_scope(c)}" for c in collection_ids)
    return f"{TRANSFER_SCOPE}[{deps}]"


# --------------------------------------------------------------------------- scopes
@dataclass
class ScopeNode:
    name: str
    optional: bool = False
    dependencies: list[ScopeNode] = field(default_factory=list)

    def __str__(self) -> str:
        text = ("*" if self.optional else "") + self.name
        if self.dependencies:
            text += "[" + " ".join(str(d) for d in self.dependencies) + "]"
        return text


def parse_scope_string(text: str) -> list[ScopeNode]:
    """Parse Globus scope syntax: space separated, ``[...]`` dependencies, ``*`` optional."""
    tokens = re.findall(r"\[|\]|[^\s\[\]]+", text or "")
    pos = 0

    def parse_list(depth: int) -> list[ScopeNode]:
        nonlocal pos
        out: list[ScopeNode] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == "]":
                if depth == 0:
                    raise ValueError("unbalanced ']' in scope string")
                pos += 1
                return out
            if tok == "[":
                raise ValueError("dependency list without a parent scope")
            pos += 1
            optional = tok.startswith("*")
            name = tok[1:] if optional else tok
            if not name:
                raise ValueError("empty scope name")
            deps: list[ScopeNode] = []
            if pos < len(tokens) and tokens[pos] == "[":
                pos += 1
                deps = parse_list(depth + 1)
            out.append(ScopeNode(name, optional, deps))
        if depth:
            raise ValueError("unbalanced '[' in scope string")
        return out

    return parse_list(0)


def scope_resource_server(name: str) -> str | None:
    """Resource server a scope string belongs to, or None when it is not a Globus scope."""
    if name in OIDC_SCOPES:
        return AUTH_RS
    if name.startswith("urn:globus:auth:scope:"):
        rest = name[len("urn:globus:auth:scope:") :]
        rs, _, short = rest.rpartition(":")
        return rs or None
    if name.startswith("https://auth.globus.org/scopes/"):
        rest = name[len("https://auth.globus.org/scopes/") :]
        rs, _, short = rest.partition("/")
        return rs or None
    return None


def _scope_short_name(name: str) -> str:
    if name in OIDC_SCOPES:
        return name
    if name.startswith("urn:globus:auth:scope:"):
        return name.rpartition(":")[2]
    return name.rpartition("/")[2]


def _validate_scope(node: ScopeNode) -> str | None:
    """Return an error message when Globus Auth would not know this scope."""
    rs = scope_resource_server(node.name)
    if rs is None:
        return f"Unknown scope: {node.name!r}"
    short = _scope_short_name(node.name)
    if rs in _KNOWN_SCOPE_NAMES:
        if short not in _KNOWN_SCOPE_NAMES[rs]:
            return f"Unknown scope: {node.name!r}"
    elif _UUID_RE.match(rs):
        if short not in _COLLECTION_SCOPE_NAMES:
            return f"Unknown scope: {node.name!r}"
    else:
        return f"Unknown scope: {node.name!r}"
    for dep in node.dependencies:
        err = _validate_scope(dep)
        if err:
            return err
    return None


def _data_access_deps(node: ScopeNode) -> set[str]:
    """Collection ids whose data_access scope is a dependency of this scope node."""
    found: set[str] = set()
    for dep in node.dependencies:
        rs = scope_resource_server(dep.name)
        if rs and _UUID_RE.match(rs) and _scope_short_name(dep.name) == "data_access":
            found.add(rs.lower())
        found |= _data_access_deps(dep)
    return found


# ------------------------------------------------------------------------ identities
@dataclass
class FakeIdentity:
    """A Globus identity. ``sub`` defaults to a stable UUID derived from the username."""

    username: str
    name: str = ""
    email: str = ""
    sub: str = ""
    organization: str = ""
    identity_provider: str = ""
    identity_provider_display_name: str = ""
    groups: list[Any] = field(default_factory=list)  # names, or {"name", "id", "role"}

    def __post_init__(self) -> None:
        if not self.sub:
            self.sub = str(uuid.uuid5(_IDENTITY_NS, "identity:" + self.username.lower()))
        domain = self.username.rpartition("@")[2] or "globusid.org"
        if not self.name:
            local = self.username.partition("@")[0]
            self.name = local.replace(".", " ").replace("_", " ").title()
        if not self.email:
            self.email = self.username
        if not self.identity_provider:
            self.identity_provider = str(uuid.uuid5(_IDENTITY_NS, "idp:" + domain.lower()))
        if not self.identity_provider_display_name:
            self.identity_provider_display_name = domain
        if not self.organization:
            self.organization = domain

    @classmethod
    def coerce(cls, value: FakeIdentity | str | dict[str, Any]) -> FakeIdentity:
        if isinstance(value, FakeIdentity):
            return value
        if isinstance(value, str):
            return cls(username=value)
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"cannot make an identity from {value!r}")

    def group_documents(self) -> list[dict[str, Any]]:
        docs = []
        for group in self.groups:
            if isinstance(group, str):
                group = {"name": group}
            gid = group.get("id") or str(uuid.uuid5(_IDENTITY_NS, "group:" + group["name"]))
            docs.append(
                {
                    "id": gid,
                    "name": group["name"],
                    "description": group.get("description", ""),
                    "parent_id": None,
                    "group_type": "regular",
                    "enforce_session": False,
                    "session_limit": 28800,
                    "session_timeouts": {},
                    "policies": {
                        "group_visibility": "private",
                        "group_members_visibility": "managers",
                    },
                    "my_memberships": [
                        {
                            "group_id": gid,
                            "identity_id": self.sub,
                            "username": self.username,
                            "role": group.get("role", "member"),
                            "status": "active",
                        }
                    ],
                }
            )
        return docs

    def identity_document(self) -> dict[str, Any]:
        return {
            "id": self.sub,
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "organization": self.organization,
            "identity_provider": self.identity_provider,
            "identity_type": "login",
            "status": "used",
        }


# ---------------------------------------------------------------------------- tokens
@dataclass
class TokenInfo:
    """What the fake knows about one issued token (never sent to clients)."""

    token: str
    kind: str  # "access" or "refresh"
    client_id: str
    sub: str
    username: str
    resource_server: str
    scopes: list[str]
    data_access: set[str]
    issued_at: float
    expires_at: float | None
    grant_id: str
    is_client_identity: bool = False
    revoked: bool = False

    @property
    def active(self) -> bool:
        if self.revoked:
            return False
        return self.expires_at is None or self.expires_at > time.time()

    def describe(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "kind": self.kind,
            "client_id": self.client_id,
            "sub": self.sub,
            "username": self.username,
            "resource_server": self.resource_server,
            "scopes": list(self.scopes),
            "data_access": sorted(self.data_access),
            "revoked": self.revoked,
            "active": self.active,
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Signer:
    """Signs id_tokens RS512 like Globus Auth when ``cryptography`` is importable,
    else HS256 with the client secret (then the SDK cannot verify them)."""

    _shared_key: Any = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401
        except ImportError:  # pragma: no cover - cryptography is a portal dependency
            self.alg = "HS256"
            self.key = None
            return
        with _Signer._shared_lock:
            if _Signer._shared_key is None:
                from cryptography.hazmat.primitives.asymmetric import rsa

                _Signer._shared_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.alg = "RS512"
        self.key = _Signer._shared_key
        self.kid = "fake-globus-auth-1"

    def jwks(self) -> dict[str, Any]:
        if self.key is None:
            return {"keys": []}
        numbers = self.key.public_key().public_numbers()

        def enc(n: int) -> str:
            return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS512",
                    "use": "sig",
                    "kid": self.kid,
                    "n": enc(numbers.n),
                    "e": enc(numbers.e),
                }
            ]
        }

    def sign(self, claims: dict[str, Any], client_secret: str) -> str:
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if self.key is not None:
            header["kid"] = self.kid
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        ).encode("ascii")
        if self.key is None:
            sig = hmac.new(client_secret.encode(), signing_input, hashlib.sha256).digest()
        else:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA512())
        return signing_input.decode("ascii") + "." + _b64url(sig)


def _oauth_error(status: int, error: str, description: str | None = None) -> Response:
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    headers = {"WWW-Authenticate": 'Basic realm="globus"'} if status == 401 else None
    return json_response(status, body, headers)


def _api_error(status: int, code: str, detail: str) -> Response:
    """Globus Auth's JSON:API style error document."""
    err_id = str(uuid.uuid4())
    return json_response(
        status,
        {
            "errors": [
                {
                    "status": str(status),
                    "id": err_id,
                    "code": code,
                    "detail": detail,
                    "title": "Unauthorized" if status in (401, 403) else "Error",
                }
            ],
            "error_description": "Unauthorized" if status in (401, 403) else detail,
            "error": "unauthorized" if status in (401, 403) else code.lower(),
        },
    )


# ------------------------------------------------------------------------------ fake
class FakeGlobusAuth(FakeService):
    """Loopback Globus Auth.

    :param clients: registered confidential clients ``{client_id: secret}``
    :param identities: identities (``FakeIdentity``, username strings, or dicts);
        the first one is logged in until ``login_as`` says otherwise
    :param redirect_uris: optional ``{client_id: [allowed redirect URIs]}``; a
        client without an entry accepts any http(s) redirect URI
    :param access_token_lifetime: ``expires_in`` of issued access tokens
    :param rotate_refresh_tokens: hand out a new refresh token on every refresh
        (Globus does not by default; the portal must cope either way)
    """

    name = "fake-globus-auth"

    def __init__(
        self,
        clients: dict[str, str] | None = None,
        identities: Iterable[FakeIdentity | str | dict[str, Any]] = (),
        *,
        redirect_uris: dict[str, list[str]] | None = None,
        access_token_lifetime: int = ACCESS_TOKEN_LIFETIME,
        rotate_refresh_tokens: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.clients: dict[str, str] = dict(clients or {})
        self.redirect_uris: dict[str, list[str]] = {k: list(v) for k, v in (redirect_uris or {}).items()}
        self.identities: list[FakeIdentity] = [FakeIdentity.coerce(i) for i in identities]
        self.access_token_lifetime = access_token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._current: FakeIdentity | None = self.identities[0] if self.identities else None
        self._deny_next = 0
        self._codes: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._token_order: list[TokenInfo] = []
        self._consents: dict[tuple[str, str], set[str]] = {}  # (sub, client) -> collection ids
        self._consent_required: set[str] = set()
        self.authorize_requests: list[dict[str, Any]] = []
        self._signer = _Signer()

    # ------------------------------------------------------------ test controls
    def add_client(self, client_id: str, secret: str, redirect_uris: list[str] | None = None) -> None:
        with self._lock:
            self.clients[client_id] = secret
            if redirect_uris is not None:
                self.redirect_uris[client_id] = list(redirect_uris)

    def add_identity(self, identity: FakeIdentity | str | dict[str, Any]) -> FakeIdentity:
        ident = FakeIdentity.coerce(identity)
        with self._lock:
            self.identities.append(ident)
            if self._current is None:
                self._current = ident
        return ident

    def identity(self, who: FakeIdentity | str) -> FakeIdentity:
        """Find an identity by object, username or sub."""
        if isinstance(who, FakeIdentity):
            return who
        with self._lock:
            for ident in self.identities:
                if who in (ident.username, ident.sub):
                    return ident
        raise KeyError(f"no such identity: {who!r}")

    def login_as(self, identity: FakeIdentity | str | dict[str, Any]) -> FakeIdentity:
        """Select who the next browser login (authorize step) authenticates as.
        An identity the fake does not know yet is added first."""
        with self._lock:
            ident: FakeIdentity | None = None
            if isinstance(identity, (str, FakeIdentity)):
                try:
                    ident = self.identity(identity)
                except KeyError:
                    ident = None
            if ident is None or ident not in self.identities:
                ident = self.add_identity(ident or identity)
            self._current = ident
            return ident

    @property
    def current_identity(self) -> FakeIdentity | None:
        return self._current

    def deny_next_login(self, n: int = 1) -> None:
        """The next ``n`` authorize steps end as if the user clicked "Deny"."""
        with self._lock:
            self._deny_next += n

    def revoke_all(self, identity: FakeIdentity | str) -> int:
        """Revoke every token of an identity and forget its consents, as when the
        user revokes the portal's access; a later refresh fails with invalid_grant."""
        ident = self.identity(identity)
        count = 0
        with self._lock:
            for info in self._tokens.values():
                if info.sub == ident.sub and not info.revoked:
                    info.revoked = True
                    count += 1
            for key in [k for k in self._consents if k[0] == ident.sub]:
                del self._consents[key]
        return count

    def expire_access_tokens(self, identity: FakeIdentity | str | None = None) -> int:
        """Make current access tokens expired (services answer 401, SDK refreshes)."""
        sub = self.identity(identity).sub if identity is not None else None
        past = time.time() - 1
        count = 0
        with self._lock:
            for info in self._tokens.values():
                if info.kind == "access" and info.active and (sub is None or info.sub == sub):
                    info.expires_at = past
                    count += 1
        return count

    def require_consent(self, collection_id: str | uuid.UUID) -> None:
        """Mark a collection as a GCSv5 mapped collection needing data_access consent."""
        with self._lock:
            self._consent_required.add(str(collection_id).lower())

    def consent_required(self, collection_id: str | uuid.UUID) -> bool:
        with self._lock:
            return str(collection_id).lower() in self._consent_required

    def grant_consent(
        self, identity: FakeIdentity | str, client_id: str, collection_id: str | uuid.UUID
    ) -> None:
        """Record a data_access consent as if the user had granted it in a login."""
        ident = self.identity(identity)
        with self._lock:
            self._consents.setdefault((ident.sub, client_id), set()).add(str(collection_id).lower())

    def consents(self, identity: FakeIdentity | str, client_id: str) -> set[str]:
        ident = self.identity(identity)
        with self._lock:
            return set(self._consents.get((ident.sub, client_id), set()))

    @property
    def issued_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.describe() for t in self._token_order]

    def token_info(self, token: str) -> TokenInfo | None:
        with self._lock:
            return self._tokens.get(token)

    def validate_access_token(self, token: str, resource_server: str | None = None) -> TokenInfo | None:
        """The TokenInfo of an active access token (for ``resource_server``), else None."""
        with self._lock:
            info = self._tokens.get(token)
            if info is None or info.kind != "access" or not info.active:
                return None
            if resource_server is not None and info.resource_server != resource_server:
                return None
            return info

    def has_data_access(self, info: TokenInfo, collection_id: str | uuid.UUID) -> bool:
        return str(collection_id).lower() in info.data_access

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        if action == "login_as":
            return {"sub": self.login_as(payload["identity"]).sub}
        if action == "revoke_all":
            return {"revoked": self.revoke_all(payload["identity"])}
        if action == "expire_access_tokens":
            return {"expired": self.expire_access_tokens(payload.get("identity"))}
        if action == "require_consent":
            self.require_consent(payload["collection_id"])
            return {"ok": True}
        if action == "deny_next_login":
            self.deny_next_login(int(payload.get("n", 1)))
            return {"ok": True}
        if action == "issued_tokens":
            return self.issued_tokens
        if action == "authorize_requests":
            with self._lock:
                return list(self.authorize_requests)
        return super().control(action, payload)

    # ------------------------------------------------------------------ routing
    def handle(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        routes = {
            ("GET", "/v2/oauth2/authorize"): self._authorize,
            ("POST", "/v2/oauth2/token"): self._token,
            ("GET", "/v2/oauth2/userinfo"): self._userinfo,
            ("POST", "/v2/oauth2/userinfo"): self._userinfo,
            ("POST", "/v2/oauth2/token/revoke"): self._revoke,
            ("POST", "/v2/oauth2/token/introspect"): self._introspect,
            ("GET", "/.well-known/openid-configuration"): self._openid_configuration,
            ("GET", "/jwk.json"): self._jwks,
            ("GET", "/v2/api/identities"): self._identities,
            ("GET", "/v2/groups/my_groups"): self._my_groups,
        }
        handler = routes.get((req.method, path))
        if handler is not None:
            return handler(req)
        if any(p == path for (_m, p) in routes):
            return _api_error(405, "METHOD_NOT_ALLOWED", f"{req.method} not allowed on {path}")
        return _api_error(404, "NOT_FOUND", f"No such resource: {path}")

    @property
    def issuer(self) -> str:
        return self.url.rstrip("/")

    # ----------------------------------------------------------------- authorize
    def _authorize(self, req: Request) -> Response:
        dupes = [k for k, v in req.query.items() if len(v) > 1]
        if dupes:
            return self._authorize_error(f"Repeated parameter(s): {', '.join(dupes)}")
        params = {k: v[0] for k, v in req.query.items()}
        client_id = params.get("client_id")
        if not client_id:
            return self._authorize_error("Missing required parameter: client_id")
        with self._lock:
            known_client = client_id in self.clients
            allowed = self.redirect_uris.get(client_id)
        if not known_client:
            return self._authorize_error(f"Unknown client_id: {client_id}")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return self._authorize_error("Missing required parameter: redirect_uri")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return self._authorize_error(f"Invalid redirect_uri: {redirect_uri}")
        if allowed is not None and redirect_uri not in allowed:
            return self._authorize_error(
                f"redirect_uri {redirect_uri} is not registered for client {client_id}"
            )
        if params.get("response_type") != "code":
            return self._authorize_error(
                f"Unsupported response_type: {params.get('response_type')!r} (only 'code')"
            )
        scope_text = params.get("scope", "")
        try:
            nodes = parse_scope_string(scope_text)
        except ValueError as err:
            return self._authorize_error(f"Malformed scope string: {err}")
        nodes = [n for n in nodes if n.name != "offline_access"]
        if not nodes:
            return self._authorize_error("Missing required parameter: scope")
        for node in nodes:
            err = _validate_scope(node)
            if err:
                return self._authorize_error(err)
        access_type = params.get("access_type", "online")
        if access_type not in ("online", "offline"):
            return self._authorize_error(f"Invalid access_type: {access_type!r}")
        prompt = params.get("prompt")
        if prompt not in (None, "login", "none"):
            return self._authorize_error(f"Invalid prompt: {prompt!r}")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else None)
        if challenge and method not in ("S256", "plain"):
            return self._authorize_error(f"Invalid code_challenge_method: {method!r}")

        with self._lock:
            identity = self._current
            deny = self._deny_next > 0
            if deny:
                self._deny_next -= 1
            self.authorize_requests.append(
                {
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "scope": scope_text,
                    "scopes": [str(n) for n in nodes],
                    "state": params.get("state"),
                    "access_type": access_type,
                    "prompt": prompt,
                    "session_required_identities": params.get("session_required_identities"),
                    "session_required_single_domain": params.get("session_required_single_domain"),
                    "session_required_policies": params.get("session_required_policies"),
                    "session_required_mfa": params.get("session_required_mfa"),
                    "session_message": params.get("session_message"),
                    "identity": identity.username if identity else None,
                }
            )
        if identity is None:
            return self._authorize_error("No identity is logged in to the fake (call login_as)")
        extra: dict[str, str] = {}
        if deny:
            extra["error"] = "access_denied"
            extra["error_description"] = "The user denied the request"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = {
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "nodes": nodes,
                    "identity": identity,
                    "offline": access_type == "offline",
                    "state": params.get("state"),
                    "nonce": params.get("nonce"),
                    "challenge": challenge,
                    "challenge_method": method,
                    "expires_at": time.time() + CODE_LIFETIME,
                    "used": False,
                }
            extra["code"] = code
        if "state" in params:
            extra["state"] = params["state"]
        query = parts.query + ("&" if parts.query else "") + urlencode(extra)
        return redirect_response(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))

    @staticmethod
    def _authorize_error(message: str) -> Response:
        html = (
            "<!doctype html><html><head><title>Globus Auth error</title></head>"
            f'<body><h1>Error</h1><p class="error">{_html_escape(message)}</p></body></html>'
        )
        return text_response(400, html)

    # --------------------------------------------------------------------- token
    def _authenticate_client(self, req: Request, form: dict[str, str]) -> tuple[str | None, Response | None]:
        header = req.header("authorization")
        client_id = secret = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return None, _oauth_error(401, "invalid_client", "client authentication must use HTTP Basic")
            try:
                client_id, _, secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None, _oauth_error(401, "invalid_client", "malformed Basic credentials")
            if "client_secret" in form:
                return None, _oauth_error(
                    400, "invalid_request", "client authenticated with more than one method"
                )
        elif "client_id" in form and "client_secret" in form:
            client_id, secret = form["client_id"], form["client_secret"]
        else:
            return None, _oauth_error(401, "invalid_client", "client authentication required")
        with self._lock:
            expected = self.clients.get(client_id or "")
        if expected is None or not hmac.compare_digest(expected, secret or ""):
            return None, _oauth_error(401, "invalid_client", "invalid client credentials")
        return client_id, None

    def _token(self, req: Request) -> Response:
        if req.content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "token requests must be form encoded")
        form = req.form()
        client_id, error = self._authenticate_client(req, form)
        if error is not None:
            return error
        assert client_id is not None
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._grant_authorization_code(client_id, form)
        if grant_type == "refresh_token":
            return self._grant_refresh_token(client_id, form)
        if grant_type == "client_credentials":
            return self._grant_client_credentials(client_id, form)
        if not grant_type:
            return _oauth_error(400, "invalid_request", "missing grant_type")
        return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _grant_authorization_code(self, client_id: str, form: dict[str, str]) -> Response:
        code = form.get("code")
        redirect_uri = form.get("redirect_uri")
        if not code:
            return _oauth_error(400, "invalid_request", "missing code")
        if not redirect_uri:
            return _oauth_error(400, "invalid_request", "missing redirect_uri")
        with self._lock:
            grant = self._codes.get(code)
            if (
                grant is None
                or grant["used"]
                or grant["client_id"] != client_id
                or grant["expires_at"] < time.time()
            ):
                return _oauth_error(400, "invalid_grant")
            if grant["redirect_uri"] != redirect_uri:
                return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
            if grant["challenge"]:
                verifier = form.get("code_verifier")
                if not verifier or not _pkce_ok(grant["challenge"], grant["challenge_method"], verifier):
                    return _oauth_error(400, "invalid_grant", "code_verifier does not match")
            grant["used"] = True
            identity: FakeIdentity = grant["identity"]
            nodes: list[ScopeNode] = grant["nodes"]
            consent = self._consents.setdefault((identity.sub, client_id), set())
            for node in nodes:
                consent |= _data_access_deps(node)
            body = self._issue(
                client_id=client_id,
                sub=identity.sub,
                username=identity.username,
                nodes=nodes,
                offline=grant["offline"],
                identity=identity,
                state=grant["state"],
                nonce=grant["nonce"],
                data_access=set(consent),
            )
        return json_response(200, body)

    def _grant_refresh_token(self, client_id: str, form: dict[str, str]) -> Response:
        token = form.get("refresh_token")
        if not token:
            return _oauth_error(400, "invalid_request", "missing refresh_token")
        with self._lock:
            info = self._tokens.get(token)
            if info is None or info.kind != "refresh" or info.revoked or info.client_id != client_id:
                return _oauth_error(400, "invalid_grant")
            if info.is_client_identity:
                data_access = set(info.data_access)
            else:
                data_access = set(self._consents.get((info.sub, client_id), set())) | info.data_access
            access = self._new_token("access", info, data_access=data_access, grant_id=info.grant_id)
            refresh_value = info.token
            if self.rotate_refresh_tokens:
                info.revoked = True
                refresh_value = self._new_token(
                    "refresh", info, data_access=info.data_access, grant_id=info.grant_id
                ).token
            doc = self._token_doc(access, refresh_value)
            if info.resource_server == AUTH_RS and "openid" in info.scopes:
                ident = self._identity_by_sub(info.sub)
                if ident is not None:
                    doc["id_token"] = self._id_token(client_id, ident, info.scopes, None)
            doc["other_tokens"] = []
        return json_response(200, doc)

    def _grant_client_credentials(self, client_id: str, form: dict[str, str]) -> Response:
        scope_text = form.get("scope", "")
        try:
            nodes = parse_scope_string(scope_text)
        except ValueError as err:
            return _oauth_error(400, "invalid_scope", str(err))
        if not nodes:
            return _oauth_error(400, "invalid_scope", "scope is required")
        for node in nodes:
            err = _validate_scope(node)
            if err:
                return _oauth_error(400, "invalid_scope", err)
        deps: set[str] = set()
        for node in nodes:
            deps |= _data_access_deps(node)
        with self._lock:
            body = self._issue(
                client_id=client_id,
                sub=client_id,
                username=f"{client_id}@clients.auth.globus.org",
                nodes=nodes,
                offline=False,
                identity=None,
                state=None,
                nonce=None,
                data_access=deps,
                is_client=True,
            )
        return json_response(200, body)

    def _issue(
        self,
        *,
        client_id: str,
        sub: str,
        username: str,
        nodes: list[ScopeNode],
        offline: bool,
        identity: FakeIdentity | None,
        state: str | None,
        nonce: str | None,
        data_access: set[str],
        is_client: bool = False,
    ) -> dict[str, Any]:
        """Build a token response: one token per resource server, the auth.globus.org
        one (if any) on top, the rest in ``other_tokens``."""
        by_rs: dict[str, list[str]] = {}
        for node in nodes:
            rs = scope_resource_server(node.name)
            assert rs is not None
            names = by_rs.setdefault(rs, [])
            if node.name not in names:
                names.append(node.name)
        order = sorted(by_rs, key=lambda rs: 0 if rs == AUTH_RS else 1)
        docs = []
        for rs in order:
            template = TokenInfo(
                token="",
                kind="access",
                client_id=client_id,
                sub=sub,
                username=username,
                resource_server=rs,
                scopes=by_rs[rs],
                data_access=set(),
                issued_at=time.time(),
                expires_at=None,
                grant_id=str(uuid.uuid4()),
                is_client_identity=is_client,
            )
            access = self._new_token(
                "access", template, data_access=data_access if rs == TRANSFER_RS else set()
            )
            refresh_value = None
            if offline:
                refresh_value = self._new_token(
                    "refresh", template, data_access=set(), grant_id=template.grant_id
                ).token
            doc = self._token_doc(access, refresh_value)
            if state is not None:
                doc["state"] = state
            if rs == AUTH_RS and "openid" in by_rs[rs] and identity is not None:
                doc["id_token"] = self._id_token(client_id, identity, by_rs[rs], nonce)
            docs.append(doc)
        top = docs[0]
        top["other_tokens"] = docs[1:]
        return top

    def _new_token(
        self, kind: str, like: TokenInfo, *, data_access: set[str], grant_id: str | None = None
    ) -> TokenInfo:
        now = time.time()
        info = TokenInfo(
            token=("Ag" if kind == "access" else "Ar") + secrets.token_urlsafe(32),
            kind=kind,
            client_id=like.client_id,
            sub=like.sub,
            username=like.username,
            resource_server=like.resource_server,
            scopes=list(like.scopes),
            data_access=set(data_access),
            issued_at=now,
            expires_at=now + self.access_token_lifetime if kind == "access" else None,
            grant_id=grant_id or like.grant_id,
            is_client_identity=like.is_client_identity,
        )
        self._tokens[info.token] = info
        self._token_order.append(info)
        return info

    def _token_doc(self, access: TokenInfo, refresh_value: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "access_token": access.token,
            "expires_in": self.access_token_lifetime,
            "resource_server": access.resource_server,
            "scope": " ".join(access.scopes),
            "token_type": "Bearer",
        }
        if refresh_value is not None:
            doc["refresh_token"] = refresh_value
        return doc

    def _identity_by_sub(self, sub: str) -> FakeIdentity | None:
        for ident in self.identities:
            if ident.sub == sub:
                return ident
        return None

    def _id_token(self, client_id: str, identity: FakeIdentity, scopes: list[str], nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": identity.sub,
            "aud": client_id,
            "iat": now,
            "exp": now + self.access_token_lifetime,
            "last_authentication": now,
        }
        if nonce:
            claims["nonce"] = nonce
        claims.update(self._claims(identity, scopes))
        return self._signer.sign(claims, self.clients.get(client_id, ""))

    def _claims(self, identity: FakeIdentity, scopes: list[str]) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": identity.sub}
        if "profile" in scopes:
            claims.update(
                {
                    "preferred_username": identity.username,
                    "name": identity.name,
                    "organization": identity.organization,
                    "identity_provider": identity.identity_provider,
                    "identity_provider_display_name": identity.identity_provider_display_name,
                    "last_authentication": int(time.time()),
                }
            )
        if "email" in scopes:
            claims["email"] = identity.email
        if VIEW_IDENTITY_SET in scopes:
            claims["identity_set"] = [
                {
                    "sub": identity.sub,
                    "username": identity.username,
                    "name": identity.name,
                    "email": identity.email,
                    "identity_provider": identity.identity_provider,
                    "identity_provider_display_name": identity.identity_provider_display_name,
                    "organization": identity.organization,
                    "last_authentication": int(time.time()),
                }
            ]
        return claims

    # -------------------------------------------------------- bearer endpoints
    def _bearer(self, req: Request, resource_server: str) -> tuple[TokenInfo | None, Response | None]:
        header = req.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, _api_error(401, "UNAUTHORIZED", "Call must be authenticated")
        info = self.validate_access_token(value.strip(), resource_server)
        if info is None:
            return None, _api_error(401, "UNAUTHORIZED", "Call must be authenticated")
        return info, None

    def _userinfo(self, req: Request) -> Response:
        info, error = self._bearer(req, AUTH_RS)
        if error is not None:
            return error
        assert info is not None
        if "openid" not in info.scopes:
            return _api_error(403, "FORBIDDEN", "Token does not carry the openid scope")
        ident = self._identity_by_sub(info.sub)
        if ident is None:
            return _api_error(403, "FORBIDDEN", "Identity no longer exists")
        return json_response(200, self._claims(ident, info.scopes))

    def _identities(self, req: Request) -> Response:
        header = req.header("authorization") or ""
        if header.lower().startswith("basic "):
            _cid, err = self._authenticate_client(req, {})
            if err is not None:
                return _api_error(401, "UNAUTHORIZED", "Call must be authenticated")
        else:
            _info, err = self._bearer(req, AUTH_RS)
            if err is not None:
                return err
        ids = [x for v in req.args("ids") for x in v.split(",") if x]
        usernames = [x for v in req.args("usernames") for x in v.split(",") if x]
        if ids and usernames:
            return _api_error(400, "INVALID_PARAMETERS", "Only one of ids or usernames may be given")
        with self._lock:
            found = []
            for ident in self.identities:
                if ident.sub in ids or ident.username.lower() in [u.lower() for u in usernames]:
                    found.append(ident.identity_document())
        return json_response(200, {"identities": found})

    def _my_groups(self, req: Request) -> Response:
        info, error = self._bearer(req, GROUPS_RS)
        if error is not None:
            return error
        assert info is not None
        ident = self._identity_by_sub(info.sub)
        return json_response(200, ident.group_documents() if ident else [])

    # --------------------------------------------------- revoke / introspect
    def _revoke(self, req: Request) -> Response:
        form = req.form() if req.content_type == "application/x-www-form-urlencoded" else {}
        client_id, error = self._authenticate_client(req, form)
        if error is not None:
            return error
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "missing token")
        with self._lock:
            info = self._tokens.get(token)
            if info is not None and info.client_id == client_id:
                info.revoked = True
                if info.kind == "refresh":  # revoking a refresh token ends its grant
                    for other in self._tokens.values():
                        if other.grant_id == info.grant_id:
                            other.revoked = True
        return json_response(200, {"active": False})

    def _introspect(self, req: Request) -> Response:
        form = req.form() if req.content_type == "application/x-www-form-urlencoded" else {}
        client_id, error = self._authenticate_client(req, form)
        if error is not None:
            return error
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "missing token")
        with self._lock:
            info = self._tokens.get(token)
            if info is None or not info.active:
                return json_response(200, {"active": False})
            ident = self._identity_by_sub(info.sub)
            body: dict[str, Any] = {
                "active": True,
                "token_type": "Bearer",
                "scope": " ".join(info.scopes),
                "client_id": info.client_id,
                "sub": info.sub,
                "username": info.username,
                "aud": [info.resource_server, info.client_id],
                "iss": self.issuer,
                "iat": int(info.issued_at),
                "nbf": int(info.issued_at),
                "exp": int(info.expires_at) if info.expires_at else None,
            }
            if ident is not None:
                body["name"] = ident.name
                body["email"] = ident.email
        return json_response(200, body)

    # ----------------------------------------------------------------- OIDC
    def _openid_configuration(self, req: Request) -> Response:
        base = self.issuer
        return json_response(
            200,
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/v2/oauth2/authorize",
                "token_endpoint": f"{base}/v2/oauth2/token",
                "userinfo_endpoint": f"{base}/v2/oauth2/userinfo",
                "revocation_endpoint": f"{base}/v2/oauth2/token/revoke",
                "introspection_endpoint": f"{base}/v2/oauth2/token/introspect",
                "jwks_uri": f"{base}/jwk.json",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "subject_types_supported": ["public"],
                "scopes_supported": ["openid", "email", "profile"],
                "id_token_signing_alg_values_supported": [self._signer.alg],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": [
                    "email",
                    "identity_provider",
                    "identity_provider_display_name",
                    "identity_set",
                    "name",
                    "organization",
                    "preferred_username",
                    "sub",
                ],
            },
        )

    def _jwks(self, req: Request) -> Response:
        return json_response(200, self._signer.jwks())

    def fault_response(self, fault, req: Request) -> Response:  # type: ignore[override]
        resp = _api_error(
            fault.status, fault.code or "SERVICE_UNAVAILABLE", fault.message or "Injected failure"
        )
        if fault.retry_after is not None:
            resp.headers["Retry-After"] = str(fault.retry_after)
        return resp


def _pkce_ok(challenge: str, method: str | None, verifier: str) -> bool:
    if method == "S256":
        digest = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        return hmac.compare_digest(digest, challenge)
    return hmac.compare_digest(verifier, challenge)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


__all__ = [
    "AUTH_RS",
    "GROUPS_RS",
    "GROUPS_SCOPE",
    "TRANSFER_RS",
    "TRANSFER_SCOPE",
    "FakeGlobusAuth",
    "FakeIdentity",
    "ScopeNode",
    "TokenInfo",
    "data_access_scope",
    "new_request_id",
    "parse_scope_string",
    "transfer_scope_with_data_access",
]
