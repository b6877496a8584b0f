"""Opening a ledger: creation, migrations, pragmas, identity and refusal of foreign files."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlite_utils import Database, Migrations

from gate_agent.errors import LedgerError, LedgerMismatch
from gate_agent.ledger import Ledger, verify_ledger_file
from gate_agent.ledger.migrations import MIGRATION_NAMES, numbered, split_statements

from .helpers import draft, raw_rows

_APPLIED = "SELECT migration_set, name, applied_at FROM _sqlite_migrations ORDER BY id"


def test_creation_makes_directories_records_migrations_and_meta(ledger_path: Path) -> None:
    created = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    before = datetime.now(UTC)
    with Ledger.open(ledger_path, gate_id="gate-a", clock=lambda: created) as ledger:
        assert ledger.path == ledger_path
        assert ledger.gate_id == "gate-a"
        assert uuid.UUID(ledger.stream_id).version == 4
    after = datetime.now(UTC)
    assert ledger_path.is_file()
    migrations = raw_rows(ledger_path, _APPLIED)
    assert [(set_name, name) for set_name, name, _ in migrations] == [
        ("gate-ledger", "0001_entries"),
        ("gate-ledger", "0002_gate_lists"),
        ("gate-ledger", "0003_directory"),
        ("gate-ledger", "0004_local_settings"),
        ("gate-ledger", "0005_entry_counts"),
        ("gate-ledger", "0006_sync_state"),
        ("gate-ledger", "0007_centre_keys"),
        ("gate-ledger", "0008_compound_lists"),
    ]
    # sqlite-utils stamps its migration records with its own UTC clock, not the ledger's.
    for _, _, applied in migrations:
        assert before <= datetime.fromisoformat(str(applied)) <= after
    meta = raw_rows(ledger_path, "SELECT stream_id, gate_id, created_at FROM meta")
    assert meta == [(ledger.stream_id, "gate-a", "2024-05-01T12:00:00.000000+00:00")]


def test_pragmas_wal_full_foreign_keys_busy_timeout(ledger: Ledger) -> None:
    pragmas = ledger.pragmas()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    assert pragmas["foreign_keys"] == 1
    assert int(str(pragmas["busy_timeout"])) > 0
    # WAL is a property of the file, seen by any other connection too.
    assert raw_rows(ledger.path, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_keeps_stream_id_entries_and_applies_no_migration_twice(
    ledger_path: Path,
) -> None:
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        stream_id = ledger.stream_id
        ledger.append(draft(0))
    with Ledger.open(ledger_path, gate_id="gate-a") as again:
        assert again.stream_id == stream_id
        assert again.count() == 1
        assert again.append(draft(1)).seq == 2
    assert len(raw_rows(ledger_path, _APPLIED)) == len(MIGRATION_NAMES) == 8
    assert len(raw_rows(ledger_path, "SELECT * FROM meta")) == 1


def test_other_gate_id_is_refused_naming_both(ledger_path: Path) -> None:
    Ledger.open(ledger_path, gate_id="gate-a").close()
    with pytest.raises(LedgerMismatch) as caught:
        Ledger.open(ledger_path, gate_id="gate-b")
    assert "gate-a" in str(caught.value)
    assert "gate-b" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_file_that_is_not_sqlite_is_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(LedgerError, match="not a SQLite database") as caught:
        Ledger.open(path, gate_id="gate-a")
    assert not isinstance(caught.value, sqlite3.Error)
    with pytest.raises(LedgerError, match="not a SQLite database"):
        verify_ledger_file(path)


def test_a_foreign_sqlite_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="not a gate ledger"):
        Ledger.open(path, gate_id="gate-a")
    with pytest.raises(LedgerError, match="not a gate ledger"):
        verify_ledger_file(path)
    assert raw_rows(path, "SELECT name FROM sqlite_schema") == [("photos",)]


def test_a_foreign_sqlite_utils_database_is_left_alone(tmp_path: Path) -> None:
    """Another application's sqlite-utils migrations table does not make a file a ledger."""
    path = tmp_path / "other.db"
    other = Migrations("other-app")

    @other(name="0001_photos")
    def _photos(db: Database) -> None:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")

    with Database(path) as db:
        other.apply(db)
    schema = raw_rows(path, "SELECT type, name, sql FROM sqlite_schema ORDER BY name")
    with pytest.raises(LedgerError, match="not a gate ledger"):
        Ledger.open(path, gate_id="gate-a")
    assert raw_rows(path, "SELECT type, name, sql FROM sqlite_schema ORDER BY name") == schema
    assert raw_rows(path, "PRAGMA journal_mode") == [("delete",)]


