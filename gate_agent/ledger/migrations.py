"""Numbered schema migrations of the ledger file; shipped ones are never edited, only appended."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlite_utils import Database, Migrations

# The set's name keys its rows in sqlite-utils' _sqlite_migrations table, which other
# sqlite-utils applications share: a file is ours only if it holds rows of this set.
MIGRATION_SET = "gate-ledger"
MIGRATIONS = Migrations(MIGRATION_SET)
# Every registered name in order, so a file carrying one we lack can be told apart.
MIGRATION_NAMES: list[str] = []

_Step = TypeVar("_Step", bound=Callable[[Database], None])

_V1_META_AND_ENTRIES = """
CREATE TABLE meta (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    stream_id TEXT NOT NULL,
    gate_id TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TRIGGER meta_is_fixed_update BEFORE UPDATE ON meta
BEGIN
    SELECT RAISE(ABORT, 'ledger meta is fixed when the ledger is created');
END;

CREATE TRIGGER meta_is_fixed_delete BEFORE DELETE ON meta
BEGIN
    SELECT RAISE(ABORT, 'ledger meta is fixed when the ledger is created');
END;

CREATE TABLE entries (
    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
    stream_id TEXT NOT NULL,
    gate_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    outcome TEXT NOT NULL CHECK (outcome IN ('allow', 'deny', 'recheck')),
    reason TEXT NOT NULL,
    wall_time TEXT NOT NULL,
    monotonic_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
    pass_id TEXT,
    pass_kind TEXT,
    household_id TEXT,
    manual_identity TEXT,
    temperature_celsius REAL,
    temperature_raw TEXT NOT NULL,
    ambient_celsius REAL,
    temperature_model TEXT,
    temperature_source TEXT CHECK (temperature_source IN ('sensor', 'manual')),
    guard TEXT,
    alert INTEGER NOT NULL CHECK (alert IN (0, 1)),
    next_step TEXT,
    note TEXT,
    personal_digest TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    personal TEXT,
    personal_salt BLOB,
    CHECK ((personal IS NULL) = (personal_salt IS NULL)),
    CHECK (personal IS NULL OR personal_digest IS NOT NULL)
) STRICT;

-- An insert must extend the chain: the next number, linked to the last hash.
-- This also stops INSERT OR REPLACE, whose implicit delete fires no delete trigger.
CREATE TRIGGER entries_extend_chain BEFORE INSERT ON entries
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM entries)
    OR (NEW.seq > 1
        AND NEW.prev_hash IS NOT (SELECT hash FROM entries WHERE seq = NEW.seq - 1))
BEGIN
    SELECT RAISE(ABORT, 'ledger entries must extend the chain at its end');
END;

CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: delete refused');
END;

-- The one update allowed is the retention purge: personal data and salt to NULL,
-- every other column as it was.
CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
WHEN NOT (
    NEW.personal IS NULL AND NEW.personal_salt IS NULL
    AND NEW.seq IS OLD.seq
    AND NEW.stream_id IS OLD.stream_id
    AND NEW.gate_id IS OLD.gate_id
    AND NEW.direction IS OLD.direction
    AND NEW.outcome IS OLD.outcome
    AND NEW.reason IS OLD.reason
    AND NEW.wall_time IS OLD.wall_time
    AND NEW.monotonic_ns IS OLD.monotonic_ns
    AND NEW.boot_id IS OLD.boot_id
    AND NEW.clock_synced IS OLD.clock_synced
    AND NEW.pass_id IS OLD.pass_id
    AND NEW.pass_kind IS OLD.pass_kind
    AND NEW.household_id IS OLD.household_id
    AND NEW.manual_identity IS OLD.manual_identity
    AND NEW.temperature_celsius IS OLD.temperature_celsius
    AND NEW.temperature_raw IS OLD.temperature_raw
    AND NEW.ambient_celsius IS OLD.ambient_celsius
    AND NEW.temperature_model IS OLD.temperature_model
    AND NEW.temperature_source IS OLD.temperature_source
    AND NEW.guard IS OLD.guard
    AND NEW.alert IS OLD.alert
    AND NEW.next_step IS OLD.next_step
    AND NEW.note IS OLD.note
    AND NEW.personal_digest IS OLD.personal_digest
    AND NEW.prev_hash IS OLD.prev_hash
    AND NEW.hash IS OLD.hash
)
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: only the personal-data purge updates');
END;

CREATE INDEX entries_by_pass ON entries (pass_id, seq) WHERE pass_id IS NOT NULL;
CREATE INDEX entries_by_household ON entries (household_id, wall_time)
    WHERE household_id IS NOT NULL;
CREATE INDEX entries_personal_by_time ON entries (wall_time) WHERE personal_salt IS NOT NULL;
"""

_V2_GATE_STATE = """
CREATE TABLE list_versions (
    name TEXT PRIMARY KEY CHECK (name IN ('keys', 'revocations', 'isolations', 'settings')),
    version INTEGER NOT NULL CHECK (version >= 1),
    applied_at TEXT NOT NULL
) STRICT;

