"""Ledger entries in their wire form, as a batch carries them to the centre.

The wire form of an entry is its stored row: every column of ``ENTRY_COLUMNS`` with
the values the ledger holds (flags as 0/1, ``temperature_raw`` and ``personal`` as
their canonical JSON text) and ``personal_salt`` as hex. The centre recomputes the
chain hash from exactly these values (``gate_agent.core.chain.row_hash``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from gate_agent.core.chain import ENTRY_COLUMNS
from gate_agent.ledger.db import connect_reader, translate
from gate_agent.ledger.entries import MAX_PAGE, Ledger

_SELECT = ", ".join(ENTRY_COLUMNS)


def wire_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored entry row as the wire carries it: every column, the salt as hex."""
    entry = {column: row[column] for column in ENTRY_COLUMNS}
    salt = entry["personal_salt"]
    if isinstance(salt, bytes | bytearray | memoryview):
        entry["personal_salt"] = bytes(salt).hex()
    return entry


def wire_entries(ledger: Ledger, after_seq: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Up to ``limit`` entries numbered above ``after_seq``, in wire form, ascending.

    Reads on a read-only connection of its own, so the station's writes are not held up.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    db = connect_reader(ledger.path)
    try:
        rows = db.query(
            f"SELECT {_SELECT} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
            (after_seq, limit),
        )
        return [wire_entry(row) for row in rows]
    except sqlite3.Error as exc:
        raise translate(exc, ledger.path, "read") from exc
    finally:
        db.close()
