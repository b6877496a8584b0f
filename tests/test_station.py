"""The scan loop with real decoding, verification, ledger and gpiozero mock pins.

The camera and thermometer are the simulated ones; the rest is what runs on a Pi.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.assemble import Gate, open_gate
from gate_agent.clock import SystemClock
from gate_agent.config import GateConfig
from gate_agent.core.passes import PassFields, PassKind, Scope, key_id, sign
from gate_agent.core.reasons import Direction
from gate_agent.events import GateEvent
from gate_agent.hardware.camera import Frame
from gate_agent.hardware.decoder import DecodedCode, QrDecoder
from gate_agent.hardware.images import Gray
from gate_agent.hardware.signals import press_guard_button
from gate_agent.ledger import verify_ledger_file
from gate_agent.station import ScanRequest
from tests.limits import PATIENCE_S

KEY = Ed25519PrivateKey.generate()


def make_pass(pass_id: str, household: str = "H0301") -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    fields = PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id=household,
        scope=Scope.parse("compound:C1"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
        display_name="张*明",
        unit="3-2-501",
    )
    return sign(fields, KEY)


def config(
    tmp_path: Path, *, thermometer: str = "simulated", debounce_s: float = 0.5, **gate: object
) -> GateConfig:
    return GateConfig.model_validate(
        {
            "gate": {"id": "G1", "compound_id": "C1", "community_id": "M1",
                     "data_dir": str(tmp_path / "gate"), **gate},
            "cameras": [{"source": "sim:", "direction": "in", "fps": 20},
                        {"source": "sim:", "direction": "out", "fps": 20}],
            "scanner": {"debounce_seconds": debounce_s},
            "thermometer": {"kind": thermometer, "warmup_seconds": 0, "wait_seconds": 0.3},
            "signals": {"kind": "mock", "open_seconds": 0.2, "hold_seconds": 0.2},
        }
    )  # fmt: skip


def trust_key(gate: Gate) -> None:
    raw = KEY.public_key().public_bytes_raw()
    gate.ledger.state.apply_snapshots(
        {"keys": (1, [{"kid": key_id(KEY.public_key()), "public_key":
                       base64.b64encode(raw).decode(), "retired": False}])}
    )  # fmt: skip


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    with open_gate(config(tmp_path), start=False) as g:
        trust_key(g)
        yield g


def person_at_sensor(gate: Gate, body: float | None, samples: int = 6) -> None:
    thermometer = gate.simulated_thermometer()
    if body is None:
        thermometer.clear()
    else:
        thermometer.set(body)
    assert gate.sampler is not None
    for _ in range(samples):
        gate.sampler.poll_once()


def scan(gate: Gate, text: str, direction: Direction = Direction.IN) -> ScanRequest:
    return ScanRequest(text, direction, direction.value, SystemClock().monotonic_ns())


def wait_until(condition: object, timeout: float = PATIENCE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_an_allowed_scan_is_committed_then_the_gate_opens(gate: Gate) -> None:
    person_at_sensor(gate, 36.6)
    result = gate.station.process(scan(gate, make_pass("PASS0001")))
    assert result is not None
    assert (result.evaluation.decision.outcome.value, result.entry is not None) == ("allow", True)
    assert result.entry is not None
    stored = gate.ledger.get(result.entry.seq)
    assert stored is not None
    assert (stored.pass_id, stored.outcome, stored.temperature_source) == (
        "PASS0001", "allow", "sensor",
    )  # fmt: skip
    assert stored.temperature_celsius == pytest.approx(36.6, abs=0.2)
    assert stored.temperature_model == "skin-ambient-v1/k=0.100"
    assert len(stored.temperature_raw) >= 3 and stored.ambient_celsius == 20.0
    assert gate.signals.state().relay_released and gate.signals.state().green
    assert wait_until(lambda: not gate.signals.state().relay_released)
    event = gate.events.recent("decision")[-1]
    assert (event.data["seq"], event.data["name"], event.data["reason"]) == (
        result.entry.seq, "张*明", "ok",
    )  # fmt: skip


def test_a_fever_is_rechecked_then_referred(gate: Gate) -> None:
    text = make_pass("PASS0002")
    person_at_sensor(gate, 38.3)
    first = gate.station.process(scan(gate, text))
    assert first is not None
    assert first.evaluation.decision.reason.value == "recheck_temperature"
    assert not gate.signals.state().relay_released
    second = gate.station.process(scan(gate, text))
    assert second is not None
    decision = second.evaluation.decision
    assert (decision.reason.value, decision.next_step.value, decision.alert) == (
        "fever", "refer_fever_clinic", True,
    )  # fmt: skip
    assert gate.signals.state().red and not gate.signals.state().relay_released


def test_nobody_at_the_sensor_asks_them_to_face_it(gate: Gate) -> None:
    person_at_sensor(gate, None)
    result = gate.station.process(scan(gate, make_pass("PASS0003")))
    assert result is not None
    assert result.evaluation.decision.reason.value == "no_person_at_sensor"
    assert result.evaluation.decision.next_step.value == "face_the_sensor"


def test_a_failed_sensor_becomes_a_recheck_by_hand_and_an_event(gate: Gate) -> None:
    assert gate.sampler is not None
    gate.simulated_thermometer().unplug()
    gate.sampler.poll_once()
    result = gate.station.process(scan(gate, make_pass("PASS0004")))
    assert result is not None
    assert result.evaluation.decision.reason.value == "sensor_fault"
    assert result.evaluation.decision.next_step.value == "measure_with_handheld"
    last = gate.events.recent("device")[-1].data
    assert (last["device"], last["ok"], last["state"]) == ("thermometer", False, "fault")


def test_exits_need_no_temperature(gate: Gate) -> None:
    person_at_sensor(gate, None)
    result = gate.station.process(scan(gate, make_pass("PASS0005"), Direction.OUT))
    assert result is not None
    assert result.evaluation.decision.outcome.value == "allow"
    assert result.evaluation.temperature is None


def test_without_a_thermometer_the_guard_measures_by_hand(tmp_path: Path) -> None:
    with open_gate(config(tmp_path, thermometer="none"), start=False) as gate:
        trust_key(gate)
        result = gate.station.process(scan(gate, make_pass("PASS0006")))
    assert result is not None
    assert result.evaluation.decision.reason.value == "temperature_missing"


def test_when_the_ledger_fails_the_gate_stays_locked_and_says_so(gate: Gate) -> None:
    person_at_sensor(gate, 36.6)
    gate.ledger.close()  # as good as a failed card: every read and write now fails
    assert gate.station.process(scan(gate, make_pass("PASS0007"))) is None
    state = gate.signals.state()
    assert state.red and not state.relay_released
    assert gate.station.stats.ledger_errors == 1
    event = gate.events.recent("device")[-1].data
    assert (event["device"], event["ok"], event["state"]) == ("ledger", False, "failed")


def test_the_release_button_is_recorded_as_an_override(gate: Gate) -> None:
    gate.station.start()
    try:
        press_guard_button(gate.signals)  # type: ignore[arg-type]
        assert wait_until(lambda: gate.ledger.count() == 1)
        assert wait_until(lambda: gate.signals.state().relay_released)
    finally:
        gate.station.stop()
    entry = gate.ledger.get(1)
    assert entry is not None
    assert (entry.reason, entry.guard, entry.outcome) == (
        "manual_release", "release-button", "allow",
    )  # fmt: skip


def test_the_live_loop_reads_passes_from_the_cameras(tmp_path: Path) -> None:
    with open_gate(config(tmp_path)) as gate:
        trust_key(gate)
        subscription = gate.events.subscribe()
        gate.simulated_thermometer().set(36.5)
        gate.simulated_camera("in").show_pass(make_pass("LIVE0001"))
        deadline = time.monotonic() + PATIENCE_S
        decisions: list[GateEvent] = []
        while time.monotonic() < deadline and not decisions:
            event = subscription.get(0.5)
            if event is not None and event.kind == "decision":
                decisions.append(event)
        # Held up for a while longer, the pass is still one scan (debounce).
        time.sleep(0.6)
        gate.simulated_camera("in").show_nothing()
        gate.simulated_camera("out").show_pass(make_pass("LIVE0002", household="H0404"))
        assert wait_until(lambda: gate.ledger.count() == 2)
        subscription.close()
    assert decisions and decisions[0].data["reason"] == "ok"
    assert decisions[0].data["latency_ms"] >= 0
    assert verify_ledger_file(tmp_path / "gate" / "ledger.sqlite3").ok


class FlakyDecoder:
    """A decoder port that fails on its first frame, as a corrupt frame would."""

    def __init__(self, error: Exception) -> None:
        self.calls = 0
        self.error = error
        self.real = QrDecoder()

    def decode(self, gray: Gray) -> list[DecodedCode]:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return self.real.decode(gray)


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("decoder", ValueError("expected a 2-D grayscale array")),
        ("decoder", RuntimeError("zxing-cpp: internal error")),  # a native library's own
        ("decoder", cv2.error("OpenCV(5.0.0) error: (-215:Assertion failed)")),
        ("source", OSError(5, "Input/output error")),  # a driver's read of a dying camera
    ],
)
def test_a_bad_frame_or_a_lost_camera_never_stops_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, error: Exception
) -> None:
    with open_gate(config(tmp_path), start=False) as gate:
        trust_key(gate)
        if where == "decoder":
            gate.station.decoder = FlakyDecoder(error)
        else:
            source = next(lane.source for lane in gate.station.lanes if lane.name == "out")
            real_read, failures = source.read, [error]

            def read(timeout_s: float) -> Frame | None:
                if failures:
                    raise failures.pop()
                return real_read(timeout_s)

            monkeypatch.setattr(source, "read", read)
        gate.station.start()
        try:
            camera = gate.simulated_camera("out")
            camera.show(np.zeros((120, 160), dtype=np.uint8))
            assert wait_until(lambda: gate.station.stats.bad_frames == 1)
            camera.unplug()
            assert wait_until(lambda: any(
                e.data["device"] == "camera:out" and not e.data["ok"]
                for e in gate.events.recent("device")
            ))  # fmt: skip
            camera.plug()
            camera.show_pass(make_pass("BACK0001"))
            assert wait_until(lambda: gate.ledger.count() == 1)
            assert gate.station.stalled(max_age_s=30) == []  # every lane still turns
        finally:
            gate.station.stop()


def _frames_read(gate: Gate, lane: str) -> int:
    source = next(each.source for each in gate.station.lanes if each.name == lane)
    return source.health().frames_total


@pytest.mark.parametrize(("debounce_s", "scans"), [(0.5, 2), (30.0, 1)])
def test_the_configured_debounce_window_decides_whether_a_pass_shown_again_is_a_new_scan(
    tmp_path: Path, debounce_s: float, scans: int
) -> None:
    """Shown, out of view for 1.5 s of frames, shown again: a new scan only when the
    window set in gate.toml is shorter than the absence."""
    with open_gate(config(tmp_path, debounce_s=debounce_s), start=False) as gate:
        trust_key(gate)
        gate.station.start()
        try:
            camera, text = gate.simulated_camera("in"), make_pass("AGAIN0001")
            camera.show_pass(text)
            assert wait_until(lambda: gate.station.stats.scans == 1)
            camera.show_nothing()
            absent = _frames_read(gate, "in")
            assert wait_until(lambda: _frames_read(gate, "in") >= absent + 30)  # 1.5 s at 20 fps
            camera.show_pass(text)
            shown = _frames_read(gate, "in")
            assert wait_until(lambda: _frames_read(gate, "in") >= shown + 10)
            assert wait_until(lambda: gate.station.stats.scans >= scans)
            assert gate.station.stats.scans == scans
        finally:
            gate.station.stop()
