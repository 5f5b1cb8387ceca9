"""The token vault: users' Globus tokens, encrypted at rest.

Tokens are encrypted with Fernet. ``settings.PORTAL_TOKEN_KEYS`` (from the
``PORTAL_TOKEN_KEYS`` environment variable, comma-separated) lists the keys:
the first encrypts, all decrypt, so a key is rotated by putting a new one
first and running ``manage.py rotate_token_keys``. Without keys (workstation
or demo) a key is derived from ``SECRET_KEY``; the ``portal.E001`` system
check refuses that in production.

Only this module and ``transfers.clients`` handle token values. Token values
never go into logs, ``repr()`` or error pages.
"""

import base64
import contextlib
import datetime
import hashlib
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from archive_portal.models import GlobusToken

_DEVELOPMENT_KEY_INFO = b"archive-portal token vault development key"


class VaultError(Exception):
    """A stored token cannot be decrypted with the configured keys."""


@dataclass(frozen=True)
class StoredToken:
    """A decrypted token set; token values stay out of ``repr()``."""

    resource_server: str
    scopes: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime.datetime | None

    @property
    def expires_at_seconds(self):
        return int(self.expires_at.timestamp()) if self.expires_at else None


@sensitive_variables()
def development_key(secret_key):
    """A Fernet key derived from ``SECRET_KEY`` (HKDF-SHA256) for workstations."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DEVELOPMENT_KEY_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode("utf-8")))


_fernet_cache = {}


@sensitive_variables()
def _fernet():
    keys = tuple(settings.PORTAL_TOKEN_KEYS) or (development_key(settings.SECRET_KEY).decode("ascii"),)
    # Cache by a digest of the keys so settings changes (tests, rotation) take effect.
    cache_key = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()
    fernet = _fernet_cache.get(cache_key)
    if fernet is None:
        try:
            fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as err:
            raise ImproperlyConfigured(
                "PORTAL_TOKEN_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes); make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
            ) from err
        _fernet_cache.clear()
        _fernet_cache[cache_key] = fernet
    return fernet


@sensitive_variables()
def encrypt(value):
    if not value:
        return ""
    return _fernet().encrypt(value.encode("utf-8")).decode("ascii")


@sensitive_variables()
def decrypt(ciphertext):
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise VaultError(
            "A stored Globus token cannot be decrypted with PORTAL_TOKEN_KEYS; "
            "was a key removed before `manage.py rotate_token_keys` ran?"
        ) from None


def _expires_at(token_data):
    seconds = token_data.get("expires_at_seconds")
    if seconds is None and token_data.get("expires_in") is not None:
        seconds = int(datetime.datetime.now(tz=datetime.UTC).timestamp()) + int(token_data["expires_in"])
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)


@sensitive_variables()
def save_token(user, token_data):
    """Store one resource server's tokens for ``user``.

    ``token_data`` is the shape Globus Auth uses in a token response and in
    ``by_resource_server``: ``resource_server``, ``access_token``, optional
    ``refresh_token``, ``expires_at_seconds`` (or ``expires_in``) and
    ``scope``. A response without a refresh token keeps the stored one.
    """
    resource_server = token_data["resource_server"]
    values = {
        "scopes": token_data.get("scope") or "",
        "access_token_encrypted": encrypt(token_data["access_token"]),
        "expires_at": _expires_at(token_data),
    }
    if token_data.get("refresh_token"):
        values["refresh_token_encrypted"] = encrypt(token_data["refresh_token"])
    with transaction.atomic():
        row, _ = GlobusToken.objects.update_or_create(
            user=user, resource_server=resource_server, defaults=values
        )
    return row


def save_tokens(user, tokens_by_resource_server):
    """Store every resource server's tokens of one token response."""
    return [save_token(user, data) for data in tokens_by_resource_server.values()]


def _stored(row):
    return StoredToken(
        resource_server=row.resource_server,
        scopes=row.scopes,
        access_token=decrypt(row.access_token_encrypted),
        refresh_token=decrypt(row.refresh_token_encrypted),
        expires_at=row.expires_at,
    )


def get_token(user, resource_server):
    """The user's decrypted tokens for ``resource_server``, or None."""
    row = GlobusToken.objects.filter(user=user, resource_server=resource_server).first()
    return _stored(row) if row else None


def has_token(user, resource_server):
    return GlobusToken.objects.filter(user=user, resource_server=resource_server).exists()


def pop_tokens(user):
    """Remove all of the user's tokens and return them (decrypted) for revocation."""
    with transaction.atomic():
        rows = list(GlobusToken.objects.select_for_update().filter(user=user))
        tokens = []
        for row in rows:
            # Undecryptable tokens cannot be revoked, but they must still go.
            with contextlib.suppress(VaultError):
                tokens.append(_stored(row))
        GlobusToken.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return tokens


@sensitive_variables()
def _stored_refresh_token_is(user, resource_server, refresh_token):
    """Lock the row and tell whether it still holds ``refresh_token``.

    Workers keep authorizers around; a new login (or a logout) may have
    replaced the tokens meanwhile, and an old authorizer must not overwrite
    or delete the new ones. Call inside a transaction.
    """
    row = GlobusToken.objects.select_for_update().filter(user=user, resource_server=resource_server).first()
    if row is None:
        return None, False
    try:
        return row, decrypt(row.refresh_token_encrypted) == refresh_token
    except VaultError:
        return row, False


@sensitive_variables()
def save_refreshed_token(user, token_data, *, refreshed_with):
    """Store tokens a refresh produced, unless the row moved on to another
    refresh token (a newer login). Returns whether they were stored."""
    with transaction.atomic():
        row, same = _stored_refresh_token_is(user, token_data["resource_server"], refreshed_with)
        if not same:
            return False
        save_token(user, token_data)
    return True


@sensitive_variables()
def delete_token_if_refresh_token(user, resource_server, refresh_token):
    """Delete the row if it still holds ``refresh_token`` (a dead grant)."""
    with transaction.atomic():
        row, same = _stored_refresh_token_is(user, resource_server, refresh_token)
        if same:
            row.delete()
        return same


def rotate_keys():
    """Re-encrypt every stored token with the first key; return how many rows."""
    fernet = _fernet()
    count = 0
    with transaction.atomic():
        for row in GlobusToken.objects.select_for_update().order_by("pk"):
            fields = {}
            for name in ("access_token_encrypted", "refresh_token_encrypted"):
                value = getattr(row, name)
                if value:
                    try:
                        fields[name] = fernet.rotate(value.encode("ascii")).decode("ascii")
                    except InvalidToken:
                        raise VaultError(
                            f"Globus token row {row.pk} cannot be decrypted with any of PORTAL_TOKEN_KEYS; "
                            "put the old key back (after the new one) and run the command again."
                        ) from None
            GlobusToken.objects.filter(pk=row.pk).update(**fields)
            count += 1
    return count
