"""The wall clock jumping back and forward by hours while the gate runs.

Within a boot the policy's windows are measured on monotonic time (``prior_entry``): a
wall clock set back never lets a passback through, one set forward never ends a re-check
early. Entries keep their monotonic order and the chain stays valid whatever the wall
clock says; the centre corrects unsynced times (tests/test_clock_entries.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent.assemble import Gate, open_gate
from gate_agent.clock import ClockWatch, FakeClock
from gate_agent.console.status import gate_status
from gate_agent.core.reasons import Direction
from gate_agent.ledger import verify_ledger_file
from gate_agent.metrics import GateMetrics
from gate_agent.station import ScanRequest
from tests.test_station import config, make_pass, person_at_sensor, trust_key

START = datetime.now(UTC).replace(microsecond=0)


def scan(gate: Gate, clock: FakeClock, text: str, direction: Direction = Direction.IN) -> str:
    """Process one scan; the decision's reason."""
    result = gate.station.process(
        ScanRequest(text, direction, direction.value, clock.monotonic_ns())
    )
    assert result is not None and result.entry is not None
    return result.evaluation.decision.reason.value


@pytest.mark.parametrize("jump_hours", [-5, +5], ids=["back", "forward"])
def test_a_wall_clock_jump_lets_no_passback_through(tmp_path: Path, jump_hours: int) -> None:
    clock = FakeClock(START)
    with open_gate(config(tmp_path), clock=clock, start=False) as gate:
        trust_key(gate)
        text = make_pass("PASS0100")
        person_at_sensor(gate, 36.6)
        assert scan(gate, clock, text) == "ok"
        clock.advance(60)
        clock.set_wall(clock.now() + timedelta(hours=jump_hours))
        person_at_sensor(gate, 36.6)
        assert scan(gate, clock, text) == "already_inside"
        # Out and in again is a normal passage, whatever the wall clock says.
        assert scan(gate, clock, text, Direction.OUT) == "ok"
        person_at_sensor(gate, 36.6)
        assert scan(gate, clock, text) == "ok"
        # The passback window (12 h) still ends, on monotonic time.
        clock.advance(13 * 3600)
        assert scan(gate, clock, text, Direction.OUT) == "ok"
        clock.advance(13 * 3600)
        assert scan(gate, clock, text, Direction.OUT) == "ok"
        entries = [gate.ledger.get(seq) for seq in range(1, gate.ledger.last_seq() + 1)]
        path = gate.ledger.path
    monotonic = [entry.monotonic_ns for entry in entries if entry is not None]
    assert len(monotonic) == 6 and monotonic == sorted(monotonic)
    assert verify_ledger_file(path).ok


def test_a_wall_clock_set_forward_does_not_end_a_recheck_early(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with open_gate(config(tmp_path), clock=clock, start=False) as gate:
        trust_key(gate)
        text = make_pass("PASS0101")
        person_at_sensor(gate, 38.3)
        assert scan(gate, clock, text) == "recheck_temperature"
        clock.advance(120)
        clock.set_wall(clock.now() + timedelta(hours=3))  # past the 15-minute window
        person_at_sensor(gate, 38.3)
        assert scan(gate, clock, text) == "fever"  # the second reading, two minutes on


def test_a_jump_shows_in_healthz_for_an_hour(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with open_gate(config(tmp_path), clock=clock, start=False) as gate:
        metrics = GateMetrics(gate, clock)

        def clock_check() -> tuple[str, str, str]:
            check = metrics.health()[1]["clock"]
            return check.status, check.code, check.detail

        clock.advance(600)
        clock.set_wall(clock.now() + timedelta(seconds=30))  # NTP's small corrections: no jump
        assert clock_check() == ("ok", "synced", "")
        clock.set_wall(clock.now() - timedelta(hours=4))
        status, code, detail = clock_check()
        assert (status, code) == ("degraded", "clock_jumped") and "back by 240 min" in detail
        clock.advance(3000)
        assert clock_check()[1] == "clock_jumped"  # still shown, the new time kept as normal
        clock.set_wall(clock.now() + timedelta(hours=6))
        assert "forward by 360 min" in clock_check()[2]
        clock.advance(3601)
        assert clock_check() == ("ok", "synced", "")


def test_the_guards_status_shows_the_jump_healthz_saw(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with open_gate(config(tmp_path), clock=clock, start=False) as gate:
        watch = ClockWatch(clock)
        metrics = GateMetrics(gate, clock, clock_watch=watch)
        assert gate_status(gate, clock, watch)["clock"]["jumped_seconds"] is None
        clock.set_wall(clock.now() - timedelta(hours=4))
        assert metrics.health()[1]["clock"].code == "clock_jumped"  # healthz looked first
        clock.advance(60)
        status = gate_status(gate, clock, watch)["clock"]
        assert status["jumped_seconds"] == -4 * 3600 and status["synced"] is True
        clock.advance(3600)
        assert gate_status(gate, clock, watch)["clock"]["jumped_seconds"] is None
