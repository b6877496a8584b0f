"""The signals port (lights, buzzer, lock relay, guard button) and its gpiozero adapter.

Wiring assumed, BCM numbering (defaults of ``SignalSettings``): green LED on GPIO17, red LED
on GPIO27, an optional amber LED (without one, a recheck blinks red and green together), an
active buzzer module on GPIO22 (it sounds by itself when powered: no PWM needed), the lock
relay on GPIO23, and a normally open guard button from GPIO24 to ground (internal pull-up).

Fail-safe: the relay is switched off (locked) when the devices are made, before the first
show, and again by ``close()``. The station calls ``close()`` in a ``finally``; nothing is
registered globally. After ``close()`` and after the process dies the pin is an input, so
an active-low relay board must not see the pin float low: wire such a board to a GPIO whose
power-on pull is up (GPIO0–8) or add a 10 kΩ pull-up to 3.3 V.

Testing and the demo use ``mock_signals()``: the same class on gpiozero's ``MockFactory``,
read back with ``state()`` and driven with ``press_guard_button()``.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from gpiozero import LED, Buzzer, Device, DigitalInputDevice, DigitalOutputDevice
from gpiozero.exc import GPIOZeroError
from gpiozero.pins.mock import MockFactory, MockPin

from gate_agent.core.reasons import Outcome
from gate_agent.errors import DeviceError

__all__ = [
    "GpioSignals",
    "ManualReleaseHandler",
    "SignalSettings",
    "SignalState",
    "Signals",
    "mock_signals",
    "press_guard_button",
]

log = logging.getLogger(__name__)

ManualReleaseHandler = Callable[[datetime], None]
"""Called with the wall time of a guard-button press; the station logs it as an override."""

# GPIO2 and GPIO3 are I2C bus 1, where the thermometer lives; 0–27 are on the 40-pin header.
_I2C_PINS = frozenset({2, 3})
_HEADER_GPIOS = range(28)


@dataclass(frozen=True, slots=True)
class _Beeps:
    on_units: float
    off_units: float
    count: int


# In units of `beep_unit_seconds` (0.1 s by default): one short beep = 1 unit.
_BEEPS = {
    Outcome.ALLOW: _Beeps(1, 1, 1),
    Outcome.DENY: _Beeps(5, 3, 3),
    Outcome.RECHECK: _Beeps(1, 1.5, 2),
}
_ALERT_BEEPS = _Beeps(1.5, 1, 6)  # faster and longer than a plain deny: the guard must look
_BLINK_SECONDS = 0.25  # half period of the red+green blink that stands for amber
_ALERT_BLINK_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class SignalSettings:
    """Pins (BCM numbers; None = not fitted), polarities and timings of the gate's signals."""

    green: int = 17
    red: int = 27
    amber: int | None = None
    buzzer: int = 22
    relay: int = 23
    button: int | None = 24
    leds_active_high: bool = True
    buzzer_active_high: bool = True  # many 3-pin active buzzer modules are low-level triggered
    relay_active_high: bool = True  # many relay boards (optocoupler input) are active-LOW
    hold_seconds: float = 3.0  # how long a decision stays lit
    beep_unit_seconds: float = 0.1  # one short beep; the other beeps are multiples of it
    button_bounce_seconds: float = 0.05

    def __post_init__(self) -> None:
        """Refuse pins off the header, I2C pins, pins used twice and non-positive times."""
        fitted = (self.green, self.red, self.amber, self.buzzer, self.relay, self.button)
        pins = [pin for pin in fitted if pin is not None]
        for pin in pins:
            if pin not in _HEADER_GPIOS:
                raise ValueError(f"GPIO{pin} is not a GPIO of the 40-pin header (0–27)")
            if pin in _I2C_PINS:
                raise ValueError(f"GPIO{pin} is the thermometer's I2C bus; choose another pin")
        if len(set(pins)) != len(pins):
            raise ValueError(f"each signal needs its own pin, got {sorted(pins)}")
        if self.hold_seconds <= 0 or self.beep_unit_seconds <= 0:
            raise ValueError("hold_seconds and beep_unit_seconds must be positive")
        if self.button_bounce_seconds < 0:
            raise ValueError("button_bounce_seconds must not be negative")


@dataclass(frozen=True, slots=True)
class SignalState:
    """What the signals show right now, read back from the devices."""

    green: bool
    red: bool
    amber: bool
    buzzer: bool
    relay_released: bool


