"""Properties: any appends verify and read back; any single changed column is caught."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate_agent.ledger import EntryDraft, Ledger, verify_ledger_file
from gate_agent.ledger.records import ENTRY_COLUMNS

from .helpers import tamper

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9, minutes=-30))]
)
_TEXT = st.text(max_size=12)
_WORD = st.text(min_size=1, max_size=12)
_CELSIUS = st.floats(allow_nan=False, allow_infinity=False, width=64)

drafts = st.builds(
    EntryDraft,
    direction=st.sampled_from(["in", "out"]),
    outcome=st.sampled_from(["allow", "deny", "recheck"]),
    reason=_WORD,
    wall_time=st.datetimes(timezones=_ZONES).filter(lambda moment: 2 <= moment.year <= 9998),
    monotonic_ns=st.integers(min_value=0, max_value=2**63 - 1),
    boot_id=_WORD,
    clock_synced=st.booleans(),
    pass_id=st.none() | _TEXT,
    pass_kind=st.none() | _TEXT,
    household_id=st.none() | _TEXT,
    manual_identity=st.none() | _TEXT,
    temperature_celsius=st.none() | _CELSIUS,
    temperature_raw=st.lists(_CELSIUS, max_size=5).map(tuple),
    ambient_celsius=st.none() | _CELSIUS,
    temperature_model=st.none() | _TEXT,
    temperature_source=st.sampled_from([None, "sensor", "manual"]),
    guard=st.none() | _TEXT,
    alert=st.booleans(),
    next_step=st.none() | _TEXT,
    personal=st.none() | st.dictionaries(_WORD, _TEXT, max_size=3),
    note=st.none() | _TEXT,
)

# Everything an attacker might change, except the purgeable personal data and its salt.
_TAMPERABLE = [column for column in ENTRY_COLUMNS if column not in {"personal", "personal_salt"}]


@contextmanager
def _fresh_ledger() -> Iterator[Ledger]:
    # Hypothesis reruns the body; pytest's function-scoped tmp_path would be shared.
    with (
        tempfile.TemporaryDirectory() as directory,
        Ledger.open(Path(directory) / "ledger.sqlite3", gate_id="gate-p") as ledger,
    ):
        yield ledger


def _changed(column: str, value: object) -> object:
    """A different value for ``column`` that the table's CHECK constraints still accept."""
    if column == "seq":
        return int(str(value)) + 1_000_000
    if column == "direction":
        return "out" if value == "in" else "in"
    if column == "outcome":
        return {"allow": "deny", "deny": "recheck", "recheck": "allow"}[str(value)]
    if column == "temperature_source":
        sources: list[object] = [None, "manual", "sensor"]
        return sources[(sources.index(value) + 1) % len(sources)]
    if column in {"clock_synced", "alert"}:
        return 1 - int(str(value))
    if column == "monotonic_ns":
        number = int(str(value))
        return number - 1 if number > 0 else 1
    if column in {"temperature_celsius", "ambient_celsius"}:
        return 36.6 if value is None or value == 0 else -float(str(value))
    if column == "temperature_raw":
        samples = json.loads(str(value))
        return json.dumps([-samples[0] if samples[0] else 1.0, *samples[1:]] if samples else [1.0])
    return "x" if value is None else f"{value}x"


def _expected(draft: EntryDraft, name: str) -> object:
    """What the ledger should hand back for a draft's field (temperatures to 0.01 °C)."""
    value = getattr(draft, name)
    if name in {"temperature_celsius", "ambient_celsius"} and value is not None:
        return round(value, 2)
    if name == "temperature_raw":
        return tuple(round(sample, 2) for sample in value)
    if name == "personal":
        return value or None
    return value


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(drafts, min_size=1, max_size=6))
def test_any_appends_verify_and_read_back(batch: list[EntryDraft]) -> None:
    with _fresh_ledger() as ledger:
        stored = [ledger.append(one) for one in batch]
        assert [entry.seq for entry in stored] == list(range(1, len(batch) + 1))
        assert ledger.entries() == stored
        for given_draft, entry in zip(batch, stored, strict=True):
            for field in fields(EntryDraft):
                assert getattr(entry, field.name) == _expected(given_draft, field.name), field.name
        report = ledger.verify()
        assert report.ok, report.problem
        assert report.entries_checked == len(batch)
        latest = max(entry.wall_time for entry in stored)
        ledger.purge_personal(latest + timedelta(microseconds=1))
        assert ledger.verify().ok


@pytest.mark.parametrize("column", _TAMPERABLE)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(drafts, min_size=1, max_size=4), data=st.data())
def test_any_single_changed_column_is_detected(
    column: str, batch: list[EntryDraft], data: st.DataObject
) -> None:
    with _fresh_ledger() as ledger:
        for one in batch:
            ledger.append(one)
        path = ledger.path
        seq = data.draw(st.integers(min_value=1, max_value=len(batch)), label="seq")
        conn = sqlite3.connect(path)
        try:
            (value,) = conn.execute(
                f"SELECT {column} FROM entries WHERE seq = ?",  # noqa: S608
                (seq,),
            ).fetchone()
        finally:
            conn.close()
        new_value = _changed(column, value)
        assert new_value != value
        tamper(path, f"UPDATE entries SET {column} = ? WHERE seq = ?", params=(new_value, seq))  # noqa: S608
        report = verify_ledger_file(path)
        assert not report.ok, f"changing {column} of entry {seq} went unnoticed"
        assert report.first_break_seq == seq, report.problem
