"""Issuing on the central side: key files, signing passes, the signed lists gates receive.

Two kinds of private key live in ``<data_dir>/keys`` (mode 0700, files 0600): issuer keys
that sign passes, and the one centre key that signs the lists sent down to gates.

An issuer key is active (the newest active one signs), rotating (a newer key signs; it
still verifies at gates until its planned ``retire_at``) or retired (gates refuse its
passes). A retirement that falls due is recorded by whichever server first builds a
list version after it (``retire_due``), in the transaction that raises the ``keys``
version; a retired key's private file is deleted.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import PassFields, key_id, sign
from sync.errors import IssuerKeyError, KeyInUse
from sync.lists import (
    COMPOUND_LISTS,
    COMPOUND_SETTING_KEYS,
    DELTA_LISTS,
    DOWNLINK_LISTS,
    ITEM_KEY,
    ListsPayload,
    ListUpdate,
    SettingItem,
    sign_lists,
)
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
from sync.store import IssuerStore, KeyRow

log = logging.getLogger(__name__)

#: Pass ids avoid 0/O and 1/I so a guard can read one out over the phone.
_PASS_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_PASS_ID_CHARS = 10
CENTRE_KEY_FILE = "centre.pem"
#: Snapshots are rebuilt at most this often for one version (passes expire meanwhile).
SNAPSHOT_TTL_S = 60.0


#: Whom a settings snapshot is for: gate id, its compound, whether it knows compound lists.
_GateKey = tuple[str | None, str | None, bool]


@dataclass(frozen=True)
class Rotation:
    """What ``Issuer.rotate`` did: the new signing key, the keys now rotating out, and
    how many unexpired, unrevoked passes those carry (to reissue before ``retire_at``)."""

    kid: str
    retire_at: datetime
    rotating: dict[str, int]


def new_pass_id() -> str:
    """A random, readable pass id (50 bits)."""
    return "".join(secrets.choice(_PASS_ID_ALPHABET) for _ in range(_PASS_ID_CHARS))


class Issuer:
    """Holds the private keys (files readable only by this service) and signs passes."""

    def __init__(self, data_dir: Path, store: IssuerStore) -> None:
        self.keys_dir = data_dir / "keys"
        self.store = store
        self._lock = threading.Lock()
        self._snapshots: dict[
            tuple[str, _GateKey | None], tuple[int, float, list[dict[str, Any]]]
        ] = {}
        # (keys version, the earliest planned retirement at that version, or None)
        self._next_retirement: tuple[int, datetime | None] | None = None

    def new_key(self, now: datetime) -> str:
        """Create an issuer key pair; the private half never leaves this machine."""
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        self._write_private(self._key_path(kid), private)
        self.store.add_key(private.public_key().public_bytes_raw(), now)
        log.info("created issuer key %s", kid)
        return kid

    def rotate(self, now: datetime, overlap: timedelta) -> Rotation:
        """Make a new key that signs from now on; every other active key keeps verifying
        until ``now + overlap``, then is retired (``retire_due``)."""
        if overlap < timedelta(0):
            raise ValueError("the overlap cannot be negative")
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        retire_at = now + overlap
        self._write_private(self._key_path(kid), private)
        rotating = self.store.rotate_key(private.public_key().public_bytes_raw(), retire_at, now)
        log.info("rotated to issuer key %s; %s retire at %s", kid, rotating, retire_at)
        if overlap == timedelta(0):
            self.retire_due(now)
        return Rotation(kid, retire_at, {old: self.store.live_passes(old, now) for old in rotating})

    def retire(
        self, kid: str, now: datetime, *, at: datetime | None = None, force: bool = False
    ) -> bool:
        """Retire a key at once (``at`` None) or plan it for ``at``; False if retired already.

        Refused (``KeyInUse``) when it would leave no active key to sign with, unless
        ``force``: then nothing signs until ``gate-sync keys new``.
        """
        when = now if at is None else at
        rows = {row.kid: row for row in self.store.issuer_keys()}
        row = rows.get(kid)
        if row is not None and row.retired_at is None and not force:
            others = [
                other
                for other in rows.values()
                if other.kid != kid
                and other.state == "active"
                and self._key_path(other.kid).exists()
            ]
            if row.state == "active" and not others:
                raise KeyInUse(
                    f"{kid} is the last active signing key: `gate-sync keys rotate` first,"
                    " or --force to leave none (nothing can be issued until `keys new`)"
                )
        changed = self.store.retire_key(kid, when, now)
        self.retire_due(now)
        return changed

    def retire_due(self, now: datetime, *, keys_version: int | None = None) -> list[str]:
        """Record the retirements that have fallen due and delete those keys' private files.

        Cheap when none is due: the earliest planned retirement is remembered per
        ``keys`` version, and every change to a plan raises that version. ``keys_version``
        is the store's, when the caller has just read it.
        """
        version = self.store.list_version("keys") if keys_version is None else keys_version
        with self._lock:
            known = self._next_retirement
        if known is None or known[0] != version:
            rows = self.store.issuer_keys()
            planned = [
                datetime.fromisoformat(row.retire_at)
                for row in rows
                if row.retired_at is None and row.retire_at is not None
            ]
            known = (version, min(planned, default=None))
            with self._lock:
                self._next_retirement = known
            self._drop_retired_files(rows)
        if known[1] is None or now < known[1]:
            return []
        retired = self.store.retire_due_keys(now)
        for kid in retired:
            log.warning("issuer key %s retired: gates now refuse its passes", kid)
        self._drop_retired_files(self.store.issuer_keys())
        return retired

    def _drop_retired_files(self, rows: list[KeyRow]) -> None:
        """Delete the private files of retired keys (on this machine; other replicas do
        the same when they next read the keys)."""
        for row in rows:
            if row.retired_at is not None:
                path = self._key_path(row.kid)
                try:
                    path.unlink()
                    log.info("deleted the private file of retired issuer key %s", row.kid)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    # A sync-only replica with the keys folder mounted read-only: the
                    # issuing machine deletes it; the store keeps it from signing anyway.
                    log.warning("cannot delete retired issuer key %s: %s", path, exc)

    def centre_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The centre key that signs the lists, made on first use; (kid, private key)."""
        path = self.keys_dir / CENTRE_KEY_FILE
        with self._lock:
            if not path.exists():
                private = Ed25519PrivateKey.generate()
                try:
                    self._write_private(path, private)
                    log.info("created centre key %s", key_id(private.public_key()))
                except FileExistsError:
                    pass  # another process made it meanwhile: use theirs
        private = self._load_path(path)
        return key_id(private.public_key()), private

    def centre_public(self) -> dict[str, str]:
        """The centre key's id and raw public key (base64), as a gate pins it."""
        kid, private = self.centre_key()
        raw = private.public_key().public_bytes_raw()
        return {"kid": kid, "public_key": base64.b64encode(raw).decode("ascii")}

    def signed_lists(
        self,
        now: datetime,
        *,
        gate_id: str | None,
        have: Mapping[str, int] | None = None,
        compound: str | None = None,
        extra: Sequence[ListUpdate] = (),
    ) -> dict[str, Any]:
        """The signed lists document for a gate that holds the versions ``have``.

        Lists the gate holds at the current version are left out; revocations and the
        directory go as deltas when the change log reaches back to the gate's version
        and the delta is smaller than the snapshot. ``gate_id`` None makes an export
        for any gate (the settings for every gate, no gate's own). ``compound`` is the
        gate's (its settings include the compound's); ``extra`` are lists made
        elsewhere (the compound lists, ``sync.compound_lists``), appended as given.
        Settings only a gate that knows the compound lists understands go only to a
        gate that names one of them in ``have``.
        """
        have = have or {}
        modern = any(name in have for name in COMPOUND_LISTS)
        self.retire_due(now)
        updates: list[ListUpdate] = []
        for name in DOWNLINK_LISTS:
            held = max(0, int(have.get(name, 0)))
            current = self._version(name)
            if held > current:
                # Only after the centre was restored from an older backup: move past it.
                log.warning("gate %s holds %s v%d above ours (v%d)", gate_id, name, held, current)
                self.store.raise_version(name, held)
                current = self._version(name)
            if held == current:
                continue
            updates.append(self._update(name, held, current, now, (gate_id, compound, modern)))
        updates.extend(extra)
        payload = ListsPayload(gate_id=gate_id, issued_at=now, lists=tuple(updates))
        kid, private = self.centre_key()
        return sign_lists(payload, kid, private)

    def _update(
        self, name: str, held: int, current: int, now: datetime, gate: _GateKey
    ) -> ListUpdate:
        items = self._snapshot(name, current, now, gate)
        if name in DELTA_LISTS and held >= 1:
            # Store versions are one below the versions sent (version 1 is the empty list).
            changed = self.store.changed_keys(name, held - 1)
            if changed is not None and len(changed) * 2 < max(len(items), 1):
                field = ITEM_KEY[name]
                by_key = {item[field]: item for item in items}
                return ListUpdate(
                    name=name,
                    kind="delta",
                    version=current,
                    base_version=held,
                    items=tuple(by_key[key] for key in sorted(changed) if key in by_key),
                    removed=tuple(sorted(key for key in changed if key not in by_key)),
                )
        return ListUpdate(name=name, kind="snapshot", version=current, items=tuple(items))

    def _snapshot(
        self, name: str, version: int, now: datetime, gate: _GateKey
    ) -> list[dict[str, Any]]:
        gate_id, compound, modern = gate
        cache_key = (name, gate if name == "settings" else None)
        with self._lock:
            cached = self._snapshots.get(cache_key)
            if cached and cached[0] == version and time.monotonic() - cached[1] < SNAPSHOT_TTL_S:
                return cached[2]
        if name == "settings":
            values = self.store.settings_for(gate_id or "", compound)
            if not modern:
                values = {k: v for k, v in values.items() if k not in COMPOUND_SETTING_KEYS}
            items = [
                SettingItem.model_validate({"key": key, "value": value}).model_dump(mode="json")
                for key, value in sorted(values.items())
            ]
        else:
            snapshot = getattr(self.bundle(now, only=name), name)
            items = [item.model_dump(mode="json") for item in snapshot.items]
        with self._lock:
            self._snapshots[cache_key] = (version, time.monotonic(), items)
        return items

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The newest active key (not retired, not rotating out) whose private half is here."""
        for row in reversed(self.store.issuer_keys()):
            if row.state == "active" and self._key_path(row.kid).exists():
                return row.kid, self._load(row.kid)
        raise IssuerKeyError(
            f"no active issuer key in {self.keys_dir}: create one with `gate-sync keys new`"
        )

    def issue(self, fields: PassFields, now: datetime) -> str:
        """Sign a pass, record it, and return its text."""
        self.retire_due(now)
        kid, private = self.signing_key()
        text = sign(fields, private)
        self.store.add_pass(fields, text, kid, now)
        return text

    def issue_many(
        self, items: Sequence[tuple[PassFields, int | None]], now: datetime
    ) -> list[str]:
        """Sign passes (each with the recorded person holding it, if any) and record them
        in one transaction; their texts, in order."""
        self.retire_due(now)
        kid, private = self.signing_key()
        texts = [sign(fields, private) for fields, _ in items]
        self.store.add_passes(
            [(fields, text, holder) for (fields, holder), text in zip(items, texts, strict=True)],
            kid,
            now,
        )
        return texts

    def issue_missing(
        self, items: Sequence[tuple[PassFields, int]], now: datetime
    ) -> list[tuple[PassFields, str]]:
        """Sign passes for persons and record those whose person holds no live pass of that
        kind yet, checked in the recording transaction; the recorded (fields, text), in order.
        """
        self.retire_due(now)
        kid, private = self.signing_key()
        signed = [(fields, sign(fields, private), holder) for fields, holder in items]
        recorded = set(self.store.add_passes(signed, kid, now, skip_held=True))
        return [(fields, text) for fields, text, _ in signed if fields.pass_id in recorded]

    def replace(self, old_id: str, fields: PassFields, reason: str, now: datetime) -> str:
        """Sign ``fields`` as the successor of pass ``old_id`` (same holder) and revoke the
        old one with ``reason``, in one transaction; the new pass's text."""
        self.retire_due(now)
        kid, private = self.signing_key()
        text = sign(fields, private)
        self.store.replace_pass(old_id, fields, text, kid, reason=reason, now=now)
        return text

    def bundle(self, now: datetime, only: str | None = None) -> ListsBundle:
        """Every list at its current version (or just ``only``), unsigned, for the gate's store."""
        wanted = LIST_NAMES if only is None else (only,)
        keys = [
            KeyItem(
                kid=row.kid,
                public_key=base64.b64encode(row.public_key).decode("ascii"),
                retired=row.retired_at is not None,
            )
            for row in self.store.issuer_keys()
            if "keys" in wanted
        ]
        revoked = [
            RevocationItem(pass_id=pid, revoked_at=datetime.fromisoformat(at), reason=why)
            for pid, at, why in (self.store.revocations(now) if "revocations" in wanted else [])
        ]
        isolated = [
            IsolationItem(
                household_id=household,
                start=datetime.fromisoformat(start),
                end=datetime.fromisoformat(end),
            )
            for household, start, end in (
                self.store.isolations(now) if "isolations" in wanted else []
            )
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
            for row in (self.store.directory(now) if "directory" in wanted else [])
        ]
        return ListsBundle(
            issued_at=now,
            keys=KeyList(version=self._version("keys"), items=tuple(keys)),
            revocations=RevocationList(version=self._version("revocations"), items=tuple(revoked)),
            isolations=IsolationList(version=self._version("isolations"), items=tuple(isolated)),
            directory=DirectoryList(version=self._version("directory"), items=tuple(people)),
        )

    def list_versions(self, now: datetime | None = None) -> dict[str, int]:
        """The version each list would carry if sent now (at ``now``: retirements due by
        then are recorded first, so the ``keys`` version already counts them)."""
        versions = {name: self._version(name) for name in DOWNLINK_LISTS}
        # Store versions are one below the versions sent (version 1 is the empty list).
        if now is not None and self.retire_due(now, keys_version=versions["keys"] - 1):
            versions["keys"] = self._version("keys")
        return versions

    def _version(self, name: str) -> int:
        # Version 1 is the list as it starts out, empty; each change adds one.
        return self.store.list_version(name) + 1

    def _key_path(self, kid: str) -> Path:
        return self.keys_dir / f"{kid}.pem"

    def _write_private(self, path: Path, private: Ed25519PrivateKey) -> None:
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created 0600 from the start: never a moment when others could read it. Written
        # whole under a temporary name, then linked into place: another process (a second
        # server worker) sees no key or the whole key, and two never both make one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # FileExistsError when another process got there first
        finally:
            tmp.unlink()

    def _load(self, kid: str) -> Ed25519PrivateKey:
        return self._load_path(self._key_path(kid))

    def _load_path(self, path: Path) -> Ed25519PrivateKey:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IssuerKeyError(f"{path} is readable by others: chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IssuerKeyError(f"{path} is not an Ed25519 key")
        return key
