"""The SQLite stream store's tables and indexes, made or brought up to date at open.

``CREATE ... IF NOT EXISTS`` throughout, so a file made by an older version gains what
it lacks when it is next opened; the gates' place columns, added later, by ALTER TABLE.
"""

from __future__ import annotations

import sqlite3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gates (
    gate_id TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE,
    enrolled_at TEXT,
    last_seen TEXT,
    last_clock_offset_ms INTEGER,
    last_backlog INTEGER,
    compound TEXT,
    community TEXT
);
CREATE TABLE IF NOT EXISTS enrol_codes (
    code_hash TEXT PRIMARY KEY,
    gate_id TEXT NOT NULL REFERENCES gates(gate_id),
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS streams (
    gate_id TEXT NOT NULL REFERENCES gates(gate_id),
    stream_id TEXT NOT NULL,
    stored_through INTEGER NOT NULL DEFAULT 0 CHECK (stored_through >= 0),
    PRIMARY KEY (gate_id, stream_id)
);
CREATE TABLE IF NOT EXISTS entries (
    ingest_id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    hash TEXT NOT NULL,
    prev_hash TEXT,
    content TEXT NOT NULL,
    flagged INTEGER NOT NULL CHECK (flagged IN (0, 1)),
    problem TEXT,
    wall_time TEXT,
    corrected_time TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (gate_id, stream_id, seq),
    FOREIGN KEY (gate_id, stream_id) REFERENCES streams(gate_id, stream_id)
);
CREATE TABLE IF NOT EXISTS sync_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_log_gate ON sync_log(gate_id, id);
-- Traces (sync/trace.py). Expression indexes, so ingest writes the same rows as ever
-- and a database made before them gains them when it is next opened. The time is
-- the entry's corrected time, else the gate's wall time (julianday reads both).
CREATE INDEX IF NOT EXISTS entries_gate_time
    ON entries(gate_id, julianday(COALESCE(corrected_time, wall_time)));
CREATE INDEX IF NOT EXISTS entries_time ON entries(julianday(COALESCE(corrected_time, wall_time)));
CREATE INDEX IF NOT EXISTS entries_pass ON entries(json_extract(content, '$.pass_id'));
CREATE INDEX IF NOT EXISTS entries_household ON entries(json_extract(content, '$.household_id'));
"""
# Made after the place columns are added to an older file (see ``_add_place``). The
# compound lists (sync/compound_lists.py) read a few gates' recent alerts and passages
# through these instead of every entry of those gates.
_COMPOUND_INDEXES = """
CREATE INDEX IF NOT EXISTS gates_compound ON gates(compound);
CREATE INDEX IF NOT EXISTS entries_gate_reason ON entries(
    gate_id, json_extract(content, '$.reason'), julianday(COALESCE(corrected_time, wall_time))
);
CREATE INDEX IF NOT EXISTS entries_gate_passage ON entries(
    gate_id, json_extract(content, '$.pass_kind'), json_extract(content, '$.direction'),
    julianday(COALESCE(corrected_time, wall_time))
);
-- The retention purge: entries still holding personal data, by time.
CREATE INDEX IF NOT EXISTS entries_personal_time
    ON entries(julianday(COALESCE(corrected_time, wall_time)))
    WHERE json_extract(content, '$.personal') IS NOT NULL;
"""


def create_schema(db: sqlite3.Connection) -> None:
    """Make the tables and indexes ``db`` lacks (in its own statements, before any batch)."""
    db.executescript(_SCHEMA)
    _add_place(db)
    db.executescript(_COMPOUND_INDEXES)


def _add_place(db: sqlite3.Connection) -> None:
    """Give a file made before gates had a place its ``compound`` and ``community``."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(gates)")}
    for column in ("compound", "community"):
        if column not in columns:
            db.execute(f"ALTER TABLE gates ADD COLUMN {column} TEXT")
