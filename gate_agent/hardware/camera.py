"""The camera port: frames, source health, and the "latest frame" grabber every source runs on.

The station reads frames through one port, `FrameSource`. The newest frame wins:
a background thread grabs frames into a single slot, a frame overwritten before
anyone read it is dropped and counted, never queued, so the reader always sees
the present and never a backlog. The thread also owns recovery: a failing
device marks the source unhealthy, backs off and reopens; one bad frame never
ends it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from numpy.typing import NDArray

from gate_agent.errors import DeviceError
from gate_agent.hardware.images import Gray, to_gray

__all__ = [
    "Backoff",
    "Frame",
    "FrameGrabber",
    "FrameSource",
    "GrabbedSource",
    "SourceDown",
    "SourceHealth",
]

log = logging.getLogger(__name__)

Grab = Callable[[], NDArray[Any] | None]
"""Blocks until the device gives a frame (any layout `to_gray` takes); None: nothing this time."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One grayscale camera frame, numbered per source, stamped when it was grabbed."""

    gray: Gray
    seq: int
    captured_ns: int


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How a frame source is doing, for the guard console and the logs."""

    ok: bool
    state: str  # starting, streaming, reconnecting, unplugged, ended, failed, closed
    detail: str
    frames_total: int
    frames_dropped: int
    reconnects: int


class FrameSource(Protocol):
    """The port the station reads frames through; the newest frame wins."""

    def read(self, timeout_s: float) -> Frame | None:
        """Return the newest frame not yet returned, or None if none came within `timeout_s`."""
        ...

    def health(self) -> SourceHealth:
        """Return the source's state and counters."""
        ...

    def close(self) -> None:
        """Stop grabbing and release the device; idempotent."""
        ...

    def __enter__(self) -> Self:
        """Return the source itself."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the source."""
        ...


class SourceDown(DeviceError):
    """A source cannot deliver frames: `state` is what health shows, `retry` whether to reopen."""

    def __init__(self, message: str, *, state: str = "reconnecting", retry: bool = True) -> None:
        """Describe the failure; retry=False ends the grabber (end of file, unreadable file)."""
        super().__init__(message)
        self.state = state
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reopen attempts: `first_s`, multiplied by `factor` each time, capped."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Return the wait before reopen attempt `attempt` (1 for the first)."""
        return min(self.max_s, self.first_s * self.factor ** max(0, attempt - 1))


