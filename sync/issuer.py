"""Issuing on the central side: issuer key files, signing passes, the lists bundle for gates."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import PassFields, key_id, sign
from sync.errors import IssuerKeyError
from sync.protocol import (
    LIST_NAMES,
    DirectoryItem,
    DirectoryList,
    IsolationItem,
    IsolationList,
    KeyItem,
    KeyList,
    ListsBundle,
    RevocationItem,
    RevocationList,
)
from sync.store import CentralStore

log = logging.getLogger(__name__)

#: Pass ids avoid 0/O and 1/I so a guard can read one out over the phone.
_PASS_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_PASS_ID_CHARS = 10


def new_pass_id() -> str:
    """A random, readable pass id (50 bits)."""
    return "".join(secrets.choice(_PASS_ID_ALPHABET) for _ in range(_PASS_ID_CHARS))


class Issuer:
    """Holds the private keys (files readable only by this service) and signs passes."""

    def __init__(self, data_dir: Path, store: CentralStore) -> None:
        self.keys_dir = data_dir / "keys"
        self.store = store

    def new_key(self, now: datetime) -> str:
        """Create an issuer key pair; the private half never leaves this machine."""
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created 0600 from the start: never a moment when others could read it.
        fd = os.open(self._key_path(kid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        self.store.add_key(private.public_key().public_bytes_raw(), now)
        log.info("created issuer key %s", kid)
        return kid

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The newest key that is not retired and whose private half is here."""
        for row in reversed(self.store.issuer_keys()):
            if row.retired_at is None and self._key_path(row.kid).exists():
                return row.kid, self._load(row.kid)
        raise IssuerKeyError(
            f"no issuer key in {self.keys_dir}: create one with `gate-sync keys new`"
        )

    def issue(self, fields: PassFields, now: datetime) -> str:
        """Sign a pass, record it, and return its text."""
        kid, private = self.signing_key()
        text = sign(fields, private)
        self.store.add_pass(fields, text, kid, now)
        return text

    def bundle(self, now: datetime) -> ListsBundle:
        """Every list at its current version, as gates import it."""
        keys = [
            KeyItem(
                kid=row.kid,
                public_key=base64.b64encode(row.public_key).decode("ascii"),
                retired=row.retired_at is not None,
            )
            for row in self.store.issuer_keys()
        ]
        revoked = [
            RevocationItem(pass_id=pid, revoked_at=datetime.fromisoformat(at), reason=why)
            for pid, at, why in self.store.revocations(now)
        ]
        isolated = [
            IsolationItem(
                household_id=household,
                start=datetime.fromisoformat(start),
                end=datetime.fromisoformat(end),
            )
            for household, start, end in self.store.isolations(now)
        ]
        people = [
            DirectoryItem(
                pass_id=row.pass_id,
                kind=row.kind,
                household_id=row.household_id,
                scope=row.scope,
                valid_from=datetime.fromisoformat(row.valid_from),
                valid_until=datetime.fromisoformat(row.valid_until),
                display_name=row.display_name,
                unit=row.unit,
                exit_quota=row.exit_quota,
            )
            for row in self.store.directory(now)
        ]
        return ListsBundle(
            issued_at=now,
            keys=KeyList(version=self._version("keys"), items=tuple(keys)),
            revocations=RevocationList(version=self._version("revocations"), items=tuple(revoked)),
            isolations=IsolationList(version=self._version("isolations"), items=tuple(isolated)),
            directory=DirectoryList(version=self._version("directory"), items=tuple(people)),
        )

    def list_versions(self) -> dict[str, int]:
        """The version each list would carry if exported now."""
        return {name: self._version(name) for name in LIST_NAMES}

    def _version(self, name: str) -> int:
        # Version 1 is the list as it starts out, empty; each change adds one.
        return self.store.list_version(name) + 1

    def _key_path(self, kid: str) -> Path:
        return self.keys_dir / f"{kid}.pem"

    def _load(self, kid: str) -> Ed25519PrivateKey:
        path = self._key_path(kid)
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IssuerKeyError(f"{path} is readable by others: chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IssuerKeyError(f"{path} is not an Ed25519 key")
        return key
