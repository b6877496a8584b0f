"""Ledger entry records: the draft handed in and the stored entry.

The chain hash over them is defined in ``gate_agent.core.chain`` (shared with the
central server) and re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum

from gate_agent.core.chain import (
    BOOL_COLUMNS,
    GENESIS_PREFIX,
    UNHASHED_COLUMNS,
    canonical_json,
    chain_document,
    document_hash,
    genesis_hash,
    personal_digest,
    row_hash,
)

__all__ = [
    "BOOL_COLUMNS",
    "ENTRY_COLUMNS",
    "GENESIS_PREFIX",
    "UNHASHED_COLUMNS",
    "EntryDraft",
    "StoredEntry",
    "build_row",
    "canonical_json",
    "chain_document",
    "document_hash",
    "draft_columns",
    "entry_from_row",
    "genesis_hash",
    "personal_digest",
    "row_hash",
    "utc_iso",
]
DIRECTIONS = frozenset({"in", "out"})
OUTCOMES = frozenset({"allow", "deny", "recheck"})
TEMPERATURE_SOURCES = frozenset({"sensor", "manual"})
SALT_BYTES = 16
_MAX_INT64 = 2**63 - 1

SqlValue = str | int | float | bytes | None


@dataclass(frozen=True)
class EntryDraft:
    """One gate event as the station hands it to the ledger, in primitives."""

    direction: str
    outcome: str
    reason: str
    wall_time: datetime
    monotonic_ns: int
    boot_id: str
    clock_synced: bool
    pass_id: str | None = None
    pass_kind: str | None = None
    household_id: str | None = None
    manual_identity: str | None = None
    temperature_celsius: float | None = None
    temperature_raw: tuple[float, ...] = ()
    ambient_celsius: float | None = None
    temperature_model: str | None = None
    temperature_source: str | None = None
    guard: str | None = None
    alert: bool = False
    next_step: str | None = None
    personal: Mapping[str, str] | None = None
    note: str | None = None


@dataclass(frozen=True)
class StoredEntry:
    """One entry as the ledger holds it: the draft's fields plus its place in the chain."""

    seq: int
    stream_id: str
    gate_id: str
    direction: str
    outcome: str
    reason: str
    wall_time: datetime
    monotonic_ns: int
    boot_id: str
    clock_synced: bool
    pass_id: str | None
    pass_kind: str | None
    household_id: str | None
    manual_identity: str | None
    temperature_celsius: float | None
    temperature_raw: tuple[float, ...]
    ambient_celsius: float | None
    temperature_model: str | None
    temperature_source: str | None
    guard: str | None
    alert: bool
    next_step: str | None
    note: str | None
    personal: Mapping[str, str] | None
    personal_digest: str | None
    prev_hash: str
    hash: str


# Every column of the entries table: the stored entry's fields plus the personal salt.
# Derived from StoredEntry; a test holds it equal to the core's explicit v1 tuple.
ENTRY_COLUMNS: tuple[str, ...] = (*(field.name for field in fields(StoredEntry)), "personal_salt")


