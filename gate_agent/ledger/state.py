"""The gate's local lists: issuer keys, revocations, isolated households and settings.

Each list arrives whole, with a version; it replaces the stored list only when its version
is higher, and several lists arriving together are applied in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from gate_agent.ledger.db import Store
from gate_agent.ledger.records import canonical_json, utc_iso

logger = logging.getLogger(__name__)

LIST_NAMES: tuple[str, ...] = ("keys", "revocations", "isolations", "settings")
PUBLIC_KEY_BYTES = 32

_Row = tuple[object, ...]

# (table, its columns in item order, the statement that clears it): fixed per list.
# The clearing DELETE runs first and fails on a missing table, where sqlite-utils'
# delete_where() would skip it and insert_all() would quietly create a table without
# the schema's constraints.
_TABLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "keys": ("issuer_keys", ("kid", "public_key", "retired"), "DELETE FROM issuer_keys"),
    "revocations": (
        "revocations",
        ("pass_id", "revoked_at", "reason"),
        "DELETE FROM revocations",
    ),
    "isolations": (
        "isolations",
        ("household_id", "starts_at", "ends_at"),
        "DELETE FROM isolations",
    ),
    "settings": ("settings", ("key", "value"), "DELETE FROM settings"),
}


class GateState:
    """Reads and versioned replacement of the gate's lists, through the ledger's one writer."""

    def __init__(self, store: Store) -> None:
        """Bind to the ledger's store; get one from ``Ledger.state``."""
        self._store = store

    def list_versions(self) -> dict[str, int]:
        """The stored version of every list, 0 for a list never loaded."""
        versions = dict.fromkeys(LIST_NAMES, 0)
        with self._store.read() as db:
            for row in db.query("SELECT name, version FROM list_versions"):
                versions[row["name"]] = row["version"]
        return versions

    def list_applied_at(self) -> dict[str, datetime | None]:
        """When each list was last replaced (UTC), None for a list never loaded."""
        applied: dict[str, datetime | None] = dict.fromkeys(LIST_NAMES)
        with self._store.read() as db:
            for row in db.query("SELECT name, applied_at FROM list_versions"):
                applied[row["name"]] = datetime.fromisoformat(row["applied_at"])
        return applied

    def list_ages(self, now: datetime) -> dict[str, timedelta | None]:
        """How long ago each list was last replaced, None for a list never loaded."""
        return {
            name: None if applied is None else now - applied
            for name, applied in self.list_applied_at().items()
        }

    def apply_snapshots(
        self, snapshots: Mapping[str, tuple[int, Sequence[Mapping[str, object]]]]
    ) -> list[str]:
        """Replace each list whose version is newer than the stored one; return those applied.

        All lists go in one transaction. An unknown list name or a malformed item raises
        ``ValueError`` and nothing is applied.
        """
        prepared: list[tuple[str, int, list[_Row]]] = []
        for name, snapshot in snapshots.items():
            if name not in _PARSERS:
                raise ValueError(f"unknown list {name!r}; lists are {', '.join(LIST_NAMES)}")
            version, items = _unpack(name, snapshot)
            prepared.append((name, version, _parse_items(name, items)))
        applied: list[str] = []
        with self._store.write() as db:
            stored = {
                row["name"]: row["version"]
                for row in db.query("SELECT name, version FROM list_versions")
            }
            applied_at = utc_iso(self._store.clock())
            for name, version, rows in prepared:
                if version <= stored.get(name, 0):
                    logger.info("list %s version %d skipped: have %d", name, version, stored[name])
                    continue
                table, columns, clear = _TABLES[name]
                db.execute(clear)
                db.table(table).insert_all(dict(zip(columns, row, strict=True)) for row in rows)
                db.execute(
                    "INSERT INTO list_versions (name, version, applied_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE"
                    " SET version = excluded.version, applied_at = excluded.applied_at",
                    (name, version, applied_at),
                )
                applied.append(name)
        for name, version, rows in prepared:
            if name in applied:
                logger.info("list %s now at version %d (%d items)", name, version, len(rows))
        return applied

    def issuer_keys(self) -> list[tuple[str, bytes, bool]]:
        """Every issuer key as (kid, raw 32-byte Ed25519 public key, retired), by kid."""
        with self._store.read() as db:
            rows = db.query("SELECT kid, public_key, retired FROM issuer_keys ORDER BY kid")
            return [(row["kid"], row["public_key"], row["retired"] == 1) for row in rows]

    def revoked_pass_ids(self) -> frozenset[str]:
        """The ids of every revoked pass."""
        with self._store.read() as db:
            return frozenset(row["pass_id"] for row in db.query("SELECT pass_id FROM revocations"))

    def revocations(self) -> list[tuple[str, datetime, str]]:
        """Every revocation as (pass_id, revoked_at in UTC, reason), by pass id."""
        with self._store.read() as db:
            rows = db.query("SELECT pass_id, revoked_at, reason FROM revocations ORDER BY pass_id")
            return [
                (row["pass_id"], datetime.fromisoformat(row["revoked_at"]), row["reason"])
                for row in rows
            ]

    def isolations(self) -> list[tuple[str, datetime, datetime]]:
        """Every isolated household as (household_id, start, end) in UTC."""
        with self._store.read() as db:
            rows = db.query(
                "SELECT household_id, starts_at, ends_at FROM isolations"
                " ORDER BY household_id, starts_at"
            )
            return [
                (
                    row["household_id"],
                    datetime.fromisoformat(row["starts_at"]),
                    datetime.fromisoformat(row["ends_at"]),
                )
                for row in rows
            ]

    def settings(self) -> dict[str, object]:
        """The gate settings as a dict of JSON values."""
        with self._store.read() as db:
            rows = db.query("SELECT key, value FROM settings ORDER BY key")
            return {row["key"]: json.loads(row["value"]) for row in rows}


