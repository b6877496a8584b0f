"""The thermometer sampler: a short ring of samples, and a fault the guard can see."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from gate_agent.clock import FakeClock
from gate_agent.hardware.fake_smbus import FakeSMBus
from gate_agent.hardware.thermometer import MLX90614, SimulatedThermometer
from gate_agent.sampler import REWARM_AFTER_FAULT_S, SensorState, ThermometerSampler


def make() -> tuple[FakeClock, SimulatedThermometer, ThermometerSampler, list[SensorState]]:
    clock = FakeClock()
    sim = SimulatedThermometer(ambient_celsius=20.0, monotonic_ns=clock.monotonic_ns)
    changes: list[SensorState] = []
    sampler = ThermometerSampler(sim, clock=clock, keep_seconds=2.0, on_change=changes.append)
    return clock, sim, sampler, changes


def test_samples_are_kept_for_a_short_while() -> None:
    clock, sim, sampler, _ = make()
    sim.set(36.6)
    for _ in range(40):
        sampler.poll_once()
        clock.advance(0.1)
    assert len(sampler.recent(1.0)) == 10
    assert len(sampler.recent(10.0)) == 21  # 2 s kept, both ends included
    assert sampler.started_ns is not None
    assert sampler.state().ok


def test_a_failing_sensor_becomes_a_state_and_recovers() -> None:
    _, sim, sampler, changes = make()
    sampler.poll_once()
    sim.unplug()
    assert sampler.poll_once() is None
    assert sampler.poll_once() is None
    state = sampler.state()
    assert (state.ok, state.state, state.errors_total) == (False, "fault", 2)
    sim.plug()
    assert sampler.poll_once() is not None
    assert [c.state for c in changes] == ["sampling", "fault", "sampling"]


@pytest.mark.parametrize(("fault_s", "warms_again"), [(0.5, False), (REWARM_AFTER_FAULT_S, True)])
def test_a_sensor_back_after_a_long_fault_warms_up_again(fault_s: float, warms_again: bool) -> None:
    """Unplugged and plugged back, the sensor lost power and must settle again; a short
    glitch on the bus is not that."""
    clock, sim, sampler, _ = make()
    sim.set(36.6)
    first = sampler.poll_once()
    assert first is not None and sampler.started_ns == first.monotonic_ns
    clock.advance(120)  # long warmed up
    sampler.poll_once()
    sim.unplug()
    for _ in range(int(fault_s * 10)):
        clock.advance(0.1)
        assert sampler.poll_once() is None
    sim.plug()
    clock.advance(0.1)
    back = sampler.poll_once()
    assert back is not None
    assert sampler.started_ns == (back.monotonic_ns if warms_again else first.monotonic_ns)
    assert len(sampler.recent(10.0)) == (1 if warms_again else 2)


def test_the_background_thread_samples_and_stops() -> None:
    _, _, sampler, changes = make()
    sampler.start()
    try:
        for _ in range(100):
            if changes:
                break
            sampler.wait(0.01)
        assert changes and changes[0].state == "sampling"
    finally:
        sampler.close()
    assert sampler.wait(0) is False


#: Two polls of the driver, each register tried three times (ambient fails first).
FAULTY_READS = 2 * 3


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        (lambda bus: bus.corrupt_next(FAULTY_READS), "PEC"),
        (lambda bus: bus.error_flag_next(FAULTY_READS), "error flag"),
        (lambda bus: bus.unplug(errno.ETIMEDOUT), "ETIMEDOUT"),  # a stuck bus: reads time out
        (lambda bus: bus.fail_next(FAULTY_READS, errno.EIO), "EIO"),
    ],
    ids=["bad-pec", "error-flag", "bus-stuck", "bus-error"],
)
def test_the_real_driver_faults_become_the_fault_state_and_recover(
    fault: Callable[[FakeSMBus], None], detail: str
) -> None:
    """The MLX90614 driver over a fake bus: each fault the sensor or its bus can show,
    lasting past the driver's retries, is the sampler's ``fault`` state with the cause in
    its detail (what the console and doctor show; the station then decides sensor_fault);
    when reads succeed again it samples again."""
    clock = FakeClock()
    bus = FakeSMBus(object_celsius=34.0, ambient_celsius=22.0)
    sensor = MLX90614(bus, sleep=lambda _s: None, monotonic_ns=clock.monotonic_ns)
    changes: list[SensorState] = []
    sampler = ThermometerSampler(sensor, clock=clock, on_change=changes.append)
    assert sampler.poll_once() is not None
    fault(bus)
    assert sampler.poll_once() is None and sampler.poll_once() is None
    state = sampler.state()
    assert (state.ok, state.state, state.errors_total) == (False, "fault", 2)
    assert detail in state.detail
    bus.plug()  # the counted faults are used up: the next reads succeed
    assert sampler.poll_once() is not None
    assert sampler.state().ok
    assert [c.state for c in changes] == ["sampling", "fault", "sampling"]
