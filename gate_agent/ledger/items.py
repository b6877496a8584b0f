"""The items of the centre's lists, checked field by field before any of them is stored.

A snapshot is ``(version, items)``; each item is a mapping with exactly its list's fields.
Anything malformed raises ``ValueError`` naming the list, the item's index and the field.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from gate_agent.core.passes import ExitQuota, PassFieldError, PassFields, PassKind, Scope
from gate_agent.ledger.records import canonical_json, utc_iso

#: The lists decisions read; their versions and ages are what ``GateState`` reports.
LIST_NAMES: tuple[str, ...] = ("keys", "revocations", "isolations", "settings")
#: The resident directory: a list like the others, for lookups at the console.
DIRECTORY = "directory"
#: What the other gates of the compound report through the centre; always snapshots.
COMPOUND_LISTS: tuple[str, ...] = ("alerts", "passages")
#: Every list a snapshot may carry.
SNAPSHOT_NAMES: tuple[str, ...] = (*LIST_NAMES, DIRECTORY, *COMPOUND_LISTS)
#: The pass kinds the directory lists: people (vehicles have no one to look up).
DIRECTORY_KINDS = frozenset(kind.value for kind in PassKind if kind is not PassKind.VEHICLE)
PUBLIC_KEY_BYTES = 32

Row = tuple[object, ...]

_QUOTA = re.compile(r"([1-9][0-9]?)/([1-9][0-9]?)")

# (table, its columns in row order, the statement that clears it): fixed per list.
# The clearing DELETE runs first and fails on a missing table, where sqlite-utils'
# delete_where() would skip it and insert_all() would quietly create a table without
# the schema's constraints.
TABLES: dict[str, tuple[str, tuple[str, ...], str]] = {
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
    DIRECTORY: (
        "directory",
        (
            "pass_id",
            "kind",
            "household_id",
            "scope",
            "valid_from",
            "valid_until",
            "display_name",
            "unit",
            "exit_quota",
        ),
        "DELETE FROM directory",
    ),
    "alerts": (
        "alerts",
        (
            "stream_id",
            "seq",
            "gate_id",
            "at",
            "reason",
            "household_id",
            "unit",
            "display_name",
            "pass_id",
        ),
        "DELETE FROM alerts",
    ),
    "passages": (
        "passages",
        ("stream_id", "seq", "gate_id", "pass_id", "household_id", "kind", "direction", "at"),
        "DELETE FROM passages",
    ),
}


def prepare(
    snapshots: Mapping[str, object],
) -> list[tuple[str, int, list[Row]]]:
    """Check every snapshot; return (name, version, rows) for each, in the order given."""
    prepared: list[tuple[str, int, list[Row]]] = []
    for name, snapshot in snapshots.items():
        if name not in _PARSERS:
            raise ValueError(f"unknown list {name!r}; lists are {', '.join(SNAPSHOT_NAMES)}")
        version, items = _unpack(name, snapshot)
        prepared.append((name, version, _parse_items(name, items)))
    return prepared


def _unpack(name: str, snapshot: object) -> tuple[int, Sequence[object]]:
    if not isinstance(snapshot, tuple | list) or len(snapshot) != 2:
        raise ValueError(f"{name}: expected a (version, items) pair")
    version, items = snapshot
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{name}: version must be an int of at least 1, got {version!r}")
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise ValueError(f"{name}: items must be a sequence of mappings")
    return version, items


def _parse_items(name: str, items: Sequence[object]) -> list[Row]:
    parser = _PARSERS[name]
    fields = _FIELDS[name]
    rows: list[Row] = []
    seen: set[object] = set()
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(item).__name__}")
        if set(item) != set(fields):
            raise ValueError(f"{where}: expected exactly the fields {sorted(fields)}")
        row = parser(where, item)
        key = row[:2] if name in ("isolations", *COMPOUND_LISTS) else row[0]
        if key in seen:
            raise ValueError(f"{where}: duplicate {fields[0]} {row[0]!r}")
        seen.add(key)
        rows.append(row)
    return rows


def _parse_key(where: str, item: Mapping[str, object]) -> Row:
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


def _parse_revocation(where: str, item: Mapping[str, object]) -> Row:
    return (
        _text(item["pass_id"], where, "pass_id"),
        utc_iso(_time(item["revoked_at"], where, "revoked_at")),
        _text(item["reason"], where, "reason"),
    )


def _parse_isolation(where: str, item: Mapping[str, object]) -> Row:
    start = _time(item["start"], where, "start")
    end = _time(item["end"], where, "end")
    if start >= end:
        raise ValueError(f"{where}: start must be before end")
    return (_text(item["household_id"], where, "household_id"), utc_iso(start), utc_iso(end))


def _parse_setting(where: str, item: Mapping[str, object]) -> Row:
    try:
        value = canonical_json(item["value"]).decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: value is not JSON-serializable: {exc}") from exc
    return (_text(item["key"], where, "key"), value)


def _parse_directory(where: str, item: Mapping[str, object]) -> Row:
    # The pass format's own checks (ids, scope, unit, masked name, validity) judge the
    # item, so the directory holds only what could have been printed on a pass.
    kind = _text(item["kind"], where, "kind")
    if kind not in DIRECTORY_KINDS:
        raise ValueError(f"{where}: kind must be one of {sorted(DIRECTORY_KINDS)}, got {kind!r}")
    quota_text = item["exit_quota"]
    quota: ExitQuota | None = None
    if quota_text is not None:
        match = _QUOTA.fullmatch(_text(quota_text, where, "exit_quota"))
        if match is None:
            raise ValueError(f"{where}: exit_quota must be null or EXITS/DAYS, got {quota_text!r}")
        quota = ExitQuota(int(match[1]), int(match[2]))
    unit = item["unit"]
    if not isinstance(unit, str):
        raise ValueError(f"{where}: unit must be a string (empty for none)")
    try:
        fields = PassFields(
            pass_id=_text(item["pass_id"], where, "pass_id"),
            kind=PassKind(kind),
            household_id=_text(item["household_id"], where, "household_id"),
            scope=Scope.parse(_text(item["scope"], where, "scope")),
            valid_from=_time(item["valid_from"], where, "valid_from"),
            valid_until=_time(item["valid_until"], where, "valid_until"),
            display_name=_text(item["display_name"], where, "display_name"),
            unit=unit,
            exit_quota=quota,
        )
    except PassFieldError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return (
        fields.pass_id,
        fields.kind.value,
        fields.household_id,
        str(fields.scope),
        utc_iso(fields.valid_from),
        utc_iso(fields.valid_until),
        fields.display_name,
        fields.unit,
        None if quota is None else f"{quota.exits}/{quota.days}",
    )


def _parse_alert(where: str, item: Mapping[str, object]) -> Row:
    pass_id = item["pass_id"]
    for field in ("unit", "display_name"):
        if not isinstance(item[field], str):
            raise ValueError(f"{where}: {field} must be a string (empty for none)")
    return (
        *_entry_key(where, item),
        utc_iso(_time(item["at"], where, "at")),
        _text(item["reason"], where, "reason"),
        _text(item["household_id"], where, "household_id"),
        item["unit"],
        item["display_name"],
        None if pass_id is None else _text(pass_id, where, "pass_id"),
    )


def _parse_passage(where: str, item: Mapping[str, object]) -> Row:
    direction = _text(item["direction"], where, "direction")
    if direction not in ("in", "out"):
        raise ValueError(f"{where}: direction must be in or out, got {direction!r}")
    stream_id, seq, gate_id = _entry_key(where, item)
    return (
        stream_id,
        seq,
        gate_id,
        _text(item["pass_id"], where, "pass_id"),
        _text(item["household_id"], where, "household_id"),
        _text(item["kind"], where, "kind"),
        direction,
        utc_iso(_time(item["at"], where, "at")),
    )


def _entry_key(where: str, item: Mapping[str, object]) -> tuple[str, int, str]:
    seq = item["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"{where}: seq must be a positive int, got {seq!r}")
    return (
        _text(item["stream_id"], where, "stream_id"),
        seq,
        _text(item["gate_id"], where, "gate_id"),
    )


_PARSERS: dict[str, Callable[[str, Mapping[str, object]], Row]] = {
    "keys": _parse_key,
    "revocations": _parse_revocation,
    "isolations": _parse_isolation,
    "settings": _parse_setting,
    DIRECTORY: _parse_directory,
    "alerts": _parse_alert,
    "passages": _parse_passage,
}
# The fields of each list's items; the first is the item's identity, for the duplicate check.
_FIELDS: dict[str, tuple[str, ...]] = {
    "keys": ("kid", "public_key", "retired"),
    "revocations": ("pass_id", "revoked_at", "reason"),
    "isolations": ("household_id", "start", "end"),
    "settings": ("key", "value"),
    DIRECTORY: TABLES[DIRECTORY][1],
    "alerts": TABLES["alerts"][1],
    "passages": TABLES["passages"][1],
}


def _text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {field} must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where}: {field} is not valid Unicode text") from exc
    return value


def _time(value: object, where: str, field: str) -> datetime:
    text = _text(value, where, field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {field} is not an ISO 8601 time: {text!r}") from exc
    if moment.utcoffset() is None:
        raise ValueError(f"{where}: {field} must carry a UTC offset: {text!r}")
    try:
        utc_iso(moment)
    except OverflowError as exc:
        raise ValueError(f"{where}: {field} is out of range in UTC: {text!r}") from exc
    return moment
