"""Statistics of synced entries counted by both stream stores, in the display time zone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gate_agent.ledger import EntryDraft, Ledger
from sync.store import SqliteStreamStore, StreamStore
from sync.store.stats import (
    MAX_STATS_DAYS,
    StatsQuery,
    TooManyEntries,
    hour_axis,
    hour_start,
    offset_segments,
    summary,
)
from tests.ledger.helpers import draft
from tests.sync.stream_helpers import STORES, batch, ledger_entries, open_streams, store_dsn

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 23:30 in Shanghai on 1 March: the window crosses the local midnight.
BASE = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
#: When the batches arrive: the untrusted gate's entry is corrected to BASE + 60 min.
RECEIVED = BASE + timedelta(minutes=60, seconds=4)
WINDOW = (BASE, BASE + timedelta(minutes=75))


def at(minutes: float, pass_id: str | None, **changes: Any) -> EntryDraft:
    """An entry ``minutes`` after BASE (allowed in unless changed)."""
    return draft(0, wall_time=BASE + timedelta(minutes=minutes), pass_id=pass_id, **changes)


GATE_A = [
    at(-1, "P8", outcome="deny", reason="expired"),  # before the window
    at(0, "P1"),
    at(10, "P2", direction="out"),
    at(20, "P3", outcome="deny", reason="fever", next_step="refer_fever_clinic"),
    at(40, "P4", outcome="recheck", reason="recheck_temperature"),
    at(45, "P4"),
    at(50, None, pass_kind=None, manual_identity="visitor"),
    at(55, "P2", direction="out", outcome="deny", reason="quota_used"),
    at(70, "P1"),
    at(75, "P8", outcome="deny", reason="lockdown_residents_only"),  # the window's end
]
GATE_B = [
    at(5, "P5"),
    at(65, "P9", direction="out", outcome="deny", reason="revoked"),
]
#: A gate whose clock was wrong: its own time says 2020; the centre's says BASE + 60 min.
GATE_D = [draft(0, wall_time=datetime(2020, 1, 1, tzinfo=UTC), clock_synced=False, pass_id="P6")]


def sync_gate(
    streams: StreamStore, path: Path, gate_id: str, drafts: list[EntryDraft], **options: Any
) -> None:
    with Ledger.open(path, gate_id=gate_id) as ledger:
        for entry in drafts:
            ledger.append(entry)
        stream_id = ledger.stream_id
    streams.add_enrol_code(gate_id, f"code-of-{gate_id}", RECEIVED + timedelta(hours=1))
    reply = streams.ingest(
        gate_id,
        stream_id,
        batch(ledger_entries(path, gate_id), **options),
        now=RECEIVED,
        list_versions={},
    )
    assert reply.stored_through == len(drafts)  # type: ignore[union-attr]


@pytest.fixture(params=STORES)
def streams(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamStore]:
    store = open_streams(tmp_path, store_dsn(request))
    try:
        sync_gate(store, tmp_path / "a.sqlite3", "gate-a", GATE_A)
        sync_gate(store, tmp_path / "b.sqlite3", "gate-b", GATE_B)
        sync_gate(store, tmp_path / "d.sqlite3", "gate-d", GATE_D, clock_synced=False)
        yield store
    finally:
        store.close()


def stats(store: StreamStore, *gates: str, tz: Any = SHANGHAI, window: Any = WINDOW) -> Any:
    return summary(store.entry_stats(StatsQuery(window[0], window[1], tz, gates)))


def test_entries_per_hour_per_gate_in_shanghai_hours(streams: StreamStore) -> None:
    found = stats(streams)
    assert found["tz"] == "Asia/Shanghai"
    assert found["hours"] == ["2024-03-01T23:00:00+08:00", "2024-03-02T00:00:00+08:00"]
    assert found["days"] == ["2024-03-01", "2024-03-02"]
    assert found["gates"] == ["gate-a", "gate-b", "gate-d"]
    assert found["hourly"] == [
        {"gate_id": "gate-a", "hour": "2024-03-01T23:00:00+08:00", "in": 2, "out": 1},
        {"gate_id": "gate-a", "hour": "2024-03-02T00:00:00+08:00", "in": 4, "out": 1},
        {"gate_id": "gate-b", "hour": "2024-03-01T23:00:00+08:00", "in": 1, "out": 0},
        {"gate_id": "gate-b", "hour": "2024-03-02T00:00:00+08:00", "in": 0, "out": 1},
        # The untrusted clock's entry counts at its corrected time (00:30), as traces
        # order it (``entry_time``), not at its own 2020.
        {"gate_id": "gate-d", "hour": "2024-03-02T00:00:00+08:00", "in": 1, "out": 0},
    ]
    assert found["total"] == 11


def test_refusals_fevers_and_people(streams: StreamStore) -> None:
    found = stats(streams)
    # Most first, then by reason; the entries just outside the window are not there.
    assert found["refusals"] == [
        {"reason": "fever", "outcome": "deny", "count": 1},
        {"reason": "quota_used", "outcome": "deny", "count": 1},
        {"reason": "recheck_temperature", "outcome": "recheck", "count": 1},
        {"reason": "revoked", "outcome": "deny", "count": 1},
    ]
    assert found["fevers"] == [
        {"day": "2024-03-01", "fever": 1, "recheck": 0},
        {"day": "2024-03-02", "fever": 0, "recheck": 1},
    ]
    assert found["people"] == [
        {"gate_id": "gate-a", "day": "2024-03-01", "people": 2, "passes": 2, "registered": 0,
         "entries": 3},
        # P4 twice (a recheck, then let in), P1, and a visitor registered at the desk.
        {"gate_id": "gate-a", "day": "2024-03-02", "people": 3, "passes": 2, "registered": 1,
         "entries": 5},
        {"gate_id": "gate-b", "day": "2024-03-01", "people": 1, "passes": 1, "registered": 0,
         "entries": 1},
        {"gate_id": "gate-b", "day": "2024-03-02", "people": 0, "passes": 0, "registered": 0,
         "entries": 1},
        {"gate_id": "gate-d", "day": "2024-03-02", "people": 1, "passes": 1, "registered": 0,
         "entries": 1},
    ]  # fmt: skip


def test_some_gates_another_zone_and_the_window_edges(streams: StreamStore) -> None:
    only_b = stats(streams, "gate-b", "gate-x")
    assert only_b["gates"] == ["gate-b", "gate-x"]
    assert {row["gate_id"] for row in only_b["hourly"]} == {"gate-b"}
    assert only_b["total"] == 2
    # In UTC the same entries fall in the hours 15 and 16 of one day.
    utc = stats(streams, "gate-a", tz=UTC)
    assert [(row["hour"], row["in"], row["out"]) for row in utc["hourly"]] == [
        ("2024-03-01T15:00:00+00:00", 2, 1),
        ("2024-03-01T16:00:00+00:00", 4, 1),
    ]
    assert utc["days"] == ["2024-03-01"]
    # since is included and until is not, to the millisecond.
    edge = (BASE + timedelta(minutes=75), BASE + timedelta(minutes=75, milliseconds=1))
    assert stats(streams, "gate-a", window=edge)["refusals"] == [
        {"reason": "lockdown_residents_only", "outcome": "deny", "count": 1}
    ]
    before = (BASE - timedelta(minutes=1, milliseconds=1), BASE - timedelta(minutes=1))
    assert stats(streams, "gate-a", window=before)["total"] == 0


def test_an_empty_window_has_its_axes_and_no_counts(streams: StreamStore) -> None:
    empty = stats(streams, window=(BASE + timedelta(days=3), BASE + timedelta(days=4)))
    assert empty["total"] == 0
    assert empty["hourly"] == empty["refusals"] == empty["people"] == []
    assert len(empty["hours"]) == 25  # 23:30 to 23:30 touches 25 hours
    assert [row["fever"] + row["recheck"] for row in empty["fevers"]] == [0, 0]


def test_hours_where_clocks_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    since = datetime(2024, 3, 30, 23, tzinfo=UTC)  # 00:00 in Berlin, on the day clocks go on
    until = since + timedelta(hours=4)
    change = datetime(2024, 3, 31, 1, tzinfo=UTC)
    assert offset_segments(berlin, since, until) == [
        (0, 3_600_000),
        (int(change.timestamp()) * 1000, 7_200_000),
    ]
    hours = [h.split("T")[1] for h in summary_hours(StatsQuery(since, until, berlin))]
    assert hours == ["00:00:00+01:00", "01:00:00+01:00", "03:00:00+02:00", "04:00:00+02:00"]
    assert offset_segments(SHANGHAI, since, until) == [(0, 28_800_000)]


def summary_hours(query: StatsQuery) -> list[str]:
    return [hour_start(query, hour).isoformat() for hour in hour_axis(query)]


@pytest.fixture(params=STORES)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamStore]:
    store = open_streams(tmp_path, store_dsn(request))
    try:
        yield store
    finally:
        store.close()


def test_clock_change_buckets_in_the_store(empty: StreamStore, tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    change = datetime(2024, 3, 31, 1, tzinfo=UTC)
    drafts = [
        draft(0, wall_time=change - timedelta(minutes=30)),  # 01:30 CET
        draft(0, wall_time=change + timedelta(minutes=30)),  # 03:30 CEST
    ]
    sync_gate(empty, tmp_path / "a.sqlite3", "gate-a", drafts)
    found = stats(
        empty, tz=berlin, window=(change - timedelta(hours=2), change + timedelta(hours=2))
    )
    assert [row["hour"] for row in found["hourly"]] == [
        "2024-03-31T01:00:00+01:00",
        "2024-03-31T03:00:00+02:00",
    ]


def test_entries_flagged_for_odd_fields_are_counted_not_fatal(
    empty: StreamStore, tmp_path: Path
) -> None:
    path = tmp_path / "a.sqlite3"
    with Ledger.open(path, gate_id="gate-a") as ledger:
        ledger.append(at(30, "P1"))
        ledger.append(at(31, "P2"))
        stream_id = ledger.stream_id
    entry, timeless = ledger_entries(path, "gate-a")
    # A gate sending nonsense: the centre flags the entries and keeps them as sent.
    entry |= {"direction": {"odd": [1]}, "outcome": 7, "reason": None, "pass_id": 12}
    # A wall time shaped like one, with an offset, that is no time: it is not counted.
    timeless["wall_time"] = "2024-13-45T99:00:00+08:00"
    empty.add_enrol_code("gate-a", "code", RECEIVED + timedelta(hours=1))
    empty.ingest("gate-a", stream_id, batch([entry, timeless]), now=RECEIVED, list_versions={})
    assert [record.flagged for record in empty.entries_after(0, 10)] == [True, True]
    found = stats(empty)
    assert found["total"] == 1
    assert found["hourly"] == []  # neither in nor out
    assert found["refusals"] == [{"reason": "", "outcome": "7", "count": 1}]


def test_a_count_too_big_is_refused_from_the_index(streams: StreamStore) -> None:
    with pytest.raises(TooManyEntries) as refused:
        streams.entry_stats(StatsQuery(*WINDOW, SHANGHAI, max_entries=10))
    assert (refused.value.count, refused.value.limit) == (11, 10)
    assert (
        summary(streams.entry_stats(StatsQuery(*WINDOW, SHANGHAI, max_entries=11)))["total"] == 11
    )


def test_a_query_is_bounded() -> None:
    with pytest.raises(ValueError, match="after"):
        StatsQuery(BASE, BASE, SHANGHAI)
    with pytest.raises(ValueError, match="longer"):
        StatsQuery(BASE, BASE + timedelta(days=MAX_STATS_DAYS, seconds=1), SHANGHAI)
    with pytest.raises(ValueError, match="aware"):
        StatsQuery(BASE.replace(tzinfo=None), BASE + timedelta(hours=1), SHANGHAI)


def test_counting_leaves_the_shared_reader_free(tmp_path: Path) -> None:
    # Counting a month takes seconds on a big store; gates' token checks share the
    # store's one reader, so the count must not take it. Hold it, and count anyway.
    store = open_streams(tmp_path, None)
    assert isinstance(store, SqliteStreamStore)
    try:
        sync_gate(store, tmp_path / "a.sqlite3", "gate-a", GATE_A)
        counted: list[int] = []
        with store._read_lock:
            worker = threading.Thread(
                target=lambda: counted.append(stats(store, "gate-a")["total"]), daemon=True
            )
            worker.start()
            worker.join(timeout=60)  # a deadlock check, not a speed one
        assert counted == [8]
    finally:
        store.close()


def test_postgres_counts_even_where_it_would_plan_parallel_workers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # gate_entry_time enters an exception block, which parallel workers may not: a
    # large window, planned in parallel, must still be counted. Force the plan.
    psycopg = pytest.importorskip("psycopg")
    from sync.store.streams_postgres import PostgresStreamStore

    dsn = str(request.getfixturevalue("postgres_dsn"))
    with psycopg.connect(dsn) as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])
    setting = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
    store = PostgresStreamStore(f"{dsn}%20-c{setting}%3Don")
    try:
        sync_gate(store, tmp_path / "a.sqlite3", "gate-a", GATE_A)
        assert stats(store)["total"] == 8
        # What keeps any query on it out of parallel workers: stream migration 4.
        with psycopg.connect(dsn) as conn:
            declared = conn.execute(
                "SELECT proparallel FROM pg_proc WHERE proname = 'gate_entry_time'"
            ).fetchall()
        assert declared and {row[0] for row in declared} == {"r"}
    finally:
        store.close()
