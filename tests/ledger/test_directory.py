"""The resident directory at the gate: strict items, versioned replacement and the lookups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.ledger import LIST_NAMES, DirectoryStatus, Ledger

from .helpers import PLUS8

NOW = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
FROM = "2024-03-01T00:00:00+00:00"
UNTIL = "2024-09-01T00:00:00+00:00"


def person(pass_id: str, name: str, unit: str = "", **changes: object) -> dict[str, Any]:
    """One directory item as the centre sends it (JSON primitives)."""
    item: dict[str, Any] = {
        "pass_id": pass_id,
        "kind": "resident",
        "household_id": f"H{pass_id[-3:]}",
        "scope": "compound:LGQ-012",
        "valid_from": FROM,
        "valid_until": UNTIL,
        "display_name": name,
        "unit": unit,
        "exit_quota": None,
    }
    return item | changes


PEOPLE = [
    person("PASS0001", "张*明", "3-2-501", exit_quota="1/2"),
    person("PASS0002", "张*", "3-2-502"),
    person("PASS0003", "李**华", "3-1-101", kind="tenant"),
    person("PASS0004", "王*芳", "30-1-101"),
    person("PASS0005", "张*红", "A-1-101", kind="worker"),
    person("PASS0006", "J********h", "", kind="delivery", scope="gates:G1,G2"),
    person("PASS0007", "赵*", "3", kind="visitor"),
]


@pytest.fixture
def clocked(ledger_path: Path) -> Iterator[Ledger]:
    """A ledger whose clock reads NOW, with the directory above at version 1."""
    with Ledger.open(ledger_path, gate_id="gate-a", clock=lambda: NOW) as opened:
        assert opened.state.apply_snapshots({"directory": (1, PEOPLE)}) == ["directory"]
        yield opened


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [item["pass_id"] for item in found]


def test_an_empty_directory(ledger: Ledger) -> None:
    state = ledger.state
    assert state.directory_status() == DirectoryStatus(0, None, 0)
    assert state.directory_search(unit="3") == []
    assert state.directory_get("PASS0001") is None


def test_items_come_back_as_sent_with_aware_times(clocked: Ledger) -> None:
    item = clocked.state.directory_get("PASS0001")
    assert item == {
        "pass_id": "PASS0001",
        "kind": "resident",
        "household_id": "H001",
        "scope": "compound:LGQ-012",
        "valid_from": datetime(2024, 3, 1, tzinfo=UTC),
        "valid_until": datetime(2024, 9, 1, tzinfo=UTC),
        "display_name": "张*明",
        "unit": "3-2-501",
        "exit_quota": "1/2",
    }
    delivery = clocked.state.directory_get("PASS0006")
    assert delivery is not None
    assert (delivery["unit"], delivery["exit_quota"], delivery["scope"]) == (
        "",
        None,
        "gates:G1,G2",
    )
    assert clocked.state.directory_get("pass0001") is None


def test_status_and_the_decision_lists_stay_apart(clocked: Ledger) -> None:
    state = clocked.state
    assert state.directory_status() == DirectoryStatus(1, NOW, len(PEOPLE))
    assert "directory" not in LIST_NAMES
    assert state.list_versions() == dict.fromkeys(LIST_NAMES, 0)
    assert set(state.list_ages(NOW)) == set(LIST_NAMES)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("3", ["PASS0007", "PASS0003", "PASS0001", "PASS0002"]),
        ("3-2", ["PASS0001", "PASS0002"]),
        ("3-2-501", ["PASS0001"]),
        ("3-2-50", []),
        ("30", ["PASS0004"]),
        (" 3/2/501 ", ["PASS0001"]),
        ("3 2", ["PASS0001", "PASS0002"]),
        ("a-1", ["PASS0005"]),
        ("3-2-501-1", []),
        ("3-%", []),
        ("1234567", []),
        ("-", []),
    ],
)
def test_units_match_whole_parts_from_the_left(
    clocked: Ledger, unit: str, expected: list[str]
) -> None:
    assert ids(clocked.state.directory_search(unit=unit)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张", ["PASS0001", "PASS0002", "PASS0005"]),
        ("张*", ["PASS0001", "PASS0002", "PASS0005"]),
        ("张*明", ["PASS0001"]),
        ("张三明", ["PASS0001"]),  # typed in full, masked the centre's way
        ("张三", ["PASS0002"]),  # a two-character name masks to 张*
        ("李四小华", ["PASS0003"]),
        ("李*华", []),  # one star for a four-character name is another name
        ("j", ["PASS0006"]),
        ("John Smith", ["PASS0006"]),
        ("*", []),
        ("钱", []),
    ],
)
def test_names_match_the_masked_display_name(
    clocked: Ledger, name: str, expected: list[str]
) -> None:
    assert ids(clocked.state.directory_search(name=name)) == expected


def test_unit_and_name_together_must_both_match(clocked: Ledger) -> None:
    state = clocked.state
    assert ids(state.directory_search(unit="3", name="张")) == ["PASS0001", "PASS0002"]
    assert ids(state.directory_search(unit="3-2", name="李")) == []


def test_no_query_lists_everyone_by_unit_up_to_the_limit(clocked: Ledger) -> None:
    state = clocked.state
    everyone = ids(state.directory_search())
    assert everyone == [
        "PASS0006",
        "PASS0007",
        "PASS0003",
        "PASS0001",
        "PASS0002",
        "PASS0004",
        "PASS0005",
    ]
    assert ids(state.directory_search(unit="  ", name="")) == everyone
    assert ids(state.directory_search(limit=2)) == everyone[:2]
    assert ids(state.directory_search(unit="3", limit=1)) == ["PASS0007"]


@pytest.mark.parametrize("limit", [0, 501, True, 2.5])
def test_a_bad_limit_is_refused(clocked: Ledger, limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        clocked.state.directory_search(unit="3", limit=limit)


def test_a_query_that_is_not_text_is_refused(clocked: Ledger) -> None:
    with pytest.raises(ValueError, match="unit"):
        clocked.state.directory_search(unit=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass_id"):
        clocked.state.directory_get(1)  # type: ignore[arg-type]


def test_a_newer_version_replaces_the_directory_and_an_older_one_is_skipped(
    clocked: Ledger,
) -> None:
    state = clocked.state
    moved = [person("PASS0001", "张*明", "5-1-101")]
    assert state.apply_snapshots({"directory": (1, moved)}) == []
    assert ids(state.directory_search(unit="3-2")) == ["PASS0001", "PASS0002"]
    assert state.apply_snapshots({"directory": (2, moved)}) == ["directory"]
    assert ids(state.directory_search()) == ["PASS0001"]
    assert ids(state.directory_search(unit="5")) == ["PASS0001"]
    assert state.directory_status() == DirectoryStatus(2, NOW, 1)


def test_times_in_other_offsets_are_kept_in_utc(ledger: Ledger) -> None:
    start = datetime(2024, 4, 1, 8, 0, tzinfo=PLUS8)
    item = person(
        "PASS0009",
        "周*",
        valid_from=start.isoformat(),
        valid_until=(start + timedelta(days=30)).isoformat(),
    )
    ledger.state.apply_snapshots({"directory": (1, [item])})
    found = ledger.state.directory_get("PASS0009")
    assert found is not None
    assert found["valid_from"] == start
    assert found["valid_from"].tzinfo == UTC
    assert found["valid_until"] - found["valid_from"] == timedelta(days=30)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "vehicle"}, "kind"),
        ({"kind": "alien"}, "kind"),
        ({"display_name": "张三明"}, "masked"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "张*|明"}, "'\\|'"),
        ({"scope": "compound"}, "scope"),
        ({"scope": "planet:X"}, "scope"),
        ({"unit": "3-2-501-7"}, "unit"),
        ({"unit": None}, "unit"),
        ({"pass_id": "pass0001"}, "pass id"),
        ({"household_id": "H 1"}, "household id"),
        ({"valid_from": "2024-03-01T00:00:00"}, "UTC offset"),
        ({"valid_until": "soon"}, "ISO 8601"),
        ({"valid_until": FROM}, "after valid_from"),
        ({"valid_from": "2024-03-01T00:00:00.5+00:00"}, "whole second"),
        ({"exit_quota": "0/2"}, "exit_quota"),
        ({"exit_quota": "1/2/3"}, "exit_quota"),
        ({"exit_quota": ""}, "exit_quota"),
        ({"exit_quota": 2}, "exit_quota"),
        ({"signature": "AAAA"}, "fields"),
    ],
)
def test_a_bad_item_applies_nothing(
    clocked: Ledger, changes: dict[str, object], message: str
) -> None:
    state = clocked.state
    good_keys = {"kid": "k1", "public_key": "A" * 43 + "=", "retired": False}
    bad = person("PASS0099", "孙*", "9-9-909") | changes
    with pytest.raises(ValueError, match=message):
        state.apply_snapshots({"keys": (1, [good_keys]), "directory": (2, [*PEOPLE, bad])})
    assert state.directory_status() == DirectoryStatus(1, NOW, len(PEOPLE))
    assert state.issuer_keys() == []


def test_a_missing_field_or_a_duplicate_pass_applies_nothing(clocked: Ledger) -> None:
    state = clocked.state
    missing = person("PASS0099", "孙*")
    del missing["exit_quota"]
    with pytest.raises(ValueError, match=r"directory\[1\].*fields"):
        state.apply_snapshots({"directory": (2, [PEOPLE[0], missing])})
    with pytest.raises(ValueError, match=r"directory\[1\]: duplicate pass_id 'PASS0001'"):
        state.apply_snapshots({"directory": (2, [PEOPLE[0], PEOPLE[0]])})
    assert state.directory_status().version == 1


def test_the_directory_survives_reopening(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        ledger.state.apply_snapshots({"directory": (4, PEOPLE)})
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        assert ledger.state.directory_status().version == 4
        assert ids(ledger.state.directory_search(unit="3-2-501")) == ["PASS0001"]
