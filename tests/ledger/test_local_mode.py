"""The gate mode an admin sets at the gate: the latest switch rules, every switch is kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.core.reasons import GateMode
from gate_agent.ledger import Ledger

from .helpers import PLUS8, raw_rows

AT = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)


def test_no_switch_yet(ledger: Ledger) -> None:
    assert ledger.state.local_mode() is None
    assert ledger.state.local_mode_history() == []


def test_the_latest_switch_is_the_mode_and_every_switch_is_kept(ledger: Ledger) -> None:
    state = ledger.state
    state.set_local_mode("lockdown", by="admin-li", at=AT)
    state.set_local_mode("screening", by="admin-wang", at=AT + timedelta(hours=2))
    state.set_local_mode("screening", by="admin-li", at=AT + timedelta(hours=3))
    assert state.local_mode() == ("screening", AT + timedelta(hours=3), "admin-li")
    assert state.local_mode_history() == [
        ("screening", AT + timedelta(hours=3), "admin-li"),
        ("screening", AT + timedelta(hours=2), "admin-wang"),
        ("lockdown", AT, "admin-li"),
    ]
    assert state.local_mode_history(limit=1) == [state.local_mode()]


def test_the_last_recorded_switch_wins_even_with_an_earlier_clock(ledger: Ledger) -> None:
    state = ledger.state
    state.set_local_mode("open", by="admin-li", at=AT)
    state.set_local_mode("lockdown", by="admin-li", at=AT - timedelta(days=1))
    assert state.local_mode() == ("lockdown", AT - timedelta(days=1), "admin-li")


def test_enum_modes_and_other_offsets_are_stored_plainly(ledger: Ledger) -> None:
    local = datetime(2024, 4, 1, 17, 0, tzinfo=PLUS8)
    ledger.state.set_local_mode(GateMode.LOCKDOWN, by="admin-li", at=local)
    mode = ledger.state.local_mode()
    assert mode is not None
    assert mode == ("lockdown", AT, "admin-li")
    assert type(mode[0]) is str
    assert mode[1].tzinfo == UTC
    rows = raw_rows(ledger.path, "SELECT key, value, set_at, set_by FROM local_settings")
    assert rows == [("mode", "lockdown", "2024-04-01T09:00:00.000000+00:00", "admin-li")]


@pytest.mark.parametrize(
    ("mode", "by", "at", "message"),
    [
        ("closed", "admin", AT, "mode"),
        ("LOCKDOWN", "admin", AT, "mode"),
        (None, "admin", AT, "mode"),
        ("open", "", AT, "by"),
        ("open", "  ", AT, "by"),
        ("open", None, AT, "by"),
        ("open", "admin", datetime(2024, 4, 1, 9, 0), "aware"),
        ("open", "admin", "2024-04-01T09:00Z", "aware"),
    ],
)
def test_bad_switches_record_nothing(
    ledger: Ledger, mode: Any, by: Any, at: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ledger.state.set_local_mode(mode, by=by, at=at)
    assert ledger.state.local_mode() is None


@pytest.mark.parametrize("limit", [0, 1001, True])
def test_a_bad_history_limit_is_refused(ledger: Ledger, limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        ledger.state.local_mode_history(limit=limit)


def test_the_switch_survives_reopening(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        ledger.state.set_local_mode("open", by="admin-li", at=AT)
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        assert ledger.state.local_mode() == ("open", AT, "admin-li")


def test_the_trail_cannot_be_changed_or_forged_even_through_raw_sql(ledger: Ledger) -> None:
    ledger.state.set_local_mode("open", by="admin-li", at=AT)
    conn = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="audit trail"):
            conn.execute("UPDATE local_settings SET value = 'lockdown'")
        with pytest.raises(sqlite3.IntegrityError, match="audit trail"):
            conn.execute("DELETE FROM local_settings")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO local_settings (key, value, set_at, set_by)"
                " VALUES ('mode', 'party', '2024-04-01', 'x')"
            )
    finally:
        conn.close()
    assert ledger.state.local_mode() == ("open", AT, "admin-li")
