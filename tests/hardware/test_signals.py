"""Tests of the signals adapter on gpiozero's MockFactory: real devices, mock pins, no patching."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from gate_agent.core.reasons import Outcome
from gate_agent.errors import DeviceError
from gate_agent.hardware.signals import (
    GpioSignals,
    SignalSettings,
    SignalState,
    mock_signals,
    press_guard_button,
)
from tests.limits import PATIENCE_S

PRESSED_AT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
# Long holds keep the lights steady while a test looks; short beeps let a pattern finish fast.
FAST = SignalSettings(hold_seconds=30, beep_unit_seconds=0.002, button_bounce_seconds=0.05)
RELAY, GREEN, RED, BUZZER, BUTTON, AMBER = 23, 17, 27, 22, 24, 5


class FakeMonotonic:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(condition: Callable[[], bool], timeout: float = PATIENCE_S) -> None:
    """Poll a background thread's effect; fail after `timeout` seconds (generous, not timed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met within the timeout")
        time.sleep(0.002)


def rising_edges(pin: MockPin, active_high: bool = True) -> int:
    """How many times the pin went to its active level in its recorded history."""
    levels = [bool(s.state) == active_high for s in pin.states]
    return sum(1 for before, after in itertools.pairwise(levels) if after and not before)


@pytest.fixture(autouse=True)
def no_global_factory() -> Iterator[None]:
    """Every device gets its factory passed in: gpiozero's global default is never set."""
    assert Device.pin_factory is None, "an earlier test left gpiozero's global pin factory set"
    yield
    assert Device.pin_factory is None, "this test set gpiozero's global pin factory"


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A fresh mock pin factory of the test's own, reset afterwards."""
    made = MockFactory()
    yield made
    made.reset()


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def signals(factory: MockFactory, monotonic: FakeMonotonic) -> Iterator[GpioSignals]:
    with GpioSignals(
        FAST, pin_factory=factory, clock=lambda: PRESSED_AT, monotonic=monotonic
    ) as made:
        yield made


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"red": 17}, "own pin"),
        ({"amber": 22}, "own pin"),
        ({"button": 2}, "I2C"),
        ({"relay": 28}, "40-pin header"),
        ({"hold_seconds": 0}, "positive"),
        ({"beep_unit_seconds": -1}, "positive"),
        ({"button_bounce_seconds": -0.1}, "negative"),
    ],
)
def test_settings_refuse_bad_pins_and_times(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SignalSettings(**changes)


# --- the relay: locked at start, released for a time, locked at close -----------------------


@pytest.mark.parametrize("active_high", [True, False])
def test_relay_is_locked_after_construction(factory: MockFactory, active_high: bool) -> None:
    settings = SignalSettings(relay_active_high=active_high)
    with GpioSignals(settings, pin_factory=factory) as signals:
        relay = factory.pin(RELAY)
        assert relay.function == "output"
        # An active-low board is locked while its input is HIGH.
        assert relay.state == (not active_high)
        assert signals.state() == SignalState(False, False, False, False, relay_released=False)


@pytest.mark.parametrize("active_high", [True, False])
def test_the_relay_pin_never_shows_released_from_power_on_through_start_and_stop(
    factory: MockFactory, active_high: bool
) -> None:
    """Not only the state after start: the pin's whole history. From power-on the pin is
    pulled to 'locked' (firmware_config/config.txt pulls an active-low board's pin up);
    starting the signals, a crash inside, and closing must never drive it the other way,
    not even for a moment."""
    relay = factory.pin(RELAY)
    relay.pull = "down" if active_high else "up"
    relay.clear_states()
    locked = not active_high
    with (
        pytest.raises(RuntimeError),
        GpioSignals(SignalSettings(relay_active_high=active_high), pin_factory=factory),
    ):
        raise RuntimeError("the agent crashed")
    assert [s.state for s in relay.states] == [locked]


@pytest.mark.parametrize("active_high", [True, False])
def test_release_opens_then_locks_again(factory: MockFactory, active_high: bool) -> None:
    locked, opened = (not active_high), active_high
    with GpioSignals(SignalSettings(relay_active_high=active_high), pin_factory=factory) as sig:
        relay = factory.pin(RELAY)
        relay.clear_states()
        sig.release(0.05)
        wait_for(lambda: not sig.state().relay_released)
        assert [s.state for s in relay.states] == [locked, opened, locked]
        # A lower bound only: the relay never closes early (a late close is the machine's load).
        assert relay.states[2].timestamp >= 0.045


def test_lock_cancels_a_running_release(signals: GpioSignals, factory: MockFactory) -> None:
    signals.release(30)
    signals.lock()
    assert not signals.state().relay_released
    assert [s.state for s in factory.pin(RELAY).states] == [False, True, False]


def test_release_again_extends_without_relocking(
    signals: GpioSignals, factory: MockFactory
) -> None:
    signals.release(30)
    signals.release(30)
    assert [s.state for s in factory.pin(RELAY).states] == [False, True]


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_release_refuses_a_non_positive_time(signals: GpioSignals, seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        signals.release(seconds)


@pytest.mark.parametrize("active_high", [True, False])
def test_close_locks_frees_the_pins_and_is_idempotent(
    factory: MockFactory, active_high: bool
) -> None:
    signals = GpioSignals(SignalSettings(relay_active_high=active_high), pin_factory=factory)
    signals.show(Outcome.DENY, alert=True)
    signals.release(30)
    signals.close()
    signals.close()
    relay = factory.pin(RELAY)
    assert relay.state == (not active_high)  # locked
    assert relay.function == "input"  # given back
    assert factory.pin(GREEN).state is False
    assert factory.pin(BUZZER).state is False
    with pytest.raises(DeviceError, match=r"^GPIO: the signals are closed$"):
        signals.release(1)
    with pytest.raises(DeviceError, match="closed"):
        signals.state()
    # The same pins can be taken again: the reservations went with close().
    GpioSignals(pin_factory=factory).close()


def test_an_exception_in_the_with_block_leaves_the_lock_shut(factory: MockFactory) -> None:
    with pytest.raises(RuntimeError, match="scan loop"):  # noqa: SIM117 - the point is nesting
        with GpioSignals(SignalSettings(relay_active_high=False), pin_factory=factory) as sig:
            sig.release(30)
            assert factory.pin(RELAY).state is False  # open (active-low)
            raise RuntimeError("scan loop crashed")
    assert factory.pin(RELAY).state is True


# --- lights and buzzer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "amber_pin", "lit", "beeps"),
    [
        (Outcome.ALLOW, None, {"green"}, 1),
        (Outcome.DENY, None, {"red"}, 3),
        (Outcome.RECHECK, None, {"red", "green"}, 2),
        (Outcome.RECHECK, AMBER, {"amber"}, 2),
        (Outcome.ALLOW, AMBER, {"green"}, 1),
    ],
)
def test_show_lights_the_outcome_and_beeps_its_pattern(
    factory: MockFactory, outcome: Outcome, amber_pin: int | None, lit: set[str], beeps: int
) -> None:
    settings = SignalSettings(hold_seconds=30, beep_unit_seconds=0.002, amber=amber_pin)
    with GpioSignals(settings, pin_factory=factory) as signals:
        signals.show(outcome)
        state = signals.state()
        shown = {name for name in ("green", "red", "amber") if getattr(state, name)}
        assert shown == lit
        assert not state.relay_released
        # The beeps may be over already on a busy machine: count them in the pin's history.
        buzzer = factory.pin(BUZZER)
        wait_for(lambda: rising_edges(buzzer) >= beeps and not buzzer.state)
        assert rising_edges(buzzer) == beeps


def test_an_alert_beeps_six_times(signals: GpioSignals, factory: MockFactory) -> None:
    signals.show(Outcome.DENY, alert=True)
    assert rising_edges(factory.pin(RED)) >= 1
    buzzer = factory.pin(BUZZER)
    wait_for(lambda: rising_edges(buzzer) >= 6 and not buzzer.state)
    assert rising_edges(buzzer) == 6


def test_a_steady_light_goes_out_after_the_hold_time(factory: MockFactory) -> None:
    settings = SignalSettings(hold_seconds=0.05, beep_unit_seconds=0.002)
    with GpioSignals(settings, pin_factory=factory) as signals:
        signals.show(Outcome.ALLOW)
        wait_for(lambda: signals.state() == SignalState(False, False, False, False, False))
        assert [s.state for s in factory.pin(GREEN).states] == [False, True, False]


def test_a_recheck_without_amber_blinks_red_and_green(factory: MockFactory) -> None:
    settings = SignalSettings(hold_seconds=30, beep_unit_seconds=0.002)
    with GpioSignals(settings, pin_factory=factory) as signals:
        signals.show(Outcome.RECHECK, alert=True)  # blinks every 0.1 s
        green = factory.pin(GREEN)
        wait_for(lambda: rising_edges(green) >= 2)
        assert rising_edges(factory.pin(RED)) >= 1


def test_a_new_show_replaces_the_running_pattern(
    signals: GpioSignals, factory: MockFactory
) -> None:
    before = set(threading.enumerate())
    signals.show(Outcome.DENY, alert=True)
    deny_threads = set(threading.enumerate()) - before
    assert deny_threads  # the red light's and the buzzer's pattern threads
    signals.show(Outcome.ALLOW)
    assert not any(thread.is_alive() for thread in deny_threads)
    state = signals.state()
    assert (state.green, state.red) == (True, False)
    assert rising_edges(factory.pin(BUZZER)) >= 1


def test_clear_turns_off_lights_and_buzzer_but_not_the_lock(
    signals: GpioSignals, factory: MockFactory
) -> None:
    signals.release(30)
    signals.show(Outcome.DENY, alert=True)
    signals.clear()
    assert signals.state() == SignalState(False, False, False, False, relay_released=True)
    assert factory.pin(BUZZER).state is False


def test_an_active_low_buzzer_is_silent_at_high(factory: MockFactory) -> None:
    settings = SignalSettings(buzzer_active_high=False, beep_unit_seconds=10)
    with GpioSignals(settings, pin_factory=factory) as signals:
        buzzer = factory.pin(BUZZER)
        assert buzzer.state is True
        signals.show(Outcome.ALLOW)
        assert buzzer.state is False
        signals.clear()
        assert buzzer.state is True


# --- the guard button -----------------------------------------------------------------------


def test_a_press_calls_the_handler_once_with_the_clock_time(
    signals: GpioSignals, factory: MockFactory, monotonic: FakeMonotonic
) -> None:
    presses: list[datetime] = []
    signals.on_manual_release = presses.append
    button = factory.pin(BUTTON)
    assert button.state is True  # pulled up: not pressed
    button.drive_low()
    assert presses == [PRESSED_AT]
    # Contact chatter within the bounce time is one press, on pressing and on letting go.
    for _ in range(3):
        monotonic.advance(0.005)
        button.drive_high()
        monotonic.advance(0.005)
        button.drive_low()
    monotonic.advance(0.3)
    button.drive_high()
    monotonic.advance(0.01)
    button.drive_low()  # a blip while letting go
    monotonic.advance(0.01)
    button.drive_high()
    assert presses == [PRESSED_AT]
    monotonic.advance(1.0)
    press_guard_button(signals)
    assert presses == [PRESSED_AT, PRESSED_AT]


def test_a_press_without_handler_or_with_a_failing_one_is_logged(
    signals: GpioSignals, monotonic: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gate_agent.hardware.signals")
    press_guard_button(signals)
    assert "no handler" in caplog.text

    def failing(at: datetime) -> None:
        raise RuntimeError("ledger is busy")

    signals.on_manual_release = failing
    monotonic.advance(1.0)
    press_guard_button(signals)
    assert "handler failed" in caplog.text


def test_no_button_fitted(factory: MockFactory) -> None:
    with GpioSignals(SignalSettings(button=None), pin_factory=factory) as signals:
        with pytest.raises(ValueError, match="no guard button"):
            press_guard_button(signals)
        assert factory.pin(BUTTON).function == "input"  # never claimed


# --- errors and the mock twin ---------------------------------------------------------------


def test_a_pin_in_use_is_a_device_error_and_a_half_built_set_lets_go(
    factory: MockFactory,
) -> None:
    with GpioSignals(pin_factory=factory):
        # Relay on a free pin, green on a taken one: the relay is made, then given back.
        clash = SignalSettings(relay=5, green=GREEN, red=6, buzzer=12, button=None)
        with pytest.raises(DeviceError, match="in use"):
            GpioSignals(clash, pin_factory=factory)
    DigitalOutputDevice(5, pin_factory=factory).close()


def test_mock_signals_own_and_close_their_factory() -> None:
    presses: list[datetime] = []
    signals = mock_signals(FAST, on_manual_release=presses.append, clock=lambda: PRESSED_AT)
    factory = signals.pin_factory
    assert isinstance(factory, MockFactory)
    signals.show(Outcome.ALLOW)
    press_guard_button(signals)
    assert presses == [PRESSED_AT]
    signals.close()
    assert factory.pins == {}


def _has_gpio() -> bool:
    libraries = ("lgpio", "RPi", "pigpio")
    return any(importlib.util.find_spec(name) for name in libraries) or (
        Path("/proc/device-tree").exists()
    )


@pytest.mark.skipif(_has_gpio(), reason="this machine has a GPIO library or a device tree")
def test_no_gpio_on_this_machine_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    # gpiozero warns for each factory it falls back from; under filterwarnings=error any
    # warning that escaped would fail this test.
    with pytest.raises(DeviceError, match="no GPIO on this machine"):
        GpioSignals()


def test_an_unknown_pin_factory_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(DeviceError, match="no-such-factory"):
        GpioSignals()