def _unpack(name: str, snapshot: object) -> tuple[int, Sequence[object]]:
    if not isinstance(snapshot, tuple | list) or len(snapshot) != 2:
        raise ValueError(f"{name}: expected a (version, items) pair")
    version, items = snapshot
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{name}: version must be an int of at least 1, got {version!r}")
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise ValueError(f"{name}: items must be a sequence of mappings")
    return version, items


def _parse_items(name: str, items: Sequence[object]) -> list[_Row]:
    parser = _PARSERS[name]
    rows: list[_Row] = []
    seen: set[object] = set()
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        fields = _PARSER_FIELDS[name]
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(item).__name__}")
        if set(item) != set(fields):
            raise ValueError(f"{where}: expected exactly the fields {sorted(fields)}")
        row = parser(where, item)
        key = row[:2] if name == "isolations" else row[0]
        if key in seen:
            raise ValueError(f"{where}: duplicate {fields[0]} {row[0]!r}")
        seen.add(key)
        rows.append(row)
    return rows


def _parse_key(where: str, item: Mapping[str, object]) -> _Row:
    encoded = _text(item["public_key"], where, "public_key")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where}: public_key is not valid base64") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"{where}: public_key must decode to 32 bytes, got {len(raw)}")
    retired = item["retired"]
    if not isinstance(retired, bool):
        raise ValueError(f"{where}: retired must be a bool")
    return (_text(item["kid"], where, "kid"), raw, int(retired))


def _parse_revocation(where: str, item: Mapping[str, object]) -> _Row:
    return (
        _text(item["pass_id"], where, "pass_id"),
        _time(item["revoked_at"], where, "revoked_at"),
        _text(item["reason"], where, "reason"),
    )


def _parse_isolation(where: str, item: Mapping[str, object]) -> _Row:
    start = _time(item["start"], where, "start")
    end = _time(item["end"], where, "end")
    if start >= end:
        raise ValueError(f"{where}: start must be before end")
    return (_text(item["household_id"], where, "household_id"), start, end)


def _parse_setting(where: str, item: Mapping[str, object]) -> _Row:
    try:
        value = canonical_json(item["value"]).decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: value is not JSON-serializable: {exc}") from exc
    return (_text(item["key"], where, "key"), value)


_PARSERS: dict[str, Callable[[str, Mapping[str, object]], _Row]] = {
    "keys": _parse_key,
    "revocations": _parse_revocation,
    "isolations": _parse_isolation,
    "settings": _parse_setting,
}
# The first field is each list's identity, for the duplicate check.
_PARSER_FIELDS: dict[str, tuple[str, ...]] = {
    "keys": ("kid", "public_key", "retired"),
    "revocations": ("pass_id", "revoked_at", "reason"),
    "isolations": ("household_id", "start", "end"),
    "settings": ("key", "value"),
}


def _text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {field} must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where}: {field} is not valid Unicode text") from exc
    return value


def _time(value: object, where: str, field: str) -> str:
    text = _text(value, where, field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {field} is not an ISO 8601 time: {text!r}") from exc
    if moment.utcoffset() is None:
        raise ValueError(f"{where}: {field} must carry a UTC offset: {text!r}")
    return utc_iso(moment)
