"""Appending and reading entries, validation, the append-only triggers and the purge."""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import threading
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest

from gate_agent.ledger import EntryDraft, Ledger
from gate_agent.ledger.records import GENESIS_PREFIX, canonical_json, personal_digest

from .helpers import PLUS8, T0, draft, raw_rows


def test_append_reads_back_equal(ledger: Ledger) -> None:
    given = draft(
        0,
        wall_time=datetime(2024, 3, 1, 16, 0, 0, 123456, tzinfo=PLUS8),
        manual_identity="unit:3-2-501",
        guard="guard-wang",
        alert=True,
        next_step="call_resident",
        note="manual lookup, pass at home",
        temperature_source="manual",
        personal={"name": "王小明", "phone": "138****0000"},
    )
    stored = ledger.append(given)
    assert stored == ledger.get(1)
    assert stored.seq == 1
    assert stored.stream_id == ledger.stream_id
    assert stored.gate_id == "gate-a"
    for field in fields(EntryDraft):
        assert getattr(stored, field.name) == getattr(given, field.name), field.name
    assert stored.wall_time.tzinfo == UTC
    assert raw_rows(ledger.path, "SELECT wall_time FROM entries") == [
        ("2024-03-01T08:00:00.123456+00:00",)
    ]


def test_temperatures_are_rounded_to_two_decimals(ledger: Ledger) -> None:
    stored = ledger.append(
        draft(0, temperature_celsius=36.4567, temperature_raw=(34.123, -0.001), ambient_celsius=20)
    )
    assert stored.temperature_celsius == 36.46
    assert stored.temperature_raw == (34.12, 0.0)
    assert stored.ambient_celsius == 20.0
    assert ledger.get(1) == stored


def test_sequence_is_contiguous_and_chained(ledger: Ledger) -> None:
    stored = [ledger.append(draft(n)) for n in range(6)]
    assert [entry.seq for entry in stored] == [1, 2, 3, 4, 5, 6]
    genesis = hashlib.sha256(GENESIS_PREFIX + ledger.stream_id.encode()).hexdigest()
    assert stored[0].prev_hash == genesis
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert len({entry.hash for entry in stored}) == 6
    assert ledger.last_seq() == 6
    assert ledger.count() == 6
    assert ledger.verify().ok


def test_personal_digest_is_salted_and_kept_apart(ledger: Ledger) -> None:
    personal = {"name": "李四", "phone": "13900000000"}
    first = ledger.append(draft(0, personal=personal))
    second = ledger.append(draft(1, personal=personal))
    assert first.personal == personal
    assert first.personal_digest != second.personal_digest  # a fresh salt each time
    ((text, salt),) = raw_rows(
        ledger.path, "SELECT personal, personal_salt FROM entries WHERE seq = 1"
    )
    assert isinstance(salt, bytes)
    assert len(salt) == 16
    assert text == canonical_json(personal).decode()
    assert personal_digest(salt, str(text)) == first.personal_digest
    assert ledger.append(draft(2)).personal_digest is None
    assert ledger.append(draft(3, personal={})).personal is None


def test_queries(ledger: Ledger) -> None:
    ledger.append(draft(0, pass_id="p1", outcome="allow"))
    ledger.append(draft(1, pass_id="p1", outcome="deny", reason="fever"))
    ledger.append(draft(2, pass_id="p2"))
    assert ledger.get(99) is None
    last = ledger.last_for_pass("p1")
    assert last is not None
    assert (last.seq, last.reason) == (2, "fever")
    allowed = ledger.last_allowed_for_pass("p1")
    assert allowed is not None
    assert allowed.seq == 1
    assert ledger.last_for_pass("nobody") is None
    assert ledger.last_allowed_for_pass("nobody") is None
    assert [entry.seq for entry in ledger.entries()] == [1, 2, 3]
    assert [entry.seq for entry in ledger.entries(after_seq=1, limit=1)] == [2]
    assert ledger.entries(after_seq=3) == []
    with pytest.raises(ValueError, match="limit"):
        ledger.entries(limit=0)


def test_household_exits_since(ledger: Ledger) -> None:
    ledger.append(draft(0, household_id="h1", direction="out"))  # before `since`
    ledger.append(draft(10, household_id="h1", direction="out"))
    ledger.append(draft(11, household_id="h1", direction="out", outcome="deny", reason="x"))
    ledger.append(draft(12, household_id="h1", direction="in"))
    ledger.append(draft(13, household_id="h2", direction="out"))
    ledger.append(draft(14, household_id="h1", direction="out"))
    since = (T0 + timedelta(minutes=5)).astimezone(PLUS8)
    exits = ledger.household_exits_since("h1", since)
    assert exits == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=14)]
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.household_exits_since("h1", datetime(2024, 1, 1))


class _Direction(StrEnum):
    OUT = "out"


