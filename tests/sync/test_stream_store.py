"""Ingest semantics of the central stream store (every implementation passes these)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.core.chain import row_hash
from sync.protocol import Ack, StreamConflict
from sync.server.auth import secret_hash
from sync.store import SqliteStreamStore, StreamStore
from tests.limits import PATIENCE_S
from tests.sync.stream_helpers import (
    GATE,
    NOW,
    SENT_MONO,
    batch,
    fill_ledger,
    ledger_entries,
    open_store,
)

Stream = tuple[str, list[dict[str, Any]]]
VERSIONS = {"keys": 2, "revocations": 1}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamStore]:
    """A fresh store with gate-a enrolled, on each implementation."""
    opened = open_store(request, tmp_path)
    try:
        opened.add_enrol_code(GATE, secret_hash("code"), NOW + timedelta(hours=1))
        assert opened.enrol(GATE, secret_hash("code"), secret_hash("token"), NOW)
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    """A real gate ledger of 12 entries: its stream id and wire entries."""
    path = tmp_path_factory.mktemp("gate") / "ledger.sqlite3"
    stream_id = fill_ledger(path, 12)
    return stream_id, ledger_entries(path)


def ingest(store: StreamStore, stream_id: str, entries: list[dict[str, Any]], **kw: Any) -> Any:
    return store.ingest(GATE, stream_id, batch(entries, **kw), now=NOW, list_versions=VERSIONS)


def test_batches_are_acknowledged_through_their_last_entry(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    first = ingest(store, stream_id, entries[:5])
    assert first == Ack(stored_through=5, server_time=NOW, list_versions=VERSIONS)
    assert ingest(store, stream_id, entries[5:]).stored_through == 12
    stored = store.entries_after(0, 100)
    assert [r.seq for r in stored] == list(range(1, 13))
    assert [r.hash for r in stored] == [e["hash"] for e in entries]
    assert not any(r.flagged for r in stored)
    assert all(row_hash(r.content) == r.hash for r in stored)
    assert store.stored_through(GATE, stream_id) == 12


def test_a_repeat_gets_the_same_reply_and_stores_nothing_twice(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    first = ingest(store, stream_id, entries[:6])
    assert ingest(store, stream_id, entries[:6]) == first
    overlapping = ingest(store, stream_id, entries[3:9])
    assert overlapping.stored_through == 9
    assert [r.seq for r in store.entries_after(0, 100)] == list(range(1, 10))
    results = [row.result for row in store.sync_log(GATE, 10)]
    assert results == ["stored", "repeat", "stored"]


def test_a_gap_is_refused_with_the_cursor(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    ingest(store, stream_id, entries[:3])
    reply = ingest(store, stream_id, entries[5:8])
    assert reply == StreamConflict(error="gap", cursor=3, seq=4)
    assert store.stored_through(GATE, stream_id) == 3
    assert len(store.entries_after(0, 100)) == 3


def test_new_content_for_a_stored_seq_is_a_conflict(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    ingest(store, stream_id, entries[:4])
    tampered = [dict(e) for e in entries[:6]]
    tampered[2]["reason"] = "revoked"
    tampered[2]["hash"] = row_hash(tampered[2])  # a consistent but different entry
    reply = ingest(store, stream_id, tampered)
    assert reply == StreamConflict(error="content_conflict", cursor=4, seq=3)
    assert store.stored_through(GATE, stream_id) == 4  # nothing of the batch was stored
    assert store.sync_log(GATE, 1)[0].result == "content_conflict"


def test_a_malformed_entry_is_stored_flagged_and_the_stream_goes_on(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    bad = [dict(e) for e in entries[:6]]
    bad[2]["outcome"] = "allow-ish"  # the hash no longer matches
    del bad[3]["boot_id"]
    reply = ingest(store, stream_id, bad)
    assert isinstance(reply, Ack)
    assert reply.stored_through == 6
    assert reply.flagged == (3, 4)
    stored = {r.seq: r for r in store.entries_after(0, 100)}
    assert "hash does not match" in (stored[3].problem or "")
    assert "missing column boot_id" in (stored[4].problem or "")
    assert not stored[5].flagged  # links to entry 4's claimed hash
    assert ingest(store, stream_id, bad) == reply  # the repeat answers the same
    assert ingest(store, stream_id, entries[6:]).stored_through == 12


def test_entries_of_another_gate_or_a_broken_chain_are_flagged(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    skipped = [entries[0], dict(entries[2], seq=2)]  # seq 2 claims entry 3's place
    reply = ingest(store, stream_id, skipped)
    assert reply.flagged == (2,)
    problem = store.entries_after(0, 10)[1].problem or ""
    assert "prev_hash" in problem
    assert "hash does not match" in problem


def test_personal_data_must_match_its_digest(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    assert entries[0]["personal"] is not None
    changed = dict(entries[0], personal='{"name":"王五"}')
    reply = ingest(store, stream_id, [changed])
    assert reply.flagged == (1,)
    assert "personal data" in (store.entries_after(0, 1)[0].problem or "")


def test_entries_resent_after_a_purge_are_sound_without_their_personal_data(
    store: StreamStore, stream: Stream
) -> None:
    """A centre restored from a backup gets back entries whose personal data the gate purged."""
    stream_id, entries = stream
    purged = [
        dict(e, personal=None, personal_salt=None) if e["personal"] is not None else e
        for e in entries[:6]
    ]
    assert purged[0]["personal_digest"] is not None
    reply = ingest(store, stream_id, purged)
    assert (reply.stored_through, reply.flagged) == (6, ())
    assert store.entries_after(0, 1)[0].content["personal"] is None


def test_unsynced_clocks_are_corrected_from_monotonic_time(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    # Entry n was made at monotonic 1e9 + n ns; the batch left at SENT_MONO.
    unsynced = [dict(e, clock_synced=0) for e in entries[:2]]
    unsynced = [dict(e, hash=row_hash(e)) for e in unsynced]
    unsynced[1]["prev_hash"] = unsynced[0]["hash"]
    unsynced[1]["hash"] = row_hash(unsynced[1])
    reply = ingest(store, stream_id, unsynced, clock_synced=False, sent_at=NOW - timedelta(hours=3))
    assert reply.flagged == ()
    first = store.entries_after(0, 1)[0]
    expected = NOW - timedelta(microseconds=(SENT_MONO - entries[0]["monotonic_ns"]) / 1000)
    assert first.corrected_time == expected
    assert first.wall_time == entries[0]["wall_time"]  # both times are kept
    gate = store.gates()[0]
    assert gate.last_clock_offset_ms == 3 * 3600 * 1000
    # Another boot's entries have no common clock with the batch: left uncorrected.
    later = ingest(store, stream_id, entries[2:4], clock_synced=False, boot_id="boot-2")
    assert later.stored_through == 4
    assert all(r.corrected_time is None for r in store.entries_after(2, 10))


def unsynced_pair(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first two entries as made with an unsynced clock, still chained."""
    unsynced = [dict(e, clock_synced=0) for e in entries[:2]]
    unsynced[0]["hash"] = row_hash(unsynced[0])
    unsynced[1]["prev_hash"] = unsynced[0]["hash"]
    unsynced[1]["hash"] = row_hash(unsynced[1])
    return unsynced


