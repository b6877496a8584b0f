"""Lists arriving as deltas, the centre keys a gate pins, and who decides the gate mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.ledger import Ledger
from gate_agent.ledger.state import ListChange
from tests.ledger.test_directory import person

NOW = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)


def revoked(pass_id: str) -> dict[str, Any]:
    return {"pass_id": pass_id, "revoked_at": "2024-03-31T20:00:00Z", "reason": "lost"}


def setting(key: str, value: object) -> dict[str, Any]:
    return {"key": key, "value": value}


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    with Ledger.open(ledger_path, gate_id="gate-a", clock=lambda: NOW) as opened:
        yield opened


def test_a_delta_adds_replaces_and_removes_by_pass_id(ledger: Ledger) -> None:
    state = ledger.state
    state.apply_changes(
        [
            ListChange("revocations", 3, [revoked("P0001"), revoked("P0002")]),
            ListChange("directory", 5, [person("PASS0001", "张*明"), person("PASS0002", "李*")]),
        ]
    )
    applied = state.apply_changes(
        [
            ListChange("revocations", 4, [revoked("P0003")], base_version=3),
            ListChange(
                "directory",
                7,
                [person("PASS0002", "李*华", "1-1-101"), person("PASS0003", "王*")],
                base_version=5,
                removed=["PASS0001", "PASS9999"],  # one the gate never had: harmless
            ),
        ]
    )
    assert applied == ["revocations", "directory"]
    assert state.revoked_pass_ids() == {"P0001", "P0002", "P0003"}
    assert [(i["pass_id"], i["display_name"]) for i in state.directory_search()] == [
        ("PASS0003", "王*"),
        ("PASS0002", "李*华"),
    ]
    assert state.list_versions()["revocations"] == 4
    assert state.directory_status().version == 7


def test_a_delta_from_another_version_applies_nothing_at_all(ledger: Ledger) -> None:
    state = ledger.state
    state.apply_changes([ListChange("revocations", 3, [revoked("P0001")])])
    before = state.list_versions()
    with pytest.raises(ValueError, match="delta from v2, gate holds v3"):
        state.apply_changes(
            [
                ListChange("isolations", 2, []),
                ListChange("revocations", 5, [revoked("P0009")], base_version=2),
            ]
        )
    assert state.list_versions() == before
    assert state.revoked_pass_ids() == {"P0001"}


def test_a_replayed_delta_is_skipped(ledger: Ledger) -> None:
    state = ledger.state
    state.apply_changes([ListChange("revocations", 3, [revoked("P0001")])])
    delta = ListChange("revocations", 4, [revoked("P0002")], base_version=3)
    assert state.apply_changes([delta]) == ["revocations"]
    assert state.apply_changes([delta]) == []
    assert state.revoked_pass_ids() == {"P0001", "P0002"}


def test_only_the_large_lists_arrive_as_deltas(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="isolations cannot arrive as a delta"):
        ledger.state.apply_changes([ListChange("isolations", 2, [], base_version=1)])


def test_the_latest_mode_instruction_wins_whoever_gave_it(ledger: Ledger) -> None:
    state = ledger.state
    assert state.local_mode() is None
    state.apply_changes([ListChange("settings", 2, [setting("mode", "screening")])])
    assert state.local_mode() == ("screening", NOW, "centre")
    # An admin at the gate opens it: that holds while the centre's mode stays as it was.
    state.set_local_mode("open", by="admin", at=NOW + timedelta(minutes=1))
    state.apply_changes(
        [ListChange("settings", 3, [setting("mode", "screening"), setting("fever_celsius", 37.5)])]
    )
    assert state.local_mode() is not None
    assert state.local_mode()[0] == "open"  # type: ignore[index]
    # The centre orders a lockdown: a new instruction, it wins.
    state.apply_changes([ListChange("settings", 4, [setting("mode", "lockdown")])])
    assert state.local_mode() == ("lockdown", NOW, "centre")
    assert [mode for mode, _, _ in state.local_mode_history()] == ["lockdown", "open", "screening"]


def test_centre_keys_are_pinned_once_and_never_swapped(ledger: Ledger) -> None:
    state = ledger.state
    assert state.centre_keys() == {}
    assert state.pin_centre_key("ABCDEFGH", bytes(32), by="enrolment", at=NOW)
    assert not state.pin_centre_key("ABCDEFGH", bytes(32), by="enrolment", at=NOW)
    with pytest.raises(ValueError, match="other bytes"):
        state.pin_centre_key("ABCDEFGH", bytes(range(32)), by="enrolment", at=NOW)
    with pytest.raises(ValueError, match="32 raw bytes"):
        state.pin_centre_key("ABCDEFGH", b"short", by="enrolment", at=NOW)
    assert state.centre_keys() == {"ABCDEFGH": bytes(32)}


def test_a_list_confirmed_current_is_not_stale(ledger: Ledger) -> None:
    state = ledger.state
    state.apply_changes([ListChange("revocations", 2, [])])
    later = NOW + timedelta(hours=30)
    assert state.list_ages(later)["revocations"] == timedelta(hours=30)
    ledger.sync.record_lists_check(NOW + timedelta(hours=29))
    assert state.list_ages(later)["revocations"] == timedelta(hours=1)
    assert state.list_ages(later)["keys"] is None  # never loaded stays unknown