def utc_iso(moment: datetime) -> str:
    """A timezone-aware time as fixed-width UTC ISO 8601 with microseconds (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def draft_columns(draft: EntryDraft) -> tuple[dict[str, SqlValue], str | None]:
    """Validate a draft; return its column values and its personal data as canonical JSON."""
    if not isinstance(draft, EntryDraft):
        raise ValueError(f"expected an EntryDraft, got {type(draft).__name__}")
    wall_time = draft.wall_time
    if not isinstance(wall_time, datetime) or wall_time.utcoffset() is None:
        raise ValueError("wall_time must be a timezone-aware datetime")
    monotonic_ns = draft.monotonic_ns
    if isinstance(monotonic_ns, bool) or not isinstance(monotonic_ns, int):
        raise ValueError("monotonic_ns must be an int")
    if not 0 <= monotonic_ns <= _MAX_INT64:
        raise ValueError(f"monotonic_ns must be between 0 and 2**63-1, got {monotonic_ns}")
    raw = draft.temperature_raw
    if not isinstance(raw, tuple | list):
        raise ValueError("temperature_raw must be a tuple of numbers")
    columns: dict[str, SqlValue] = {
        "direction": _text(draft.direction, "direction", DIRECTIONS),
        "outcome": _text(draft.outcome, "outcome", OUTCOMES),
        "reason": _text(draft.reason, "reason"),
        "wall_time": _wall_time(wall_time),
        "monotonic_ns": monotonic_ns,
        "boot_id": _text(draft.boot_id, "boot_id"),
        "clock_synced": int(_flag(draft.clock_synced, "clock_synced")),
        "pass_id": _optional_text(draft.pass_id, "pass_id"),
        "pass_kind": _optional_text(draft.pass_kind, "pass_kind"),
        "household_id": _optional_text(draft.household_id, "household_id"),
        "manual_identity": _optional_text(draft.manual_identity, "manual_identity"),
        "temperature_celsius": _optional_celsius(draft.temperature_celsius, "temperature_celsius"),
        "temperature_raw": canonical_json(
            [_celsius(sample, "temperature_raw sample") for sample in raw]
        ).decode("utf-8"),
        "ambient_celsius": _optional_celsius(draft.ambient_celsius, "ambient_celsius"),
        "temperature_model": _optional_text(draft.temperature_model, "temperature_model"),
        "temperature_source": _optional_text(
            draft.temperature_source, "temperature_source", TEMPERATURE_SOURCES
        ),
        "guard": _optional_text(draft.guard, "guard"),
        "alert": int(_flag(draft.alert, "alert")),
        "next_step": _optional_text(draft.next_step, "next_step"),
        "note": _optional_text(draft.note, "note"),
    }
    return columns, _personal_json(draft.personal)


def build_row(
    columns: Mapping[str, SqlValue],
    personal_json: str | None,
    *,
    seq: int,
    stream_id: str,
    gate_id: str,
    prev_hash: str,
    salt: bytes,
) -> dict[str, SqlValue]:
    """Complete a validated draft into the full row, chain hash included."""
    row: dict[str, SqlValue] = dict(columns)
    row.update(seq=seq, stream_id=stream_id, gate_id=gate_id, prev_hash=prev_hash)
    if personal_json is None:
        row.update(personal=None, personal_salt=None, personal_digest=None)
    else:
        digest = personal_digest(salt, personal_json)
        row.update(personal=personal_json, personal_salt=salt, personal_digest=digest)
    row["hash"] = row_hash(row)
    return row


def entry_from_row(row: Mapping[str, object]) -> StoredEntry:
    """Turn a stored row back into a ``StoredEntry``."""
    values = {column: row[column] for column in ENTRY_COLUMNS if column != "personal_salt"}
    values["wall_time"] = datetime.fromisoformat(str(row["wall_time"]))
    values["clock_synced"] = row["clock_synced"] == 1
    values["alert"] = row["alert"] == 1
    values["temperature_raw"] = tuple(json.loads(str(row["temperature_raw"])))
    personal = row["personal"]
    values["personal"] = None if personal is None else json.loads(str(personal))
    return StoredEntry(**values)  # type: ignore[arg-type]


def _plain(value: object) -> object:
    # The core's StrEnums are welcome; store their value, never their repr.
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return str.__str__(value)
    return value


def _text(value: object, name: str, allowed: frozenset[str] | None = None) -> str:
    text = _optional_text(value, name, allowed)
    if not text:
        raise ValueError(f"{name} must be a non-empty string")
    return text


def _optional_text(value: object, name: str, allowed: frozenset[str] | None = None) -> str | None:
    value = _plain(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text") from exc
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def _wall_time(moment: datetime) -> str:
    try:
        return utc_iso(moment)
    except OverflowError as exc:
        raise ValueError(f"wall_time {moment} is out of range in UTC") from exc


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _celsius(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    # Two decimals is finer than any thermometer here and re-reads bit for bit;
    # adding 0.0 turns -0.0 into 0.0, which SQLite would do on its own anyway.
    return round(float(value), 2) + 0.0


def _optional_celsius(value: object, name: str) -> float | None:
    return None if value is None else _celsius(value, name)


def _personal_json(personal: object) -> str | None:
    if personal is None:
        return None
    if not isinstance(personal, Mapping):
        raise ValueError("personal must be a mapping of strings to strings")
    if not personal:
        return None
    clean: dict[str, str] = {}
    for key, value in personal.items():
        name = _text(key, "personal key")
        text = _optional_text(value, f"personal[{name!r}]")
        if text is None:
            raise ValueError(f"personal[{name!r}] must be a string, got None")
        clean[name] = text
    return canonical_json(clean).decode("utf-8")