class Signals(Protocol):
    """The port the station shows decisions and opens the lock through."""

    on_manual_release: ManualReleaseHandler | None

    def show(self, outcome: Outcome, *, alert: bool = False) -> None:
        """Start the light and beep pattern of `outcome`, replacing any running one."""
        ...

    def clear(self) -> None:
        """Turn the lights and the buzzer off; the lock is left as it is."""
        ...

    def release(self, seconds: float) -> None:
        """Open the lock for `seconds`, then lock again, without blocking."""
        ...

    def lock(self) -> None:
        """Lock now, cancelling a running release."""
        ...

    def state(self) -> SignalState:
        """Read back what is lit, sounding and released."""
        ...

    def close(self) -> None:
        """Lock, switch everything off and free the pins; a second call does nothing."""
        ...


def _library_errors() -> tuple[type[BaseException], ...]:
    # lgpio reports some failures ("GPIO busy") as its own `lgpio.error`, not wrapped by
    # gpiozero; it is only looked up when the lgpio factory has imported it.
    lgpio = sys.modules.get("lgpio")
    extra = getattr(lgpio, "error", None)
    errors: tuple[type[BaseException], ...] = (GPIOZeroError, OSError)
    return (*errors, extra) if isinstance(extra, type) else errors


@contextmanager
def _device_errors(action: str) -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise  # ours already (an OSError too): not wrapped twice
    except _library_errors() as exc:
        raise DeviceError(f"GPIO: could not {action}: {exc}") from exc