-- Lists never go back to an older or equal version.
CREATE TRIGGER list_versions_only_rise BEFORE UPDATE ON list_versions
WHEN NEW.version <= OLD.version
BEGIN
    SELECT RAISE(ABORT, 'a gate list never goes back to an older or equal version');
END;

CREATE TABLE issuer_keys (
    kid TEXT PRIMARY KEY,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    retired INTEGER NOT NULL CHECK (retired IN (0, 1))
) STRICT;

CREATE TABLE revocations (
    pass_id TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
) STRICT;

CREATE TABLE isolations (
    household_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    PRIMARY KEY (household_id, starts_at),
    CHECK (starts_at < ends_at)
) STRICT;

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
"""


# SQLite cannot change a CHECK constraint in place: the table is rebuilt, its rows copied,
# and its trigger made again (dropping the old table dropped it).
_V3_DIRECTORY = """
CREATE TABLE list_versions_v3 (
    name TEXT PRIMARY KEY
        CHECK (name IN ('keys', 'revocations', 'isolations', 'settings', 'directory')),
    version INTEGER NOT NULL CHECK (version >= 1),
    applied_at TEXT NOT NULL
) STRICT;

INSERT INTO list_versions_v3 (name, version, applied_at)
    SELECT name, version, applied_at FROM list_versions;

DROP TABLE list_versions;

ALTER TABLE list_versions_v3 RENAME TO list_versions;

CREATE TRIGGER list_versions_only_rise BEFORE UPDATE ON list_versions
WHEN NEW.version <= OLD.version
BEGIN
    SELECT RAISE(ABORT, 'a gate list never goes back to an older or equal version');
END;

-- The centre's people passes, for the guard to look up someone without phone or card.
-- Units compare without case ('a-1-101' finds 'A-1-101'); times are UTC ISO 8601.
CREATE TABLE directory (
    pass_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL
        CHECK (kind IN ('resident', 'tenant', 'visitor', 'worker', 'delivery')),
    household_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    display_name TEXT NOT NULL,
    unit TEXT NOT NULL COLLATE NOCASE,
    exit_quota TEXT,
    CHECK (valid_from < valid_until)
) STRICT;

CREATE INDEX directory_by_unit ON directory (unit, display_name);
"""

_V4_LOCAL_SETTINGS = """
-- Settings an admin changes at this gate (now: the gate mode), every change kept:
-- the newest row of a key is its value, older rows are the audit trail.
CREATE TABLE local_settings (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL CHECK (key <> ''),
    value TEXT NOT NULL,
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL CHECK (set_by <> ''),
    CHECK (key <> 'mode' OR value IN ('open', 'screening', 'lockdown'))
) STRICT;

CREATE INDEX local_settings_by_key ON local_settings (key, id);

CREATE TRIGGER local_settings_kept_update BEFORE UPDATE ON local_settings
BEGIN
    SELECT RAISE(ABORT, 'local settings are an audit trail: add a row, never change one');
END;

CREATE TRIGGER local_settings_kept_delete BEFORE DELETE ON local_settings
BEGIN
    SELECT RAISE(ABORT, 'local settings are an audit trail: add a row, never delete one');
END;
"""

# Indexes only: the entries' columns, hash chain and triggers stay as they are.
_V5_ENTRY_COUNTS = """
-- Covers the console's counts over a time range without reading the entries themselves.
CREATE INDEX entries_counts_by_time
    ON entries (wall_time, outcome, direction, reason, alert, guard);

-- Covers the last allowed passage of each pass since a time (people inside); outcome
-- is a column too, as SQLite counts an index covering only by its columns.
CREATE INDEX entries_allowed_by_time ON entries (wall_time, pass_id, direction, outcome)
    WHERE outcome = 'allow' AND pass_id IS NOT NULL;
"""

# The uploader's cursor and health, one row per stream (the ledger holds one stream).
# acked_through is the centre's cursor as last acknowledged: it may go back (the centre
# restored from a backup), so no trigger holds it rising. An alarm stops uploads until
# an operator clears it (re-enrolling the gate).
_V6_SYNC_STATE = """
CREATE TABLE sync_state (
    stream_id TEXT PRIMARY KEY,
    acked_through INTEGER NOT NULL DEFAULT 0 CHECK (acked_through >= 0),
    last_attempt_at TEXT,
    last_success_at TEXT,
    last_error_code TEXT,
    last_error_text TEXT,
    last_error_at TEXT,
    alarm_code TEXT,
    alarm_text TEXT,
    alarm_at TEXT,
    centre_list_versions TEXT NOT NULL DEFAULT '{}',
    CHECK ((alarm_code IS NULL) = (alarm_text IS NULL)),
    CHECK ((last_error_code IS NULL) = (last_error_text IS NULL))
) STRICT;
"""


# The centre keys the gate trusts to sign its lists, pinned at enrolment (or by an
# operator importing a lists file). Rows are only added: a new enrolment with a
# centre that has another key pins it beside the old one. lists_checked_at is when
# the centre last confirmed the gate's lists current (a list that did not change is
# not stale).
_V7_CENTRE_KEYS = """
CREATE TABLE centre_keys (
    kid TEXT PRIMARY KEY CHECK (length(kid) = 8),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    pinned_at TEXT NOT NULL,
    pinned_by TEXT NOT NULL CHECK (pinned_by <> '')
) STRICT;