def test_str_enums_are_stored_as_their_values(ledger: Ledger) -> None:
    stored = ledger.append(draft(0, direction=_Direction.OUT))
    assert type(stored.direction) is str
    assert stored.direction == "out"
    assert ledger.verify().ok


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"outcome": "maybe"}, "outcome"),
        ({"reason": ""}, "reason"),
        ({"wall_time": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"monotonic_ns": -1}, "monotonic_ns"),
        ({"monotonic_ns": 1.5}, "monotonic_ns"),
        ({"boot_id": None}, "boot_id"),
        ({"clock_synced": 1}, "clock_synced"),
        ({"temperature_celsius": float("nan")}, "temperature_celsius"),
        ({"temperature_celsius": "36.5"}, "temperature_celsius"),
        ({"temperature_raw": (36.5, float("inf"))}, "temperature_raw"),
        ({"temperature_raw": "36.5"}, "temperature_raw"),
        ({"temperature_source": "guess"}, "temperature_source"),
        ({"alert": "yes"}, "alert"),
        ({"pass_id": 42}, "pass_id"),
        ({"note": "\ud800"}, "note"),
        ({"personal": {"phone": 138}}, "personal"),
        ({"personal": ["name"]}, "personal"),
        ({"wall_time": datetime.min.replace(tzinfo=PLUS8)}, "wall_time"),
    ],
)
def test_bad_drafts_raise_and_write_nothing(
    ledger: Ledger, changes: dict[str, Any], message: str
) -> None:
    ledger.append(draft(0))
    with pytest.raises(ValueError, match=message):
        ledger.append(replace(draft(1), **changes))
    assert ledger.count() == 1
    assert ledger.append(draft(2)).seq == 2


def test_delete_trigger_refuses_raw_sql(ledger: Ledger) -> None:
    ledger.append(draft(0))
    conn = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM entries WHERE seq = 1")
    finally:
        conn.close()
    assert ledger.count() == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET outcome = 'deny'",
        "UPDATE entries SET temperature_celsius = 35.0",
        "UPDATE entries SET personal = NULL, personal_salt = NULL, note = 'x'",
        'UPDATE entries SET personal = \'{"name":"x"}\'',
        "UPDATE entries SET hash = 'x'",
        "UPDATE entries SET seq = 7",
    ],
)
def test_update_trigger_refuses_all_but_the_purge(ledger: Ledger, statement: str) -> None:
    ledger.append(draft(0, personal={"name": "张三"}))
    conn = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
        conn.execute("UPDATE entries SET personal = NULL, personal_salt = NULL")
        conn.commit()
    finally:
        conn.close()
    entry = ledger.get(1)
    assert entry is not None
    assert entry.personal is None
    assert ledger.verify().ok


def test_inserts_must_extend_the_chain(ledger: Ledger) -> None:
    first = ledger.append(draft(0))
    ledger.append(draft(1))
    conn = sqlite3.connect(ledger.path)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(entries)")]
        values_1 = conn.execute("SELECT * FROM entries WHERE seq = 1").fetchone()
        row = dict(zip(columns, values_1, strict=True))
        placeholders = ", ".join("?" for _ in columns)
        for seq, prev_hash in ((1, row["prev_hash"]), (4, first.hash), (3, first.hash)):
            values = [{**row, "seq": seq, "prev_hash": prev_hash}[c] for c in columns]
            with pytest.raises(sqlite3.IntegrityError, match="extend the chain"):
                conn.execute(f"INSERT OR REPLACE INTO entries VALUES ({placeholders})", values)  # noqa: S608
    finally:
        conn.close()
    assert ledger.count() == 2
    assert ledger.verify().ok


def test_purge_removes_old_personal_data_and_keeps_the_chain(ledger: Ledger) -> None:
    for n in range(4):
        ledger.append(draft(n * 60, personal={"name": f"visitor {n}"}))
    ledger.append(draft(300))
    cutoff = T0 + timedelta(hours=2)  # entries 0, 1 are before; 2, 3 at or after
    assert ledger.purge_personal(cutoff) == 2
    assert ledger.purge_personal(cutoff) == 0
    kept = [entry.personal for entry in ledger.entries()]
    assert kept == [None, None, {"name": "visitor 2"}, {"name": "visitor 3"}, None]
    assert raw_rows(ledger.path, "SELECT COUNT(*) FROM entries WHERE personal_salt IS NULL") == [
        (3,)
    ]
    digests = raw_rows(ledger.path, "SELECT personal_digest FROM entries ORDER BY seq")
    assert all(digest is not None for (digest,) in digests[:4])
    report = ledger.verify()
    assert report.ok
    assert report.entries_checked == 5
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.purge_personal(datetime(2030, 1, 1))


def test_appends_from_several_threads_stay_contiguous(ledger: Ledger) -> None:
    def append_many(worker: int) -> None:
        for n in range(10):
            ledger.append(draft(worker * 100 + n))

    threads = [threading.Thread(target=append_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [entry.seq for entry in ledger.entries()] == list(range(1, 41))
    assert ledger.verify().ok
