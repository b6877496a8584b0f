"""What only the PostgreSQL stream store has: commit-ordered ingest ids, migrations, its errors.

The semantics it shares with the SQLite store are tested for both in test_stream_store.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sync.errors import StoreError
from sync.protocol import Ack
from sync.server.auth import secret_hash
from sync.store.streams import EntryQuery
from tests.ledger.helpers import T0
from tests.limits import PATIENCE_S
from tests.sync.stream_helpers import GATE, NOW, OTHER_GATE, batch, fill_ledger, ledger_entries

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
from sync.store.streams_postgres import PostgresStreamStore  # noqa: E402

HOLD_KEY = 4242


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[PostgresStreamStore]:
    """A fresh PostgreSQL store with gate-a and gate-b enrolled."""
    with PostgresStreamStore(postgres_dsn) as opened:
        for gate in (GATE, OTHER_GATE):
            opened.add_enrol_code(gate, secret_hash(gate), NOW + timedelta(hours=1))
            assert opened.enrol(gate, secret_hash(gate), secret_hash("t-" + gate), NOW)
        yield opened


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition`` holds; fail (not time) the test if it never does."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def page_all(store: PostgresStreamStore, after: int) -> tuple[list[tuple[str, int]], int]:
    """Every entry after the cursor, as an admin pages them (3 a page); and the new cursor."""
    seen: list[tuple[str, int]] = []
    while page := store.entries_after(after, 3):
        seen += [(r.gate_id, r.seq) for r in page]
        after = page[-1].ingest_id
    return seen, after


def test_ingest_ids_become_visible_in_commit_order(
    store: PostgresStreamStore, postgres_dsn: str, tmp_path: Path
) -> None:
    """A batch that got its ids first but commits last is never skipped by a pager.

    A trigger holds gate-a's rows after their ids are taken and before the commit, while
    gate-b's batch runs and an admin pages. Were ids handed out in start order (a plain
    sequence), gate-b's higher ids would commit first, the pager's cursor would pass
    gate-a's ids, and gate-a's rows would never be pulled.
    """
    streams = {}
    for gate in (GATE, OTHER_GATE):
        path = tmp_path / f"{gate}.sqlite3"
        streams[gate] = (fill_ledger(path, 5, gate_id=gate), ledger_entries(path, gate_id=gate))
    replies: dict[str, Any] = {}

    def upload(gate: str) -> None:
        stream_id, entries = streams[gate]
        replies[gate] = store.ingest(gate, stream_id, batch(entries), now=NOW, list_versions={})

    with psycopg.connect(postgres_dsn, autocommit=True) as control:
        control.execute(
            "CREATE FUNCTION hold_gate_a() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.gate_id = '{GATE}' THEN PERFORM pg_advisory_xact_lock_shared({HOLD_KEY});"
            " END IF; RETURN NEW; END $$"
        )
        control.execute(
            "CREATE TRIGGER hold BEFORE INSERT ON entries"
            " FOR EACH ROW EXECUTE FUNCTION hold_gate_a()"
        )
        control.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))

        def waiting(locktype: str) -> list[int]:
            rows = control.execute(
                "SELECT pid FROM pg_locks WHERE NOT granted AND locktype = %s", (locktype,)
            ).fetchall()
            return [int(pid) for (pid,) in rows]

        first = threading.Thread(target=upload, args=(GATE,))
        first.start()
        wait_for(lambda: bool(waiting("advisory")), "gate-a's rows held after their ids")
        held_pid = waiting("advisory")[0]
        second = threading.Thread(target=upload, args=(OTHER_GATE,))
        second.start()
        # gate-b's batch either finishes or waits on a lock gate-a's transaction holds.
        wait_for(
            lambda: (
                not second.is_alive()
                or any(pid != held_pid for pid in waiting("transactionid") + waiting("tuple"))
            ),
            "gate-b's batch done or waiting",
        )
        seen, cursor = page_all(store, 0)
        control.execute("SELECT pg_advisory_unlock(%s)", (HOLD_KEY,))
        first.join()
        second.join()
    later, _ = page_all(store, cursor)
    assert all(isinstance(reply, Ack) for reply in replies.values()), replies
    pulled = seen + later
    expected = [(gate, seq) for gate in (GATE, OTHER_GATE) for seq in range(1, 6)]
    assert sorted(pulled) == expected  # every row once: none skipped, none repeated
    assert pulled[:5] == [(GATE, seq) for seq in range(1, 6)]  # gate-a took its ids first


LATEST = len(PostgresStreamStore.MIGRATIONS)


def test_the_schema_is_created_once_and_reopened(postgres_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "gate.sqlite3"
    stream_id = fill_ledger(path, 3)
    with PostgresStreamStore(postgres_dsn) as opened:
        assert opened.schema_version == LATEST
        opened.add_enrol_code(GATE, secret_hash("c"), NOW + timedelta(hours=1))
        opened.ingest(GATE, stream_id, batch(ledger_entries(path)), now=NOW, list_versions={})
    with PostgresStreamStore(postgres_dsn) as again:
        assert again.schema_version == LATEST
        assert again.stored_through(GATE, stream_id) == 3
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (LATEST,)


class _FirstSchema(PostgresStreamStore):
    """The store as it shipped before the trace indexes (schema version 1)."""

    MIGRATIONS = PostgresStreamStore.MIGRATIONS[:1]


def test_a_database_of_the_first_schema_gains_the_trace_indexes(
    postgres_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "gate.sqlite3"
    stream_id = fill_ledger(path, 4)
    with _FirstSchema(postgres_dsn) as old:
        assert old.schema_version == 1
        old.add_enrol_code(GATE, secret_hash("c"), NOW + timedelta(hours=1))
        old.ingest(GATE, stream_id, batch(ledger_entries(path)), now=NOW, list_versions={})
    with PostgresStreamStore(postgres_dsn) as new:
        assert new.schema_version == len(PostgresStreamStore.MIGRATIONS)
        # fill_ledger's drafts: pass-0, pass-1, pass-2, pass-0 one minute apart from T0.
        found = new.entries_matching(EntryQuery(pass_ids=("pass-0",)), 0, 100)
        assert [r.seq for r in found] == [1, 4]
        window = EntryQuery(
            gate_ids=(GATE,), since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
        )
        assert [r.seq for r in new.entries_matching(window, 0, 100)] == [2, 3]
    with psycopg.connect(postgres_dsn) as conn:
        # Queries as entries_matching writes them can be answered from the indexes.
        conn.execute("SET enable_seqscan = off")
        by_gate = conn.execute(
            "EXPLAIN SELECT ingest_id FROM entries WHERE gate_id = ANY(%s)"
            " AND gate_entry_time(corrected_time, wall_time) >= %s",
            ([GATE], T0),
        ).fetchall()
        by_pass = conn.execute(
            "EXPLAIN SELECT ingest_id FROM entries"
            " WHERE (gate_entry_json(content) ->> 'pass_id') = ANY(%s)",
            (["pass-0"],),
        ).fetchall()
        # (With so few rows the planner may take the time index alone: either is fine.)
        assert "Index Scan using entries_gate_time" in str(by_gate) or (
            "Index Scan using entries_time" in str(by_gate)
        )
        assert "entries_pass" in str(by_pass)
        names = {
            row[0]
            for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'entries'")
        }
    assert {"entries_gate_time", "entries_time", "entries_pass", "entries_household"} <= names


def test_replicas_starting_together_migrate_once(postgres_dsn: str) -> None:
    opened: list[PostgresStreamStore] = []
    errors: list[StoreError] = []

    def start() -> None:
        try:
            opened.append(PostgresStreamStore(postgres_dsn, pool_size=1))
        except StoreError as exc:  # reported below
            errors.append(exc)

    starters = [threading.Thread(target=start) for _ in range(4)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    for store in opened:
        store.close()
    assert errors == []
    assert len(opened) == 4


def test_a_schema_newer_than_the_code_is_refused(postgres_dsn: str) -> None:
    PostgresStreamStore(postgres_dsn).close()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("INSERT INTO schema_version(version) VALUES (99)")
    with pytest.raises(StoreError, match="version 99, newer"):
        PostgresStreamStore(postgres_dsn)


def test_an_unreachable_database_is_a_store_error(postgres_dsn: str) -> None:
    with pytest.raises(StoreError, match="not a PostgreSQL connection string"):
        PostgresStreamStore("host=127.0.0.1 nonsense")
    # Port 1 of 127.0.0.1: nothing listens there. The message names the database, never
    # the password.
    with pytest.raises(StoreError, match=r"PostgreSQL 127\.0\.0\.1:1/none: cannot use") as caught:
        PostgresStreamStore("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "refused" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_failing_database_is_a_store_error_and_loses_nothing(
    store: PostgresStreamStore, postgres_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "gate.sqlite3"
    stream_id = fill_ledger(path, 4)
    entries = ledger_entries(path)
    with psycopg.connect(postgres_dsn, autocommit=True) as control:
        control.execute("ALTER TABLE sync_log RENAME TO sync_log_away")
        with pytest.raises(StoreError, match="ingest failed"):
            store.ingest(GATE, stream_id, batch(entries), now=NOW, list_versions={})
        assert store.stored_through(GATE, stream_id) == 0  # the batch rolled back whole
        control.execute("ALTER TABLE sync_log_away RENAME TO sync_log")
    reply = store.ingest(GATE, stream_id, batch(entries), now=NOW, list_versions={})
    assert isinstance(reply, Ack)
    assert reply.stored_through == 4
    assert [r.seq for r in store.entries_after(0, 10)] == [1, 2, 3, 4]


def test_a_lost_connection_is_replaced(store: PostgresStreamStore, postgres_dsn: str) -> None:
    assert store.gate_for_token(secret_hash("t-" + GATE)) == GATE
    with psycopg.connect(postgres_dsn, autocommit=True) as control:
        control.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'gate-sync' AND pid <> pg_backend_pid()"
        )
    assert store.gate_for_token(secret_hash("t-" + GATE)) == GATE
