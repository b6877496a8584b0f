"""Sampling the thermometer in the background, so a reading is ready when a pass is.

The sampler keeps the last couple of seconds of samples. When the station needs
a temperature, the person has usually been standing at the sensor while showing
the pass, so the samples are already there; otherwise it waits briefly for more.
A failing sensor becomes a visible state, and sampling resumes when it answers.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gate_agent.clock import Clock
from gate_agent.core.sensor import SensorSample
from gate_agent.errors import DeviceError
from gate_agent.hardware.thermometer import Thermometer

log = logging.getLogger(__name__)
_NS = 1_000_000_000
#: A fault this long is taken for a sensor that lost power (unplugged, a loose wire):
#: once it answers again it warms up again. A shorter one is noise on the bus.
REWARM_AFTER_FAULT_S = 2.0


@dataclass(frozen=True)
class SensorState:
    """What the guard and `doctor` see of the thermometer."""

    ok: bool
    state: str  # "starting", "sampling", "fault"
    detail: str
    errors_total: int
    last_sample: SensorSample | None


class ThermometerSampler:
    """Reads the thermometer at a steady rate into a short ring of samples."""

    def __init__(
        self,
        thermometer: Thermometer,
        *,
        clock: Clock,
        sample_hz: float = 10.0,
        keep_seconds: float = 3.0,
        on_change: Callable[[SensorState], None] | None = None,
    ) -> None:
        if not 0 < sample_hz <= 50:
            raise ValueError("sample_hz must be in (0, 50]")
        self._thermometer = thermometer
        self._clock = clock
        self._interval = 1.0 / sample_hz
        self._keep_ns = int(keep_seconds * _NS)
        self.on_change = on_change
        self._lock = threading.Lock()
        self._samples: collections.deque[SensorSample] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SensorState(False, "starting", "no reading yet", 0, None)
        #: When the sensor first answered, or answered again after a long fault:
        #: warm-up counts from here.
        self.started_ns: int | None = None
        self._fault_since_ns: int | None = None

    def start(self) -> None:
        """Sample in a background thread until ``close``."""
        self._thread = threading.Thread(target=self._run, name="thermometer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sampling and close the thermometer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thermometer.close()

    def poll_once(self) -> SensorSample | None:
        """Take one sample now; a failure changes the state instead of raising."""
        try:
            sample = self._thermometer.read()
        except DeviceError as exc:
            if self._fault_since_ns is None:
                self._fault_since_ns = self._clock.monotonic_ns()
            self._set_state(False, "fault", str(exc), failed=True)
            return None
        fault_since, self._fault_since_ns = self._fault_since_ns, None
        with self._lock:
            if fault_since is not None and (
                sample.monotonic_ns - fault_since >= REWARM_AFTER_FAULT_S * _NS
            ):
                log.info("thermometer: back after %.0f s; warming up again",
                         (sample.monotonic_ns - fault_since) / _NS)  # fmt: skip
                self.started_ns = None
                self._samples.clear()  # read before the gap: not this person's forehead
            if self.started_ns is None:
                self.started_ns = sample.monotonic_ns
            self._samples.append(sample)
            while self._samples and sample.monotonic_ns - self._samples[0].monotonic_ns > (
                self._keep_ns
            ):
                self._samples.popleft()
        self._set_state(True, "sampling", "", sample=sample)
        return sample

    def recent(self, seconds: float) -> list[SensorSample]:
        """Samples from the last ``seconds`` (by the monotonic clock), oldest first."""
        since = self._clock.monotonic_ns() - int(seconds * _NS)
        with self._lock:
            return [s for s in self._samples if s.monotonic_ns >= since]

    def state(self) -> SensorState:
        """The current state."""
        with self._lock:
            return self._state

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` for new samples; False once the sampler is closing."""
        return not self._stop.wait(seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self._interval)

    def _set_state(
        self,
        ok: bool,
        state: str,
        detail: str,
        *,
        failed: bool = False,
        sample: SensorSample | None = None,
    ) -> None:
        with self._lock:
            old = self._state
            new = SensorState(
                ok,
                state,
                detail,
                old.errors_total + failed,
                sample if sample is not None else old.last_sample,
            )
            self._state = new
        if (old.ok, old.state) != (new.ok, new.state):
            (log.warning if not ok else log.info)("thermometer: %s %s", state, detail)
            if self.on_change is not None:
                self.on_change(new)
