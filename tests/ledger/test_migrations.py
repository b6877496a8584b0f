"""Upgrading a ledger written before the console: lists, entries and their chain carry over."""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlite_utils import Database

from gate_agent.ledger import Ledger
from gate_agent.ledger.migrations import MIGRATIONS
from gate_agent.ledger.records import build_row, draft_columns, genesis_hash

from .helpers import T0, draft, raw_rows

_ENTRIES_SCHEMA = (
    "SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = 'entries'"
    " AND name NOT IN ('entries_counts_by_time', 'entries_allowed_by_time') ORDER BY name"
)


def _ledger_before_the_console(path: Path) -> str:
    """A ledger file as the agent before migration 0003 left it, with entries and lists."""
    stream_id = str(uuid.uuid4())
    with Database(path) as db:
        MIGRATIONS.apply(db, stop_before="0003_directory")
        conn = db.conn
        conn.execute(
            "INSERT INTO meta VALUES (1, ?, 'gate-a', '2024-03-01T00:00:00.000000+00:00')",
            (stream_id,),
        )
        conn.executemany(
            "INSERT INTO list_versions VALUES (?, ?, '2024-03-01T00:00:00.000000+00:00')",
            [("keys", 3), ("revocations", 2)],
        )
        prev = genesis_hash(stream_id)
        for seq in (1, 2):
            columns, personal = draft_columns(draft(seq, personal={"name": "张三"}))
            row = build_row(
                columns,
                personal,
                seq=seq,
                stream_id=stream_id,
                gate_id="gate-a",
                prev_hash=prev,
                salt=secrets.token_bytes(16),
            )
            names = ", ".join(row)
            marks = ", ".join(f":{name}" for name in row)
            conn.execute(f"INSERT INTO entries ({names}) VALUES ({marks})", row)  # noqa: S608
            prev = str(row["hash"])
        conn.commit()
    return stream_id


def test_an_old_ledger_is_upgraded_with_its_lists_and_chain(ledger_path: Path) -> None:
    ledger_path.parent.mkdir(parents=True)
    stream_id = _ledger_before_the_console(ledger_path)
    entries_before = raw_rows(ledger_path, _ENTRIES_SCHEMA)
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        assert ledger.stream_id == stream_id
        assert ledger.verify().ok
        assert ledger.count() == 2
        state = ledger.state
        assert state.list_versions() == {
            "keys": 3,
            "revocations": 2,
            "isolations": 0,
            "settings": 0,
        }
        assert state.directory_status().version == 0
        assert state.local_mode() is None
        assert ledger.day_summary(T0, T0.replace(day=2)).entries_in == 2
        assert ledger.append(draft(3)).seq == 3
    # The entries' columns, guards and first indexes are what they were.
    assert raw_rows(ledger_path, _ENTRIES_SCHEMA) == entries_before
    applied = raw_rows(ledger_path, "SELECT name FROM _sqlite_migrations ORDER BY id")
    assert [name for (name,) in applied][2:] == [
        "0003_directory",
        "0004_local_settings",
        "0005_entry_counts",
        "0006_sync_state",
        "0007_centre_keys",
        "0008_compound_lists",
    ]


def test_the_rebuilt_list_versions_keeps_its_guards(ledger_path: Path) -> None:
    ledger_path.parent.mkdir(parents=True)
    _ledger_before_the_console(ledger_path)
    Ledger.open(ledger_path, gate_id="gate-a").close()
    conn = sqlite3.connect(ledger_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="older or equal"):
            conn.execute("UPDATE list_versions SET version = 2 WHERE name = 'keys'")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO list_versions VALUES ('bogus', 1, '2024-01-01')")
        conn.execute("INSERT INTO list_versions VALUES ('directory', 1, '2024-01-01')")
        conn.rollback()
    finally:
        conn.close()
