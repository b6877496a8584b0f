"""The gate's local lists: versioned, all-or-nothing replacement and the readers."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.errors import LedgerError
from gate_agent.ledger import LIST_NAMES, Ledger

from .helpers import PLUS8

NOW = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))

Snapshots = Mapping[str, tuple[int, Sequence[Mapping[str, object]]]]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _full(version: int = 1) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    return {
        "keys": (
            version,
            [
                {"kid": "k2", "public_key": _b64(KEY_B), "retired": False},
                {"kid": "k1", "public_key": _b64(KEY_A), "retired": True},
            ],
        ),
        "revocations": (
            version,
            [{"pass_id": "p9", "revoked_at": "2024-03-31T20:00:00+08:00", "reason": "lost"}],
        ),
        "isolations": (
            version,
            [
                {
                    "household_id": "h1",
                    "start": "2024-03-30T00:00:00Z",
                    "end": "2024-04-13T00:00:00Z",
                }
            ],
        ),
        "settings": (
            version,
            [{"key": "fever_celsius", "value": 37.3}, {"key": "mode", "value": "screening"}],
        ),
    }


@pytest.fixture
def clocked(ledger_path: Path) -> Iterator[Ledger]:
    """A ledger whose clock reads NOW."""
    with Ledger.open(ledger_path, gate_id="gate-a", clock=lambda: NOW) as opened:
        yield opened


def test_nothing_loaded_yet(ledger: Ledger) -> None:
    state = ledger.state
    assert state.list_versions() == dict.fromkeys(LIST_NAMES, 0)
    assert state.list_applied_at() == dict.fromkeys(LIST_NAMES)
    assert state.issuer_keys() == []
    assert state.revoked_pass_ids() == frozenset()
    assert state.isolations() == []
    assert state.settings() == {}


def test_apply_all_and_read_back(clocked: Ledger) -> None:
    state = clocked.state
    assert state.apply_snapshots(_full()) == ["keys", "revocations", "isolations", "settings"]
    assert state.list_versions() == dict.fromkeys(LIST_NAMES, 1)
    assert state.issuer_keys() == [("k1", KEY_A, True), ("k2", KEY_B, False)]
    assert state.revoked_pass_ids() == frozenset({"p9"})
    assert state.revocations() == [("p9", datetime(2024, 3, 31, 12, 0, tzinfo=UTC), "lost")]
    assert state.isolations() == [
        ("h1", datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 4, 13, tzinfo=UTC))
    ]
    assert state.settings() == {"fever_celsius": 37.3, "mode": "screening"}
    assert state.list_applied_at() == dict.fromkeys(LIST_NAMES, NOW)
    ages = state.list_ages(NOW + timedelta(hours=3))
    assert ages == dict.fromkeys(LIST_NAMES, timedelta(hours=3))


def test_lists_survive_reopening(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        ledger.state.apply_snapshots(_full(3))
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        assert ledger.state.list_versions()["keys"] == 3
        assert ledger.state.revoked_pass_ids() == frozenset({"p9"})


def test_lower_or_equal_versions_are_skipped(clocked: Ledger) -> None:
    state = clocked.state
    state.apply_snapshots(_full(5))
    emptied: Snapshots = {"revocations": (5, []), "settings": (4, [])}
    assert state.apply_snapshots(emptied) == []
    assert state.revoked_pass_ids() == frozenset({"p9"})
    assert state.settings() != {}
    assert state.apply_snapshots({"revocations": (6, []), "settings": (5, [])}) == ["revocations"]
    assert state.revoked_pass_ids() == frozenset()
    assert state.list_versions() == {"keys": 5, "revocations": 6, "isolations": 5, "settings": 5}


def test_a_list_replaces_the_whole_previous_list(clocked: Ledger) -> None:
    state = clocked.state
    state.apply_snapshots(_full(1))
    key_only = {"kid": "k3", "public_key": _b64(KEY_A), "retired": False}
    assert state.apply_snapshots({"keys": (2, [key_only])}) == ["keys"]
    assert state.issuer_keys() == [("k3", KEY_A, False)]


@pytest.mark.parametrize(
    ("name", "item", "message"),
    [
        ("keys", {"kid": "k", "public_key": "not base64!", "retired": False}, "base64"),
        ("keys", {"kid": "k", "public_key": _b64(b"short"), "retired": False}, "32 bytes"),
        ("keys", {"kid": "k", "public_key": _b64(KEY_A), "retired": "no"}, "retired"),
        ("keys", {"kid": "", "public_key": _b64(KEY_A), "retired": False}, "kid"),
        ("keys", {"kid": "k", "public_key": _b64(KEY_A)}, "fields"),
        ("revocations", {"pass_id": "p", "revoked_at": "yesterday", "reason": "x"}, "ISO"),
        ("revocations", {"pass_id": "p", "revoked_at": "2024-01-01T00:00", "reason": "x"}, "UTC"),
        (
            "isolations",
            {"household_id": "h", "start": "2024-02-01T00:00Z", "end": "2024-01-01T00:00Z"},
            "before",
        ),
        ("settings", {"key": "k", "value": {1, 2}}, "JSON"),
        ("settings", {"key": "k", "value": float("nan")}, "JSON"),
        ("settings", {"key": "k", "value": 1, "extra": 2}, "fields"),
        ("settings", "not a mapping", "mapping"),
    ],
)
def test_a_bad_item_applies_nothing(clocked: Ledger, name: str, item: Any, message: str) -> None:
    state = clocked.state
    state.apply_snapshots(_full(1))
    before = (state.list_versions(), state.issuer_keys(), state.settings(), state.isolations())
    snapshots = _full(2)
    snapshots[name][1].append(item)
    with pytest.raises(ValueError, match=message):
        state.apply_snapshots(snapshots)
    assert (state.list_versions(), state.issuer_keys(), state.settings(), state.isolations()) == (
        before
    )


@pytest.mark.parametrize(
    ("snapshots", "message"),
    [
        ({"quarantine": (1, [])}, "unknown list"),
        ({"keys": (0, [])}, "version"),
        ({"keys": (True, [])}, "version"),
        ({"keys": [1]}, "pair"),
        ({"keys": (1, "abc")}, "sequence"),
        (
            {
                "revocations": (
                    1,
                    [{"pass_id": "p", "revoked_at": "2024-01-01T00:00Z", "reason": ""}],
                )
            },
            "reason",
        ),
        (
            {
                "revocations": (
                    1,
                    [
                        {"pass_id": "p", "revoked_at": "2024-01-01T00:00Z", "reason": "a"},
                        {"pass_id": "p", "revoked_at": "2024-01-02T00:00Z", "reason": "b"},
                    ],
                )
            },
            "duplicate",
        ),
    ],
)
def test_malformed_snapshots_apply_nothing(clocked: Ledger, snapshots: Any, message: str) -> None:
    all_good = _full(1)
    with pytest.raises(ValueError, match=message):
        clocked.state.apply_snapshots({**all_good, **snapshots})
    assert clocked.state.list_versions() == dict.fromkeys(LIST_NAMES, 0)


def test_a_database_failure_midway_rolls_back_every_list(clocked: Ledger) -> None:
    """Atomicity below validation: a write that fails in SQLite undoes the earlier lists."""
    conn = sqlite3.connect(clocked.path)
    conn.execute(
        "CREATE TRIGGER test_settings_fail BEFORE INSERT ON settings"
        " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="disk says no"):
        clocked.state.apply_snapshots(_full(1))
    assert clocked.state.list_versions() == dict.fromkeys(LIST_NAMES, 0)
    assert clocked.state.issuer_keys() == []


def test_list_versions_never_go_down_even_through_raw_sql(clocked: Ledger) -> None:
    clocked.state.apply_snapshots(_full(4))
    conn = sqlite3.connect(clocked.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="older or equal"):
            conn.execute("UPDATE list_versions SET version = 3 WHERE name = 'keys'")
    finally:
        conn.close()


def test_offsets_in_times_are_normalised_to_utc(clocked: Ledger) -> None:
    start = datetime(2024, 4, 1, 8, 0, tzinfo=PLUS8)
    item = {
        "household_id": "h2",
        "start": start.isoformat(),
        "end": (start + timedelta(days=14)).isoformat(),
    }
    clocked.state.apply_snapshots({"isolations": (1, [item])})
    ((household, begins, ends),) = clocked.state.isolations()
    assert (household, begins, ends - begins) == ("h2", start, timedelta(days=14))
    assert begins.tzinfo == UTC
