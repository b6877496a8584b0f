"""Counts for the console: a day's passages, refusals, rechecks, alerts, and people inside."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest

from gate_agent.ledger import DaySummary, Ledger
from gate_agent.ledger.summary import COUNTS_SQL, INSIDE_SQL, REFUSALS_SQL

from .helpers import PLUS8, T0, draft


def _day(ledger: Ledger) -> None:
    """Ten entries a minute apart from T0, and one the day before."""
    ledger.append(draft(-24 * 60, pass_id="yesterday"))
    entries: list[dict[str, Any]] = [
        {"pass_id": "P1"},  # in
        {"pass_id": "P2"},  # in
        {"pass_id": "P1", "direction": "out"},
        {"pass_id": "P3", "outcome": "deny", "reason": "expired"},
        {"pass_id": "P4", "outcome": "deny", "reason": "revoked", "alert": True},
        {"pass_id": "P5", "outcome": "recheck", "reason": "recheck_temperature"},
        {"pass_id": "P5", "outcome": "deny", "reason": "fever", "alert": True},
        {"pass_id": "P6", "outcome": "deny", "reason": "expired"},
        {"pass_id": None, "reason": "manual_release", "guard": "guard-1", "pass_kind": None},
        {"pass_id": "P7", "direction": "out", "guard": "guard-2"},
    ]
    for n, changes in enumerate(entries):
        ledger.append(draft(n, **changes))


def test_a_day_is_counted(ledger: Ledger) -> None:
    _day(ledger)
    summary = ledger.day_summary(T0, T0 + timedelta(days=1))
    assert summary == DaySummary(
        entries_in=3,
        entries_out=2,
        refusals_by_reason={"expired": 2, "fever": 1, "revoked": 1},
        rechecks=1,
        fevers=1,
        alerts=2,
        manual=2,
    )


def test_since_is_included_and_until_is_not(ledger: Ledger) -> None:
    _day(ledger)
    # Entries at T0+0 .. T0+9 min: [T0+1, T0+3) holds the second and third.
    summary = ledger.day_summary(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert (summary.entries_in, summary.entries_out) == (1, 1)
    assert summary.refusals_by_reason == {}
    # Any offset names the same instant.
    local = (T0 + timedelta(minutes=1)).astimezone(PLUS8)
    assert ledger.day_summary(local, local + timedelta(minutes=2)) == summary


def test_an_empty_range_counts_nothing(ledger: Ledger) -> None:
    assert ledger.day_summary(T0, T0) == DaySummary(0, 0)
    _day(ledger)
    assert ledger.day_summary(T0 + timedelta(days=2), T0 + timedelta(days=3)) == DaySummary(0, 0)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (datetime(2024, 3, 1), T0, "since"),
        (T0, datetime(2024, 3, 2), "until"),
        (T0, T0 - timedelta(seconds=1), "before since"),
    ],
)
def test_bad_ranges_are_refused(
    ledger: Ledger, since: datetime, until: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ledger.day_summary(since, until)


def test_people_inside_counts_passes_whose_last_passage_went_in(ledger: Ledger) -> None:
    _day(ledger)
    # P1 went in then out; P2 in; P7 out; refusals and the passless release do not count;
    # "yesterday" went in the day before.
    assert ledger.people_inside_estimate(T0) == 1
    assert ledger.people_inside_estimate(T0 - timedelta(days=2)) == 2
    ledger.append(draft(20, pass_id="P1"))
    ledger.append(draft(21, pass_id="P2", outcome="deny", reason="already_inside"))
    assert ledger.people_inside_estimate(T0) == 2
    assert ledger.people_inside_estimate(T0 + timedelta(minutes=20)) == 1
    with pytest.raises(ValueError, match="since"):
        ledger.people_inside_estimate(datetime(2024, 3, 1))


def test_last_means_written_last_whatever_the_clock_says(ledger: Ledger) -> None:
    ledger.append(draft(10, pass_id="P1"))
    ledger.append(draft(5, pass_id="P1", direction="out"))  # the clock went back
    assert ledger.people_inside_estimate(T0) == 0


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (COUNTS_SQL, "entries_counts_by_time"),
        (REFUSALS_SQL, "entries_counts_by_time"),
        (INSIDE_SQL, "entries_allowed_by_time"),
    ],
)
def test_the_counts_read_index_pages_only(ledger: Ledger, sql: str, index: str) -> None:
    """Covering indexes: a count never reads the entries' rows, so it stays quick."""
    _day(ledger)
    conn = sqlite3.connect(ledger.path)
    try:
        conn.execute("ANALYZE")
        params = {"since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()}
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()
    assert f"COVERING INDEX {index}" in plan
    assert "SCAN entries " not in f"{plan} "


def test_the_chain_still_verifies_with_the_new_indexes(ledger: Ledger) -> None:
    _day(ledger)
    report = ledger.verify()
    assert report.ok
    assert report.entries_checked == 11