def test_a_reference_time_stands_for_the_batch_and_leaves_gate_health_alone(
    store: StreamStore, stream: Stream
) -> None:
    stream_id, entries = stream
    exported = NOW - timedelta(days=3)
    reply = store.ingest(
        GATE, stream_id, batch(unsynced_pair(entries), sent_at=exported, backlog=9),
        now=NOW, list_versions={}, reference_time=exported,
    )  # fmt: skip
    assert isinstance(reply, Ack)
    assert (reply.stored_through, reply.server_time) == (2, NOW)
    first = store.entries_after(0, 1)[0]
    lag = timedelta(microseconds=(SENT_MONO - entries[0]["monotonic_ns"]) / 1000)
    assert first.corrected_time == exported - lag  # not NOW - lag
    assert first.received_at == NOW
    gate = store.gates()[0]  # not seen live: no last_seen, offset or backlog from a bundle
    assert (gate.last_seen, gate.last_clock_offset_ms, gate.last_backlog) == (None, None, None)
    assert store.sync_log(GATE, 1)[0].result == "stored"


def test_correct_clock_false_corrects_no_entry(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    reply = store.ingest(
        GATE, stream_id, batch(unsynced_pair(entries), clock_synced=False),
        now=NOW, list_versions={}, reference_time=NOW, correct_clock=False,
    )  # fmt: skip
    assert isinstance(reply, Ack)
    assert reply.stored_through == 2
    assert [r.corrected_time for r in store.entries_after(0, 10)] == [None, None]
    assert not any(r.flagged for r in store.entries_after(0, 10))


def test_token_hash_is_the_current_tokens(store: StreamStore) -> None:
    assert store.token_hash("g1") is None  # unknown gate
    store.add_enrol_code("g1", secret_hash("one"), NOW + timedelta(hours=1))
    assert store.token_hash("g1") is None  # known, not enrolled
    assert store.enrol("g1", secret_hash("one"), secret_hash("t1"), NOW)
    assert store.token_hash("g1") == secret_hash("t1")
    store.add_enrol_code("g1", secret_hash("two"), NOW + timedelta(hours=1))
    assert store.enrol("g1", secret_hash("two"), secret_hash("t2"), NOW)
    assert store.token_hash("g1") == secret_hash("t2")  # re-enrolment replaces it


def test_synced_entries_keep_no_corrected_time(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    ingest(store, stream_id, entries[:2], backlog=7)
    assert store.entries_after(0, 1)[0].corrected_time is None
    gate = store.gates()[0]
    assert (gate.last_seen, gate.last_backlog) == (NOW, 7)
    assert gate.streams[0].stored_through == 2


def test_enrol_codes_work_once_and_not_after_they_expire(store: StreamStore) -> None:
    store.add_enrol_code("g1", secret_hash("one"), NOW + timedelta(hours=1))
    store.add_enrol_code("g1", secret_hash("late"), NOW - timedelta(seconds=1))
    assert not store.enrol("g2", secret_hash("one"), secret_hash("t"), NOW)  # other gate
    assert not store.enrol("g1", secret_hash("late"), secret_hash("t"), NOW)
    assert store.enrol("g1", secret_hash("one"), secret_hash("t1"), NOW)
    assert not store.enrol("g1", secret_hash("one"), secret_hash("t2"), NOW)
    assert store.gate_for_token(secret_hash("t1")) == "g1"
    assert store.gate_for_token(secret_hash("t2")) is None


def test_paging_by_ingest_cursor_never_skips_or_repeats(store: StreamStore, tmp_path: Path) -> None:
    path = tmp_path / "gate2.sqlite3"
    stream_id = fill_ledger(path, 120)
    entries = ledger_entries(path)
    done = threading.Event()

    def upload() -> None:
        for start in range(0, 120, 7):
            ingest(store, stream_id, entries[start : start + 7])
        done.set()

    seen: list[int] = []
    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        after = 0
        while True:
            finished = done.is_set()
            page = store.entries_after(after, 5)
            seen.extend(r.seq for r in page)
            after = page[-1].ingest_id if page else after
            if finished and not page:
                break
    finally:
        uploader.join()
    assert seen == list(range(1, 121))


def test_many_gates_at_once_each_get_their_own_reply(store: StreamStore, tmp_path: Path) -> None:
    """Batches arriving together (committed together on SQLite) are each answered alone."""
    gates = [f"gate-{n}" for n in range(12)]
    streams = {}
    for gate in gates:
        store.add_enrol_code(gate, secret_hash(gate), NOW + timedelta(hours=1))
        assert store.enrol(gate, secret_hash(gate), secret_hash(gate + "-token"), NOW)
        path = tmp_path / f"{gate}.sqlite3"
        streams[gate] = (fill_ledger(path, 30, gate_id=gate), ledger_entries(path, gate_id=gate))
    replies: dict[str, list[Any]] = {gate: [] for gate in gates}
    start = threading.Barrier(len(gates))

    def upload(gate: str) -> None:
        stream_id, entries = streams[gate]
        start.wait()
        # Four batches through 20, then one after a hole: answered to this gate alone.
        for first in (0, 5, 10, 15, 25):
            chunk = batch(entries[first : first + 5])
            replies[gate].append(
                store.ingest(gate, stream_id, chunk, now=NOW, list_versions=VERSIONS)
            )

    threads = [threading.Thread(target=upload, args=(gate,)) for gate in gates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for gate in gates:
        *acks, gap = replies[gate]
        assert [a.stored_through for a in acks] == [5, 10, 15, 20], gate
        assert gap == StreamConflict(error="gap", cursor=20, seq=21)
        assert store.stored_through(gate, streams[gate][0]) == 20


def test_a_batch_that_fails_fails_alone(tmp_path: Path, stream: Stream) -> None:
    """On SQLite batches share a commit; a bug in one must not undo the others."""
    stream_id, entries = stream
    store = SqliteStreamStore(tmp_path / "central.sqlite3")
    try:
        for gate in (GATE, "gate-b"):
            store.add_enrol_code(gate, secret_hash(gate), NOW + timedelta(hours=1))
            assert store.enrol(gate, secret_hash(gate), secret_hash(gate + "t"), NOW)
        other = tmp_path / "b.sqlite3"
        other_stream = fill_ledger(other, 5, gate_id="gate-b")
        other_entries = ledger_entries(other, gate_id="gate-b")
        real_apply = store._apply

        def broken_for_gate_a(db: Any, gate_id: str, *args: Any, **kw: Any) -> Any:
            if gate_id == GATE:
                db.execute(
                    "INSERT INTO sync_log(gate_id, stream_id, first_seq, last_seq,"
                    " count, result, at) VALUES ('x', 'x', 1, 1, 1, 'x', 'x')"
                )
                raise RuntimeError("a bug in one batch")
            return real_apply(db, gate_id, *args, **kw)  # fmt: skip

        store._apply = broken_for_gate_a  # type: ignore[method-assign]
        # Hold the write lock so both batches queue up and commit in one group.
        results: dict[str, Any] = {}

        def send(gate: str, stream_id: str, entries: list[dict[str, Any]]) -> None:
            try:
                results[gate] = store.ingest(
                    gate, stream_id, batch(entries), now=NOW, list_versions=VERSIONS
                )
            except RuntimeError as exc:
                results[gate] = exc

        with store._lock:
            threads = [
                threading.Thread(target=send, args=(GATE, stream_id, entries[:5])),
                threading.Thread(target=send, args=("gate-b", other_stream, other_entries)),
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + PATIENCE_S
            while len(store._pending) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(store._pending) == 2
        for thread in threads:
            thread.join()
        assert isinstance(results[GATE], RuntimeError)
        assert results["gate-b"].stored_through == 5
        assert store.stored_through(GATE, stream_id) == 0
        assert store.stored_through("gate-b", other_stream) == 5
        assert [r.result for r in store.sync_log(GATE, 10)] == []  # its writes were undone
    finally:
        store.close()


def test_nul_characters_are_stored_flagged_not_refused(store: StreamStore, stream: Stream) -> None:
    stream_id, entries = stream
    odd = dict(entries[0], wall_time="2026-03-01T08:00:00\x00+08:00")
    odd["x\x00"] = "unknown column with a NUL in its name"
    reply = ingest(store, stream_id, [odd])
    assert isinstance(reply, Ack)
    assert reply.flagged == (1,)
    stored = store.entries_after(0, 1)[0]
    assert stored.content == odd  # the content is kept as sent
    assert "unknown column x" in (stored.problem or "")
    assert ingest(store, stream_id, [odd]) == reply  # and a repeat is recognised


def test_gates_resending_one_stream_concurrently_store_each_entry_once(
    store: StreamStore, tmp_path: Path
) -> None:
    path = tmp_path / "gate3.sqlite3"
    stream_id = fill_ledger(path, 60)
    entries = ledger_entries(path)
    failures: list[BaseException] = []

    def upload() -> None:
        # A gate's uploader: contiguous batches of 6 from its cursor, the server's cursor on 409.
        cursor = 0
        try:
            while cursor < 60:
                reply = ingest(store, stream_id, entries[cursor : cursor + 6])
                cursor = reply.stored_through if isinstance(reply, Ack) else reply.cursor
        except BaseException as exc:  # reported below  # noqa: BLE001
            failures.append(exc)

    uploaders = [threading.Thread(target=upload) for _ in range(4)]
    for thread in uploaders:
        thread.start()
    for thread in uploaders:
        thread.join()
    assert failures == []
    stored = store.entries_after(0, 1000)
    assert [r.seq for r in stored] == list(range(1, 61))
    assert not any(r.flagged for r in stored)
    log = store.sync_log(GATE, 1000)
    assert sum(row.count for row in log) == 60
    assert {row.result for row in log} <= {"stored", "repeat"}


#: New central files opened by several workers at once (stream and issuer store on one
#: file, as `gate-sync serve --workers N` opens them): the race to switch a new file to
#: WAL was lost about once in a hundred rounds of one store, within a few dozen of these.
OPEN_RACE_ROUNDS = 100


def test_workers_opening_a_new_central_file_at_once_all_open_it(tmp_path: Path) -> None:
    from sync.store.sqlite import SqliteCentralStore

    for round_ in range(OPEN_RACE_ROUNDS):
        path = tmp_path / f"central-{round_}.sqlite3"
        opens = [SqliteStreamStore, SqliteCentralStore, SqliteStreamStore, SqliteCentralStore]
        barrier = threading.Barrier(len(opens))
        errors: list[BaseException] = []

        def open_once(store: Any, path: Path = path, barrier: threading.Barrier = barrier,
                      errors: list[BaseException] = errors) -> None:  # fmt: skip
            barrier.wait()
            try:
                store(path).close()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_once, args=(store,)) for store in opens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}"
