"""The ledger's hash chain, pure so that the gate and the centre compute it the same way.

The chain hash of an entry is the SHA-256 (hex) of the canonical JSON (sorted keys,
compact separators, UTF-8, no ASCII escaping) of every entry column in
``ENTRY_COLUMNS`` except ``UNHASHED_COLUMNS`` (``hash``, ``personal``, ``personal_salt``).
Booleans are JSON booleans (a stored 0/1 counts as one), ``temperature_raw`` is a JSON
array of numbers (its stored JSON text is read back), ``wall_time`` is UTC ISO 8601 with
microseconds. ``personal_digest`` stands in for the personal data: SHA-256 (hex) of a
random 16-byte salt followed by the personal data's canonical JSON, so a retention purge
that blanks the data and its salt leaves the chain verifiable. The first entry's
``prev_hash`` is SHA-256 of ``b"gate-station/ledger/v1/" + stream_id``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping

GENESIS_PREFIX = b"gate-station/ledger/v1/"

#: Every column of a v1 ledger entry, in the ledger's order. Changing it changes every
#: hash: a new column means a new chain version (and a new genesis prefix).
ENTRY_COLUMNS: tuple[str, ...] = (
    "seq",
    "stream_id",
    "gate_id",
    "direction",
    "outcome",
    "reason",
    "wall_time",
    "monotonic_ns",
    "boot_id",
    "clock_synced",
    "pass_id",
    "pass_kind",
    "household_id",
    "manual_identity",
    "temperature_celsius",
    "temperature_raw",
    "ambient_celsius",
    "temperature_model",
    "temperature_source",
    "guard",
    "alert",
    "next_step",
    "note",
    "personal",
    "personal_digest",
    "prev_hash",
    "hash",
    "personal_salt",
)

#: Columns the chain hash leaves out: the hash itself and the purgeable personal data.
UNHASHED_COLUMNS = frozenset({"hash", "personal", "personal_salt"})

#: Columns stored as 0/1 and hashed as JSON booleans.
BOOL_COLUMNS = frozenset({"clock_synced", "alert"})


def canonical_json(value: object) -> bytes:
    """Serialize ``value`` the one way the chain hashes it."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def genesis_hash(stream_id: str) -> str:
    """The ``prev_hash`` of a stream's first entry."""
    return hashlib.sha256(GENESIS_PREFIX + stream_id.encode("utf-8")).hexdigest()


def personal_digest(salt: bytes, personal_json: str) -> str:
    """The salted digest that stands in the chain for an entry's personal data."""
    return hashlib.sha256(salt + personal_json.encode("utf-8")).hexdigest()


def chain_document(row: Mapping[str, object]) -> dict[str, object]:
    """The JSON document an entry's hash covers, built from its column values.

    Raises ``KeyError`` when a hashed column is missing.
    """
    doc: dict[str, object] = {}
    for column in ENTRY_COLUMNS:
        if column in UNHASHED_COLUMNS:
            continue
        value = row[column]
        # Odd values stay as they are, so they can only fail to match.
        if column in BOOL_COLUMNS and value in (0, 1) and not isinstance(value, float):
            value = value == 1
        elif column == "temperature_raw" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        doc[column] = value
    return doc


def document_hash(doc: Mapping[str, object]) -> str:
    """The chain hash of a chain document."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def row_hash(row: Mapping[str, object]) -> str:
    """The chain hash of an entry row (stored or wire form)."""
    return document_hash(chain_document(row))