def test_a_ledger_from_a_newer_agent_is_refused(ledger_path: Path) -> None:
    Ledger.open(ledger_path, gate_id="gate-a").close()
    conn = sqlite3.connect(ledger_path)
    insert = "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)"
    # Another set's rows in the shared table are none of our business.
    conn.execute(insert, ("other-app", "0007_unrelated", "2030-01-01"))
    conn.commit()
    Ledger.open(ledger_path, gate_id="gate-a").close()
    conn.execute(insert, ("gate-ledger", "0099_future", "2030-01-01"))
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=r"\['0099_future'\].*newer"):
        Ledger.open(ledger_path, gate_id="gate-a")


#: New files opened by four connections at once: the race to switch a new file to WAL
#: was lost about once in twenty rounds, so a run of 80 meets it nearly always.
OPEN_RACE_ROUNDS = 80


def test_opening_a_new_file_from_several_connections_at_once(ledger_path: Path) -> None:
    """Each open decides what to migrate under the write lock: nothing is applied twice;
    and none fails while another switches the new file to WAL."""
    workers = 4
    for round_ in range(OPEN_RACE_ROUNDS):
        path = ledger_path.with_name(f"ledger-{round_}.sqlite3")
        barrier = threading.Barrier(workers)
        stream_ids: list[str] = []
        errors: list[BaseException] = []

        def open_once(path: Path = path, barrier: threading.Barrier = barrier,
                      stream_ids: list[str] = stream_ids,
                      errors: list[BaseException] = errors) -> None:  # fmt: skip
            barrier.wait()
            try:
                with Ledger.open(path, gate_id="gate-a") as ledger:
                    stream_ids.append(ledger.stream_id)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_once) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}"
        assert len(stream_ids) == workers
        assert len(set(stream_ids)) == 1
        assert len(raw_rows(path, _APPLIED)) == len(MIGRATION_NAMES)
        assert len(raw_rows(path, "SELECT * FROM meta")) == 1


def test_migrations_are_numbered_in_order() -> None:
    shipped = [
        "0001_entries",
        "0002_gate_lists",
        "0003_directory",
        "0004_local_settings",
        "0005_entry_counts",
        "0006_sync_state",
        "0007_centre_keys",
        "0008_compound_lists",
    ]
    assert shipped == MIGRATION_NAMES
    with pytest.raises(ValueError, match="0009_"):
        numbered("0010_skipped_a_number")
    assert shipped == MIGRATION_NAMES


def test_missing_file_cannot_be_verified(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger file"):
        verify_ledger_file(tmp_path / "absent.sqlite3")
    assert not (tmp_path / "absent.sqlite3").exists()


def test_empty_gate_id_is_refused(ledger_path: Path) -> None:
    with pytest.raises(ValueError, match="gate_id"):
        Ledger.open(ledger_path, gate_id="")
    assert not ledger_path.exists()


def test_a_closed_ledger_refuses_use(ledger_path: Path) -> None:
    ledger = Ledger.open(ledger_path, gate_id="gate-a")
    ledger.close()
    ledger.close()  # twice is fine
    for call in (ledger.count, ledger.verify, lambda: ledger.append(draft(0))):
        with pytest.raises(LedgerError, match="closed"):
            call()


def test_meta_cannot_be_changed(ledger: Ledger) -> None:
    conn = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="fixed"):
            conn.execute("UPDATE meta SET gate_id = 'gate-b'")
        with pytest.raises(sqlite3.IntegrityError, match="fixed"):
            conn.execute("DELETE FROM meta")
    finally:
        conn.close()


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """
    CREATE TABLE t (a INTEGER);
    CREATE TRIGGER t_no_delete BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no; never'); END;
    -- a comment; with a semicolon
    CREATE INDEX t_a ON t (a);
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (a INTEGER")
