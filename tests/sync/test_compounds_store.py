"""Compounds in both central stores: gates' places, recent entries by index, exit quotas."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gate_agent.ledger import Ledger
from sync.errors import WrongPlace
from sync.server.auth import secret_hash
from sync.store import IssuerStore, RecentQuery, SqliteStreamStore, StreamStore
from tests.ledger.helpers import T0, draft
from tests.sync.stream_helpers import (
    GATE,
    NOW,
    OTHER_GATE,
    STORES,
    batch,
    ledger_entries,
    open_central,
    open_store,
    store_dsn,
)
from tests.sync.test_central_store import fields, raw_key


@pytest.fixture(params=STORES)
def streams(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamStore]:
    opened = open_store(request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=STORES)
def central(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerStore]:
    opened = open_central(tmp_path, store_dsn(request))
    try:
        yield opened
    finally:
        opened.close()


def enrol(store: StreamStore, gate: str, code: str, **place: str | None) -> bool:
    store.add_enrol_code(gate, secret_hash(code), NOW + timedelta(hours=1))
    return store.enrol(gate, secret_hash(code), secret_hash(f"token-{code}"), NOW, **place)


def test_a_gate_reports_its_place_once_and_a_different_one_is_refused(
    streams: StreamStore,
) -> None:
    assert enrol(streams, GATE, "c1", compound="north", community="cm1")
    assert streams.gate_place(GATE) == ("north", "cm1")
    # The installer's config names another compound: refused, nothing changes.
    streams.add_enrol_code(GATE, secret_hash("c2"), NOW + timedelta(hours=1))
    with pytest.raises(WrongPlace, match="compound north"):
        streams.enrol(GATE, secret_hash("c2"), secret_hash("t2"), NOW, compound="south")
    assert streams.token_hash(GATE) == secret_hash("token-c1")
    # The code was not used up: with the right place (or none) it enrols.
    assert streams.enrol(GATE, secret_hash("c2"), secret_hash("t2"), NOW)
    assert streams.gate_place(GATE) == ("north", "cm1")
    # An admin corrects the place; the community stays unless given.
    streams.set_place(GATE, "south", None)
    assert streams.gate_place(GATE) == ("south", "cm1")
    streams.set_place(OTHER_GATE, "south", "cm2")  # placed before it ever enrols
    assert streams.compound_gates("south") == [GATE, OTHER_GATE]
    assert streams.compound_gates("north") == []
    assert streams.gate_place("gate-z") == (None, None)
    views = {view.gate_id: view for view in streams.gates()}
    assert (views[OTHER_GATE].compound, views[OTHER_GATE].community) == ("south", "cm2")
    assert views[OTHER_GATE].enrolled_at is None


def test_an_older_sqlite_file_gains_the_place_columns(tmp_path: Path) -> None:
    path = tmp_path / "central.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE gates (gate_id TEXT PRIMARY KEY, token_hash TEXT UNIQUE,"
            " enrolled_at TEXT, last_seen TEXT, last_clock_offset_ms INTEGER,"
            " last_backlog INTEGER)"
        )
        conn.execute("INSERT INTO gates(gate_id) VALUES ('gate-old')")
    conn.close()
    with SqliteStreamStore(path) as store:
        assert store.gate_place("gate-old") == (None, None)
        store.set_place("gate-old", "north", "cm1")
        assert store.compound_gates("north") == ["gate-old"]
        plan = store._reader.execute(  # the compound lists' query uses its index
            "EXPLAIN QUERY PLAN SELECT ingest_id FROM entries WHERE gate_id IN ('a')"
            " AND json_extract(content, '$.reason') IN ('quarantined_exit')"
            " AND julianday(COALESCE(corrected_time, wall_time)) >= 1"
        ).fetchall()
        assert "entries_gate_reason" in str(plan)


def _ingest_ledger(store: StreamStore, path: Path, gate: str, drafts: list[object]) -> str:
    with Ledger.open(path, gate_id=gate) as ledger:
        for item in drafts:
            ledger.append(item)  # type: ignore[arg-type]
        stream_id = ledger.stream_id
    entries = ledger_entries(path, gate)
    store.ingest(gate, stream_id, batch(entries), now=NOW, list_versions={})
    return stream_id


def test_recent_entries_keep_what_the_compound_lists_ask_for_newest_first(
    streams: StreamStore, tmp_path: Path
) -> None:
    enrol(streams, GATE, "a", compound="north")
    enrol(streams, OTHER_GATE, "b", compound="north")
    quarantined = {"direction": "out", "outcome": "deny", "reason": "quarantined_exit"}
    a = _ingest_ledger(
        streams,
        tmp_path / "a.sqlite3",
        GATE,
        [
            draft(0, **quarantined),
            draft(1, direction="out"),  # a resident's allowed exit
            draft(2, direction="out", pass_kind="worker"),
            draft(3, direction="in", pass_kind="visitor"),
            draft(4, direction="out", outcome="deny", reason="quota_used"),
        ],
    )
    b = _ingest_ledger(
        streams, tmp_path / "b.sqlite3", OTHER_GATE, [draft(10, **quarantined), draft(11)]
    )
    both = (GATE, OTHER_GATE)
    alerts = streams.recent_entries(
        RecentQuery(both, T0, reasons=("quarantined_exit", "host_in_isolation")), 50
    )
    assert [(r.stream_id, r.seq) for r in alerts] == [(b, 1), (a, 1)]  # newest first
    exits = streams.recent_entries(
        RecentQuery(both, T0, pass_kinds=("resident", "tenant"), direction="out", outcome="allow"),
        50,
    )
    assert [(r.stream_id, r.seq) for r in exits] == [(a, 2)]
    visits = streams.recent_entries(
        RecentQuery(both, T0, pass_kinds=("visitor",), direction="in", outcome="allow"), 50
    )
    assert [r.seq for r in visits] == [4]
    later = streams.recent_entries(
        RecentQuery(both, T0 + timedelta(minutes=5), reasons=("quarantined_exit",)), 50
    )
    assert [r.stream_id for r in later] == [b]
    assert streams.recent_entries(RecentQuery((), T0, reasons=("quarantined_exit",)), 5) == []
    assert streams.recent_entries(RecentQuery(both, T0, reasons=("quarantined_exit",)), 1) == [
        alerts[0]
    ]


def test_a_compound_quota_is_a_setting_between_every_gate_and_the_gate(
    central: IssuerStore,
) -> None:
    version = central.list_version("settings")
    central.set_setting("", "exit_quota", "3/7", by="ops", now=NOW)
    central.set_compound_quota("north", "1/2", by="zhang", now=NOW)
    assert central.list_version("settings") == version + 2
    assert central.compound_quota("north") == "1/2"
    assert central.compound_quota("south") is None
    assert central.settings_for(GATE, "north") == {"exit_quota": "1/2"}
    assert central.settings_for(GATE, "south") == {"exit_quota": "3/7"}
    assert central.settings_for(GATE) == {"exit_quota": "3/7"}
    central.set_setting(GATE, "exit_quota", "2/2", by="ops", now=NOW)
    assert central.settings_for(GATE, "north") == {"exit_quota": "2/2"}
    assert central.settings_for(OTHER_GATE, "north") == {"exit_quota": "1/2"}
    later = NOW + timedelta(hours=1)
    central.set_compound_quota("north", None, by="li", now=later)
    central.set_compound_quota("west", "2/3", by="li", now=later)
    assert [(r.compound, r.quota, r.set_by) for r in central.compound_quotas()] == [
        ("west", "2/3", "li")
    ]
    history = central.compound_quota_history("north")
    assert [(r.quota, r.set_by, r.set_at) for r in history] == [
        ("1/2", "zhang", NOW.isoformat()),
        (None, "li", later.isoformat()),
    ]
    assert len(central.compound_quota_history()) == 3
    assert central.list_version("settings") == version + 5
    with pytest.raises(ValueError, match="EXITS/DAYS"):
        central.set_compound_quota("north", "0/2", by="li", now=NOW)
    assert len(central.compound_quota_history()) == 3


def test_pass_labels_are_the_masked_name_and_unit_printed_on_a_pass(
    central: IssuerStore,
) -> None:
    kid = central.add_key(raw_key(), NOW)
    central.add_pass(fields("AAAAAA1"), "text-1", kid, NOW)
    central.add_pass(replace(fields("AAAAAA2"), unit=""), "text-2", kid, NOW)
    assert central.pass_labels(["AAAAAA1", "AAAAAA2", "ZZZZZZ9"]) == {
        "AAAAAA1": ("王*明", "1-1-101"),
        "AAAAAA2": ("王*明", ""),
    }
    assert central.pass_labels([]) == {}