def _default_factory() -> Any:
    """gpiozero's own choice (lgpio on a Pi); DeviceError on a machine without GPIO."""
    # gpiozero warns once per factory it skips; under warnings-as-errors the first warning
    # would abort the search, so they are collected and logged (construction is single-threaded).
    missing: tuple[type[BaseException], ...] = (*_library_errors(), ImportError)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except missing as exc:
            tried = "; ".join(str(w.message) for w in caught)
            raise DeviceError(f"no GPIO on this machine: {exc} ({tried})") from exc
    for warning in caught:
        log.warning("gpiozero: %s", warning.message)
    return Device.pin_factory


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GpioSignals:
    """LEDs, an active buzzer, the lock relay and the guard button on gpiozero devices."""

    def __init__(
        self,
        settings: SignalSettings | None = None,
        *,
        pin_factory: Any = None,
        close_factory: bool = False,
        on_manual_release: ManualReleaseHandler | None = None,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Make the devices, relay first and locked; `pin_factory` None means gpiozero's default.

        `close_factory` closes the factory with the signals (for one made for them alone).
        """
        self.settings = settings or SignalSettings()
        self.on_manual_release = on_manual_release
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._closed = False
        self._last_edge: float | None = None
        self._close_factory = close_factory
        self._factory = _default_factory() if pin_factory is None else pin_factory
        self._made: list[Any] = []
        s = self.settings
        try:
            with _device_errors("set up the signal pins"):
                self._relay = self._make(
                    DigitalOutputDevice, s.relay, active_high=s.relay_active_high
                )
                self._green = self._make(LED, s.green, active_high=s.leds_active_high)
                self._red = self._make(LED, s.red, active_high=s.leds_active_high)
                self._amber = (
                    None
                    if s.amber is None
                    else self._make(LED, s.amber, active_high=s.leds_active_high)
                )
                self._buzzer = self._make(Buzzer, s.buzzer, active_high=s.buzzer_active_high)
                self._button = None if s.button is None else self._make_button(s.button)
        except DeviceError:
            with suppress(DeviceError):  # logged by close(); the cause that matters is this one
                self.close()
            raise
        log.info("signals ready on %s (relay active-%s)", self._factory, self._polarity())

    def _make(self, kind: type[Any], pin: int, *, active_high: bool) -> Any:
        device = kind(pin, active_high=active_high, initial_value=False, pin_factory=self._factory)
        self._made.append(device)
        return device

    def _make_button(self, pin: int) -> Any:
        # DigitalInputDevice, not Button: Button runs a hold-detection thread we have no use for.
        bounce = self.settings.button_bounce_seconds or None
        button = DigitalInputDevice(
            pin, pull_up=True, bounce_time=bounce, pin_factory=self._factory
        )
        self._made.append(button)
        button.when_activated = self._button_pressed
        button.when_deactivated = self._button_released
        return button

    def _polarity(self) -> str:
        return "high" if self.settings.relay_active_high else "low"

    @property
    def pin_factory(self) -> Any:
        """The gpiozero pin factory the devices use (a MockFactory under mock_signals)."""
        return self._factory

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError("GPIO: the signals are closed")

    def show(self, outcome: Outcome, *, alert: bool = False) -> None:
        """Light and beep for `outcome` without blocking; an alert blinks and beeps faster."""
        s = self.settings
        half: float | None = _ALERT_BLINK_SECONDS if alert else None
        if outcome is Outcome.RECHECK and self._amber is None:
            lights, half = [self._red, self._green], half or _BLINK_SECONDS
        else:
            led = {Outcome.ALLOW: self._green, Outcome.DENY: self._red}.get(outcome, self._amber)
            lights = [led]
        beeps = _ALERT_BEEPS if alert else _BEEPS[outcome]
        with self._lock, _device_errors(f"show {outcome}"):
            self._check_open()
            for led in self._leds():
                if led not in lights:
                    led.off()
            for led in lights:
                # on() first so the light is on when show() returns; the blink thread times it.
                led.on()
                if half is None:
                    led.blink(on_time=s.hold_seconds, off_time=0, n=1)
                else:
                    led.blink(half, half, n=max(1, math.ceil(s.hold_seconds / (2 * half))))
            unit = s.beep_unit_seconds
            self._buzzer.on()
            self._buzzer.beep(beeps.on_units * unit, beeps.off_units * unit, n=beeps.count)
        log.debug("showing %s%s", outcome, " (alert)" if alert else "")

    def _leds(self) -> list[Any]:
        return [led for led in (self._green, self._red, self._amber) if led is not None]

    def clear(self) -> None:
        """Turn the lights and the buzzer off; the lock is left as it is."""
        with self._lock, _device_errors("clear the lights"):
            self._check_open()
            for device in (*self._leds(), self._buzzer):
                device.off()

    def release(self, seconds: float) -> None:
        """Energise the relay (open the lock) for `seconds`, then lock again; non-blocking."""
        if not seconds > 0:
            raise ValueError(f"release seconds must be positive, got {seconds}")
        with self._lock, _device_errors("release the lock"):
            self._check_open()
            self._relay.on()
            self._relay.blink(on_time=seconds, off_time=0, n=1)
        log.info("lock released for %g s", seconds)

    def lock(self) -> None:
        """Lock now, cancelling a running release."""
        with self._lock, _device_errors("lock"):
            self._check_open()
            self._relay.off()

    def state(self) -> SignalState:
        """Read back what is lit, sounding and released from the devices' values."""
        with self._lock, _device_errors("read the signals"):
            self._check_open()
            return SignalState(
                green=bool(self._green.is_active),
                red=bool(self._red.is_active),
                amber=self._amber is not None and bool(self._amber.is_active),
                buzzer=bool(self._buzzer.is_active),
                relay_released=bool(self._relay.is_active),
            )

    def _button_released(self) -> None:
        self._last_edge = self._monotonic()

    def _button_pressed(self) -> None:
        # Runs on gpiozero's event thread. A press counts only when the line was quiet for the
        # bounce time: the pin factory may not debounce (MockFactory does not), and contact
        # chatter on letting go would otherwise read as a second press.
        now = self._monotonic()
        last, self._last_edge = self._last_edge, now
        if self._closed or (last is not None and now - last < self.settings.button_bounce_seconds):
            return
        handler, at = self.on_manual_release, self._clock()
        if handler is None:
            log.warning("guard button pressed at %s with no handler attached", at.isoformat())
            return
        try:
            handler(at)
        except Exception:
            # An exception would end up in gpiozero's callback thread and vanish there.
            log.exception("the manual-release handler failed")

    def close(self) -> None:
        """Lock, switch everything off and free the pins; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        failures: list[BaseException] = []
        # Off before close: closing a gpiozero output stops its pattern but leaves the level.
        # The relay first: if anything below fails, the lock must already be shut.
        outputs = [d for d in self._made if isinstance(d, DigitalOutputDevice)]
        steps = [(f"switch off {d!r}", d.off) for d in outputs]
        steps += [(f"close {d!r}", d.close) for d in reversed(self._made)]
        if self._close_factory:
            steps.append(("close the pin factory", self._factory.close))
        for action, step in steps:
            try:
                step()
            except _library_errors() as exc:
                log.exception("GPIO: could not %s", action)
                failures.append(exc)
        self._made.clear()
        if failures:
            raise DeviceError(f"GPIO: {len(failures)} step(s) of closing failed") from failures[0]


def mock_signals(settings: SignalSettings | None = None, **kwargs: Any) -> GpioSignals:
    """GpioSignals on a fresh MockFactory of their own, for tests and the demo."""
    return GpioSignals(settings, pin_factory=MockFactory(), close_factory=True, **kwargs)


def press_guard_button(signals: GpioSignals) -> None:
    """Press and let go of the guard button of mock signals (the demo's and tests' verb)."""
    pin_number = signals.settings.button
    if pin_number is None:
        raise ValueError("these signals have no guard button")
    pin = signals.pin_factory.pin(pin_number)
    if not isinstance(pin, MockPin):
        raise TypeError("press_guard_button drives mock pins only")
    pin.drive_low()
    pin.drive_high()
