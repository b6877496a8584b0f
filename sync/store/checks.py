"""Checks of one uploaded entry, and its corrected time: shared by every store implementation.

An entry that fails a check is still stored, flagged with the problem, so one bad
entry never blocks the stream behind it; the checks only say what is wrong.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gate_agent.core.chain import (
    BOOL_COLUMNS,
    ENTRY_COLUMNS,
    canonical_json,
    document_hash,
    personal_digest,
    row_hash,
)
from sync.protocol import Batch, StreamConflict

logger = logging.getLogger(__name__)

_HASH = re.compile(r"^[0-9a-f]{64}$")
_TEXT = frozenset({"stream_id", "gate_id", "direction", "outcome", "reason", "wall_time"})
_TEXT |= {"boot_id", "prev_hash", "hash"}
_INT = frozenset({"seq", "monotonic_ns"})
_NUMBER = frozenset({"temperature_celsius", "ambient_celsius"})


def claimed_hash(entry: Mapping[str, object]) -> str:
    """The hash an entry claims, or a stand-in derived from its content when it has none.

    The stand-in is deterministic, so a repeat of a malformed entry still compares equal.
    """
    value = entry.get("hash")
    if isinstance(value, str) and _HASH.match(value):
        return value
    return "unhashed:" + document_hash(dict(entry))


def content_json(entry: Mapping[str, object]) -> str:
    """The entry as stored centrally: its canonical JSON text."""
    return canonical_json(dict(entry)).decode("utf-8")


def without_personal(content: str) -> str:
    """Stored content with its personal data and salt blanked: the retention purge.

    ``personal_digest`` stays, and the chain hash never covered the personal data, so
    the entry checks as before (``entry_problems`` takes a purged entry as sound).
    """
    entry = json.loads(content)
    entry["personal"] = None
    entry["personal_salt"] = None
    return content_json(entry)


#: Entries whose personal data the retention purge blanks per transaction.
PURGE_CHUNK = 500


def entry_problems(
    entry: Mapping[str, object], *, gate_id: str, stream_id: str, prev_hash: str
) -> list[str]:
    """What is wrong with an entry at its place in the stream; empty when it is sound."""
    problems = _type_problems(entry)
    if problems:
        return problems
    if entry["gate_id"] != gate_id:
        problems.append(f"gate_id {entry['gate_id']!r} is not the uploading gate {gate_id!r}")
    if entry["stream_id"] != stream_id:
        problems.append(f"stream_id {entry['stream_id']!r} is not the stream {stream_id!r}")
    if row_hash(entry) != entry["hash"]:
        problems.append("hash does not match the entry's content")
    if entry["prev_hash"] != prev_hash:
        problems.append("prev_hash does not match the previous stored entry")
    problems.extend(_personal_problems(entry))
    return problems


def corrected_time(
    entry: Mapping[str, object], batch: Batch, received_at: datetime
) -> datetime | None:
    """The entry's time by the centre's clock, when the gate's clock could not be trusted.

    Corrected when the batch was sent with an unsynced clock or the entry was made with
    one, and only for entries of the boot that sent the batch: their monotonic time and
    the batch's ``sent_monotonic_ns`` are on the same clock, and the centre's time at
    receipt stands for ``sent_monotonic_ns`` (the request's transit is not subtracted).
    """
    mono = entry.get("monotonic_ns")
    if entry.get("boot_id") != batch.boot_id or isinstance(mono, bool) or not isinstance(mono, int):
        return None
    entry_synced = entry.get("clock_synced") in (True, 1)
    if batch.clock_synced and entry_synced:
        return None
    return received_at - timedelta(microseconds=(batch.sent_monotonic_ns - mono) / 1000)


def clock_offset_ms(batch: Batch, received_at: datetime) -> int:
    """How far the centre's clock is ahead of the gate's, in milliseconds, at receipt."""
    return round((received_at - batch.sent_at).total_seconds() * 1000)


def _type_problems(entry: Mapping[str, object]) -> list[str]:
    problems: list[str] = []
    if entry.keys() != _COLUMN_SET:
        problems = [f"missing column {c}" for c in ENTRY_COLUMNS if c not in entry]
        problems += [f"unknown column {c}" for c in sorted(set(entry) - _COLUMN_SET)]
    for column, ok in _CHECKS:
        if column in entry and not ok(entry[column]):
            value = entry[column]
            problems.append(f"{column} has the wrong type ({type(value).__name__})")
    if not problems:
        wall = str(entry["wall_time"])
        try:
            aware = datetime.fromisoformat(wall).utcoffset() is not None
        except ValueError:
            aware = False
        if not aware:
            problems.append("wall_time is not an ISO 8601 time with an offset")
        for column in ("hash", "prev_hash"):
            if not _HASH.match(str(entry[column])):
                problems.append(f"{column} is not a SHA-256 hex digest")
    return problems


# One checker per column, chosen once: an ingest checks every column of every entry.


def _nonempty_text(value: object) -> bool:
    return type(value) is str and value != ""


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _flag(value: object) -> bool:
    # The ledger row holds 0/1; a JSON boolean is the same value.
    return type(value) is bool or (type(value) is int and value in (0, 1))


def _optional_number(value: object) -> bool:
    return value is None or _is_number(value)


def _optional_text(value: object) -> bool:
    return value is None or type(value) is str


def _samples(value: object) -> bool:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return False
    return isinstance(value, list) and all(_is_number(v) for v in value)


def _checker(column: str) -> Callable[[object], bool]:
    if column in _TEXT:
        return _nonempty_text
    if column in _INT:
        return _count
    if column in BOOL_COLUMNS:
        return _flag
    if column in _NUMBER:
        return _optional_number
    if column == "temperature_raw":
        return _samples
    # Every other column is text or null.
    return _optional_text


_COLUMN_SET = frozenset(ENTRY_COLUMNS)
_CHECKS = tuple((column, _checker(column)) for column in ENTRY_COLUMNS)


def _is_number(value: object) -> bool:
    kind = type(value)
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return kind is int


def _personal_problems(entry: Mapping[str, object]) -> list[str]:
    personal, salt, digest = entry["personal"], entry["personal_salt"], entry["personal_digest"]
    if personal is None:
        # Purged at the gate (or never any): the digest alone stays in the chain.
        return [] if salt is None else ["personal_salt without personal data"]
    if salt is None or digest is None:
        return ["personal data without its salt or digest"]
    try:
        raw_salt = bytes.fromhex(str(salt))
    except ValueError:
        return ["personal_salt is not hex"]
    if personal_digest(raw_salt, str(personal)) != digest:
        return ["personal data does not match personal_digest"]
    return []


# -- a batch against what the store holds: shared by every store ---------------------------


def judge_batch(
    batch: Batch, stored: int, held: Mapping[int, str]
) -> tuple[StreamConflict | None, int]:
    """A gap or content conflict, or None; and how many of the batch's entries are stored.

    ``stored`` is the stream's cursor, ``held`` the stored hashes of the batch's sequence
    numbers up to it.
    """
    first = batch.first_seq
    if first > stored + 1:
        return StreamConflict(error="gap", cursor=stored, seq=stored + 1), 0
    for offset, entry in enumerate(batch.entries):
        seq = first + offset
        if seq > stored:
            break
        if held.get(seq) != claimed_hash(entry):
            return StreamConflict(error="content_conflict", cursor=stored, seq=seq), 0
    return None, min(len(batch.entries), stored - first + 1)


@dataclass(frozen=True)
class NewEntry:
    """An entry to store at its place in the stream, checked; ``problems`` flag it."""

    seq: int
    hash: str
    prev_hash: str | None
    content: str
    problems: tuple[str, ...]
    wall_time: str | None
    corrected_time: datetime | None


def new_entries(
    batch: Batch,
    skip: int,
    *,
    gate_id: str,
    stream_id: str,
    prev_hash: str,
    reference: datetime | None,
) -> list[NewEntry]:
    """The batch's entries after the first ``skip`` (already stored), checked in order.

    ``prev_hash`` is the stored hash before them; ``reference`` the time that stands for
    the batch's monotonic clock (None: correct no time).
    """
    made: list[NewEntry] = []
    prev = prev_hash
    for offset, entry in enumerate(batch.entries[skip:], start=skip):
        seq = batch.first_seq + offset
        problems = entry_problems(entry, gate_id=gate_id, stream_id=stream_id, prev_hash=prev)
        digest = claimed_hash(entry)
        wall, raw_prev = entry.get("wall_time"), entry.get("prev_hash")
        made.append(
            NewEntry(
                seq=seq,
                hash=digest,
                prev_hash=raw_prev if isinstance(raw_prev, str) else None,
                content=content_json(entry),
                problems=tuple(problems),
                wall_time=wall if isinstance(wall, str) else None,
                corrected_time=None
                if reference is None
                else corrected_time(entry, batch, reference),
            )
        )
        if problems:
            logger.warning(
                "gate %s stream %s seq %d flagged: %s", gate_id, stream_id, seq, "; ".join(problems)
            )
        prev = digest  # a flagged entry's claimed hash still continues the chain
    return made