class FrameGrabber:
    """A thread reading a blocking `grab()` into a one-frame slot, reopening the device on errors.

    `open_device`, `grab` and `release` run on the grabber's thread only, so the device
    needs no locking. `interrupt` runs on the closing thread, to unblock a `grab()` that
    would otherwise wait for data that never comes (a pipe, a stalled stream).
    """

    def __init__(
        self,
        name: str,
        grab: Grab,
        *,
        open_device: Callable[[], None] | None = None,
        release: Callable[[], None] | None = None,
        interrupt: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        max_bad_frames: int = 10,
        join_timeout_s: float = 10.0,
    ) -> None:
        """Prepare the grabber; nothing runs until `start()`. `sleep` replaces the backoff wait."""
        self.name = name
        self._grab = grab
        self._open_device = open_device
        self._release = release
        self._interrupt = interrupt
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._monotonic_ns = monotonic_ns
        self._max_bad_frames = max_bad_frames
        self._join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self._slot: Frame | None = None
        self._last_read = 0
        self._seq = 0
        self._dropped = 0
        self._reconnects = 0
        self._state = "starting"
        self._detail = ""

    def start(self) -> None:
        """Start the grabbing thread (once)."""
        with self._cond:
            if self._thread is not None or self._stop.is_set():
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}")
            self._thread.daemon = True  # a stuck driver call must not keep the process alive
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """Tell whether close() was called."""
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        """Tell whether the grabbing thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def pause(self, seconds: float) -> bool:
        """Wait `seconds` (or call the injected sleep); return False once the grabber is closing."""
        if seconds > 0 and not self._stop.is_set():
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                self._stop.wait(seconds)
        return not self._stop.is_set()

    def publish(self, image: NDArray[Any], captured_ns: int | None = None) -> Frame | None:
        """Put a frame in the slot; an unread one it replaces counts as dropped. None if closed."""
        stamp = self._monotonic_ns() if captured_ns is None else captured_ns
        gray = to_gray(image)
        with self._cond:
            if self._stop.is_set():
                return None
            if self._slot is not None and self._slot.seq > self._last_read:
                self._dropped += 1
            self._seq += 1
            frame = Frame(gray=gray, seq=self._seq, captured_ns=stamp)
            self._slot = frame
            self._state, self._detail = "streaming", ""
            self._cond.notify_all()
        return frame

    def read(self, timeout_s: float) -> Frame | None:
        """Return the newest unread frame, waiting up to `timeout_s`; None at once when stopped."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                frame = self._slot
                if frame is not None and frame.seq > self._last_read:
                    self._last_read = frame.seq
                    return frame
                remaining = deadline - time.monotonic()
                if not self._running or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def health(self) -> SourceHealth:
        """Return a snapshot of the state and counters."""
        with self._cond:
            return SourceHealth(
                ok=self._state == "streaming",
                state=self._state,
                detail=self._detail,
                frames_total=self._seq,
                frames_dropped=self._dropped,
                reconnects=self._reconnects,
            )

    def close(self) -> None:
        """Stop the thread, unblock it, join it; release the device if it never started."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            thread = self._thread
        if self._interrupt is not None:
            try:
                self._interrupt()
            except Exception:  # closing must go on whatever the device says
                log.exception("camera %s: interrupting the grab failed", self.name)
        if thread is None:
            with self._cond:
                self._running = False
                self._set_state("closed", "")
            return
        if thread is not threading.current_thread():
            thread.join(self._join_timeout_s)
            if thread.is_alive():
                log.warning("camera %s: grab thread did not stop in time", self.name)

    def _set_state(self, state: str, detail: str) -> None:
        """Record a state change (caller holds the lock), logging transitions once."""
        if state != self._state:
            log.info("camera %s: %s%s", self.name, state, f" ({detail})" if detail else "")
        self._state, self._detail = state, detail

    def _run(self) -> None:
        """Open, grab and publish until closed; reopen with backoff when the device fails."""
        opened = ever_opened = False
        failures = bad = 0
        try:
            while not self._stop.is_set():
                try:
                    if not opened:
                        if self._open_device is not None:
                            self._open_device()
                        opened = True
                        if ever_opened:
                            with self._cond:
                                self._reconnects += 1
                        ever_opened = True
                    image = self._grab()
                    if image is None:
                        continue
                    self.publish(image, self._monotonic_ns())
                    failures = bad = 0
                except SourceDown as exc:
                    opened = self._drop_device(opened)
                    if not exc.retry:
                        with self._cond:
                            self._set_state(exc.state, str(exc))
                        return
                    failures += 1
                    self._fail(exc.state, str(exc), failures)
                except DeviceError as exc:
                    opened = self._drop_device(opened)
                    failures += 1
                    self._fail("reconnecting", str(exc), failures)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end the thread
                    bad += 1
                    log.warning("camera %s: bad frame %d: %s", self.name, bad, exc)
                    if bad >= self._max_bad_frames:
                        opened = self._drop_device(opened)
                        failures += 1
                        bad = 0
                        self._fail("reconnecting", f"{self._max_bad_frames} bad frames", failures)
        finally:
            self._drop_device(opened)
            with self._cond:
                self._running = False
                if self._state not in ("ended", "failed"):
                    self._set_state("closed", "")
                self._cond.notify_all()

    def _fail(self, state: str, detail: str, failures: int) -> None:
        """Mark the source down and wait the backoff before the next attempt."""
        with self._cond:
            self._set_state(state, detail)
        delay = self._backoff.delay(failures)
        log.debug("camera %s: retry %d in %.2f s", self.name, failures, delay)
        self.pause(delay)

    def _drop_device(self, opened: bool) -> bool:
        """Release the device if it was opened; always returns False (now closed)."""
        if opened and self._release is not None:
            try:
                self._release()
            except Exception:  # a failing release must not stop recovery
                log.exception("camera %s: releasing the device failed", self.name)
        return False


class GrabbedSource:
    """Base of the sources that run on a `FrameGrabber`: the port methods delegate to it."""

    _grabber: FrameGrabber

    def read(self, timeout_s: float) -> Frame | None:
        """Return the newest frame not yet returned, or None if none came within `timeout_s`."""
        return self._grabber.read(timeout_s)

    def health(self) -> SourceHealth:
        """Return the source's state and counters."""
        return self._grabber.health()

    def close(self) -> None:
        """Stop grabbing and release the device; idempotent."""
        self._grabber.close()

    def __enter__(self) -> Self:
        """Return the source itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the source."""
        self.close()