ALTER TABLE sync_state ADD COLUMN lists_checked_at TEXT;
"""

# What the other gates of the compound report through the centre (the compound lists):
# alerts about isolated households, and passages the compound's rules count (other
# gates' resident and tenant exits, visitor entries). Their names join the versioned
# lists (the table rebuilt, as in 0003). Keyed by the entry they come from, so the
# gate's own entries coming back are recognised (stream id, seq).
_V8_COMPOUND_LISTS = """
CREATE TABLE list_versions_v8 (
    name TEXT PRIMARY KEY
        CHECK (name IN ('keys', 'revocations', 'isolations', 'settings', 'directory',
                        'alerts', 'passages')),
    version INTEGER NOT NULL CHECK (version >= 1),
    applied_at TEXT NOT NULL
) STRICT;

INSERT INTO list_versions_v8 (name, version, applied_at)
    SELECT name, version, applied_at FROM list_versions;

DROP TABLE list_versions;

ALTER TABLE list_versions_v8 RENAME TO list_versions;

CREATE TRIGGER list_versions_only_rise BEFORE UPDATE ON list_versions
WHEN NEW.version <= OLD.version
BEGIN
    SELECT RAISE(ABORT, 'a gate list never goes back to an older or equal version');
END;

CREATE TABLE alerts (
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    gate_id TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    household_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    display_name TEXT NOT NULL,
    pass_id TEXT,
    PRIMARY KEY (stream_id, seq)
) STRICT;
CREATE INDEX alerts_by_time ON alerts (at);

CREATE TABLE passages (
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    gate_id TEXT NOT NULL,
    pass_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    at TEXT NOT NULL,
    PRIMARY KEY (stream_id, seq)
) STRICT;
CREATE INDEX passages_by_household ON passages (household_id, direction, at);
CREATE INDEX passages_by_pass ON passages (pass_id, direction, at);
"""


def numbered(name: str) -> Callable[[_Step], _Step]:
    """Register the next migration, whose name must start with its 4-digit number."""
    expected = f"{len(MIGRATION_NAMES) + 1:04d}_"
    if not name.startswith(expected):
        raise ValueError(f"migration {name!r} must be numbered {expected!r}")
    MIGRATION_NAMES.append(name)
    return MIGRATIONS(name=name)


@numbered("0001_entries")
def _meta_and_entries(db: Database) -> None:
    """The meta row and the append-only, hash-chained entries."""
    run_script(db, _V1_META_AND_ENTRIES)


@numbered("0002_gate_lists")
def _gate_lists(db: Database) -> None:
    """The gate's lists: issuer keys, revocations, isolations, settings."""
    run_script(db, _V2_GATE_STATE)


@numbered("0003_directory")
def _directory(db: Database) -> None:
    """The resident directory, and its name among the versioned lists."""
    run_script(db, _V3_DIRECTORY)


@numbered("0004_local_settings")
def _local_settings(db: Database) -> None:
    """Settings changed at the gate, with who changed them and when."""
    run_script(db, _V4_LOCAL_SETTINGS)


@numbered("0005_entry_counts")
def _entry_counts(db: Database) -> None:
    """Indexes for the console's counts."""
    run_script(db, _V5_ENTRY_COUNTS)


@numbered("0006_sync_state")
def _sync_state(db: Database) -> None:
    """The uploader's cursor at the centre, its last success, error and alarm."""
    run_script(db, _V6_SYNC_STATE)


@numbered("0007_centre_keys")
def _centre_keys(db: Database) -> None:
    """The centre keys whose signature the gate's lists must carry; when lists were checked."""
    run_script(db, _V7_CENTRE_KEYS)


@numbered("0008_compound_lists")
def _compound_lists(db: Database) -> None:
    """Alerts and passages from the other gates of the compound."""
    run_script(db, _V8_COMPOUND_LISTS)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (triggers with inner ``;`` kept whole)."""
    statements: list[str] = []
    pending = ""
    *pieces, tail = script.split(";")
    for piece in pieces:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if (pending + tail).strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending + tail!r}")
    return statements


def run_script(db: Database, script: str) -> None:
    """Run a migration's SQL inside the transaction ``Migrations.apply`` holds open."""
    # Statement by statement, never executescript: sqlite3's would commit the open
    # transaction first, splitting a migration from its record.
    for statement in split_statements(script):
        db.execute(statement)
