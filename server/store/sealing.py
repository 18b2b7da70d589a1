"""Secrets encrypted at rest: AES-256-GCM with a key the operator keeps outside Redis.

    sealer = Sealer.from_settings(settings)
    stored = sealer.seal("ws_1", "CRM_TOKEN", "s3cret")     # "v1:<key id>:<base64 nonce+ciphertext>"
    sealer.unseal("ws_1", "CRM_TOKEN", stored)               # "s3cret"

Why GCM with associated data: the workspace id and secret name are authenticated with the value,
so a stored ciphertext copied to another workspace or name (by anyone who can write Redis) fails
to open instead of leaking one workspace's token into another's requests.

Keys (Settings.secrets_keys, from DESKFLOW_SECRETS_KEY): one or more comma-separated url-safe
base64 32-byte keys. The first seals; all open (rotation: put the new key first, keep the old one
until every secret has been written again). The key id in each value is the first 8 hex digits of
the key's SHA-256, so the right key is picked without trying each. Without DESKFLOW_SECRETS_KEY,
`deskflow` keeps a generated key in a 0600 file (DESKFLOW_SECRETS_KEY_FILE, default
./deskflow-secrets.key) — fine for one machine; a fleet must share the environment key.
Values written before encryption existed (no "v1:" prefix) are read as they are and sealed on
their next write.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Sealer", "SealingError", "new_key", "parse_keys"]

log = logging.getLogger("deskflow.sealing")

PREFIX = "v1"


class SealingError(ValueError):
    """A bad key setting, or a stored value no configured key opens."""


def new_key() -> str:
    return base64.urlsafe_b64encode(_random.token_bytes(32)).decode()


def parse_keys(text: str) -> list[bytes]:
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            raise SealingError("DESKFLOW_SECRETS_KEY must be url-safe base64 keys, comma-separated") from None
        if len(raw) != 32:
            raise SealingError(f"each DESKFLOW_SECRETS_KEY key must be 32 bytes, got {len(raw)} "
                               f"(make one with `deskflow secrets-key`)")
        keys.append(raw)
    if not keys:
        raise SealingError("DESKFLOW_SECRETS_KEY is empty")
    return keys


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _read_or_create(path: str) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    key = new_key()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.warning("generated a secrets key in %s: back it up, and give every process of a fleet the "
                "same key through DESKFLOW_SECRETS_KEY", path)
    return key


class Sealer:
    def __init__(self, keys: list[bytes]) -> None:
        self._seal_id = _key_id(keys[0])
        self._by_id = {_key_id(k): AESGCM(k) for k in keys}

    @classmethod
    def from_settings(cls, secrets_key: str | None, key_file: str | None) -> Sealer:
        """The environment's keys; else the key file's (created on first use); else a key for
        this process only (tests and stores that are not kept)."""
        if secrets_key:
            return cls(parse_keys(secrets_key))
        if key_file:
            return cls(parse_keys(_read_or_create(key_file)))
        return cls([_random.token_bytes(32)])

    @staticmethod
    def _aad(workspace: str, name: str) -> bytes:
        return f"deskflow-secret\0{workspace}\0{name}".encode()

    def seal(self, workspace: str, name: str, value: str) -> str:
        nonce = _random.token_bytes(12)
        box = self._by_id[self._seal_id].encrypt(nonce, value.encode(), self._aad(workspace, name))
        return f"{PREFIX}:{self._seal_id}:{base64.b64encode(nonce + box).decode()}"

    def unseal(self, workspace: str, name: str, stored: str) -> str:
        if not stored.startswith(PREFIX + ":"):
            return stored                       # written before encryption: sealed on next write
        try:
            _, key_id, data = stored.split(":", 2)
            raw = base64.b64decode(data)
            aead = self._by_id[key_id]
            return aead.decrypt(raw[:12], raw[12:], self._aad(workspace, name)).decode()
        except KeyError:
            raise SealingError(f"secret {name!r} was sealed with a key that is not configured") from None
        except (ValueError, InvalidTag, binascii.Error):
            raise SealingError(f"secret {name!r} does not open (altered, or moved from another "
                               f"workspace or name)") from None
