"""The compound lists at the gate: alerts and passages from the other gates, as snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gate_agent.ledger import Ledger
from gate_agent.ledger.state import ListChange
from tests.ledger.helpers import draft

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
STREAM_B = "bbbbbbbb-0000-4000-8000-000000000000"
PLUS8 = "+08:00"


def passage(seq: int, ago: timedelta, **item: Any) -> dict[str, Any]:
    return {
        "gate_id": "gate-b", "stream_id": STREAM_B, "seq": seq, "pass_id": "PASS000001",
        "household_id": "H1", "kind": "resident", "direction": "out",
        "at": (NOW - ago).astimezone().isoformat(), **item,
    }  # fmt: skip


def alert(seq: int, ago: timedelta, **item: Any) -> dict[str, Any]:
    return {
        "gate_id": "gate-b", "stream_id": STREAM_B, "seq": seq, "at": (NOW - ago).isoformat(),
        "reason": "quarantined_exit", "household_id": "H3", "unit": "1-1-101",
        "display_name": "王*明", "pass_id": "PASS000003", **item,
    }  # fmt: skip


def test_passages_are_stored_whole_and_read_by_household_and_by_pass(ledger: Ledger) -> None:
    state = ledger.state
    items = [
        passage(3, timedelta(hours=1)),
        passage(9, timedelta(days=3)),
        passage(
            5,
            timedelta(hours=2),
            pass_id="VISIT00001",
            kind="visitor",
            direction="in",
            household_id="H2",
        ),
    ]
    assert state.apply_changes([ListChange("passages", 12, items)]) == ["passages"]
    assert state.compound_versions() == {"alerts": 0, "passages": 12}
    assert state.household_passages("H1", "out", NOW - timedelta(days=2)) == [
        (STREAM_B, 3, NOW - timedelta(hours=1))
    ]
    assert len(state.household_passages("H1", "out", NOW - timedelta(days=4))) == 2
    assert state.household_passages("H1", "in", NOW - timedelta(days=4)) == []
    assert state.pass_passages("VISIT00001", "in", NOW - timedelta(days=7)) == [
        (STREAM_B, 5, "gate-b", NOW - timedelta(hours=2))
    ]
    # The next snapshot replaces the list; an older or equal version changes nothing.
    assert state.apply_changes([ListChange("passages", 12, [])]) == []
    assert state.apply_changes([ListChange("passages", 15, items[:1])]) == ["passages"]
    assert len(state.household_passages("H1", "out", NOW - timedelta(days=4))) == 1


def test_alerts_newest_first_and_a_malformed_one_changes_nothing(ledger: Ledger) -> None:
    state = ledger.state
    items = [alert(1, timedelta(hours=3)), alert(2, timedelta(minutes=10), pass_id=None)]
    state.apply_changes([ListChange("alerts", 7, items)])
    found = state.alerts(NOW - timedelta(hours=24))
    assert [(a["seq"], a["pass_id"]) for a in found] == [(2, None), (1, "PASS000003")]
    assert found[0]["at"] == NOW - timedelta(minutes=10)
    assert [a["seq"] for a in state.alerts(NOW - timedelta(hours=1))] == [2]
    for bad in (
        {**alert(4, timedelta(0)), "seq": 0},
        {**alert(4, timedelta(0)), "at": "yesterday"},
        {k: v for k, v in alert(4, timedelta(0)).items() if k != "unit"},
        alert(1, timedelta(0)),  # the same entry twice
    ):
        with pytest.raises(ValueError, match=r"alerts\[\d\]"):
            state.apply_changes(
                [
                    ListChange("alerts", 9, [alert(1, timedelta(hours=3)), bad]),
                    ListChange("passages", 9, [passage(1, timedelta(0))]),
                ]
            )
    assert state.compound_versions() == {"alerts": 7, "passages": 0}
    assert len(state.alerts(NOW - timedelta(days=1))) == 2


def test_new_settings_ask_for_the_compound_lists_again(ledger: Ledger) -> None:
    state = ledger.state
    setting = ListChange("settings", 2, [{"key": "exit_quota", "value": "1/2"}])
    state.apply_changes([setting, ListChange("passages", 30, [passage(1, timedelta(hours=1))])])
    assert state.compound_versions() == {"alerts": 0, "passages": 30}  # came with them
    state.apply_changes([ListChange("alerts", 12, [alert(1, timedelta(hours=1))])])
    # A new quota window, or another compound: the held versions are dropped, so the
    # next request gets both lists whole whatever their versions; the rows stay till then.
    state.apply_changes([ListChange("settings", 3, [{"key": "exit_quota", "value": "1/3"}])])
    assert state.compound_versions() == {"alerts": 0, "passages": 0}
    assert state.household_passages("H1", "out", NOW - timedelta(days=1)) != []
    assert len(state.alerts(NOW - timedelta(days=1))) == 1
    state.apply_changes([ListChange("passages", 30, []), ListChange("alerts", 12, [])])
    assert state.compound_versions() == {"alerts": 12, "passages": 30}
    state.apply_changes([ListChange("revocations", 5, [])])  # other lists change nothing
    assert state.compound_versions() == {"alerts": 12, "passages": 30}


def test_a_households_exits_are_its_members_allowed_exits(ledger: Ledger) -> None:
    out = {"direction": "out", "household_id": "H1", "wall_time": NOW}
    ledger.append(draft(0, **out))
    ledger.append(draft(1, **{**out, "pass_kind": "tenant", "wall_time": NOW + timedelta(1)}))
    ledger.append(draft(2, **{**out, "pass_kind": "visitor"}))  # its guest leaving
    ledger.append(draft(3, **{**out, "pass_kind": "worker"}))
    ledger.append(draft(4, **{**out, "outcome": "deny", "reason": "quota_used"}))
    ledger.append(draft(5, **{**out, "direction": "in"}))
    ledger.append(draft(6, **{**out, "household_id": "H2"}))
    assert ledger.household_exit_seqs_since("H1", NOW) == [
        (1, NOW), (2, NOW + timedelta(1)),
    ]  # fmt: skip
    assert ledger.household_exit_seqs_since("H1", NOW + timedelta(hours=1)) == [
        (2, NOW + timedelta(1))
    ]
