"""A simulated camera with verbs, for tests and the demo: show a pass, an image, or nothing.

On demand (``fps=None``, the default) every `read()` returns a new frame of the
current scene at once, with no thread: tests stay deterministic. With an `fps`
a grabber thread produces frames at that rate, like a real camera, and a frame
the station did not read in time is dropped and counted. Either way, a frame
read after `show...()` returns is of the new scene.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from gate_agent.hardware.camera import (
    Backoff,
    Frame,
    FrameGrabber,
    SourceDown,
    SourceHealth,
)
from gate_agent.hardware.images import Gray, to_gray
from gate_agent.hardware.render import PHONE, RenderStyle, render_blank, render_pass

__all__ = ["SimulatedCamera"]


class SimulatedCamera:
    """A frame source whose scene the caller sets: `show`, `show_pass`, `show_nothing`, `unplug`."""

    def __init__(
        self,
        *,
        frame_size: tuple[int, int] = (1280, 720),
        fps: float | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """Start with an empty scene; `fps` None serves frames on demand, without a thread."""
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.frame_size = frame_size
        self.fps = fps
        self._monotonic_ns = monotonic_ns
        self._lock = threading.Lock()  # orders scene changes before the frames that show them
        self._blank_style = RenderStyle(frame_size=frame_size, noise_sigma=2.0)
        self._scene: Gray = render_blank(self._blank_style)
        self._plugged = True
        self._closed = False
        self._seq = 0
        self._grabber: FrameGrabber | None = None
        if fps is not None:
            period = 1.0 / fps
            self._grabber = FrameGrabber(
                "sim",
                self._tick,
                open_device=self._check_plugged,
                backoff=Backoff(first_s=period, factor=1.0, max_s=period),
                sleep=sleep,
                monotonic_ns=monotonic_ns,
            )
            self._grabber.start()

    def show(self, image: NDArray[Any]) -> None:
        """Show an image (any layout `to_gray` takes) from now on."""
        self._set_scene(np.array(to_gray(image), copy=True))  # the caller keeps its array

    def show_pass(self, text: str, style: RenderStyle = PHONE) -> None:
        """Show `text` as a QR pass rendered in `style` (at this camera's frame size)."""
        if style.frame_size != self.frame_size:
            style = replace(style, frame_size=self.frame_size)
        self._set_scene(render_pass(text, style))

    def show_nothing(self) -> None:
        """Show the empty scene: nobody at the gate."""
        self._set_scene(render_blank(self._blank_style))

    def unplug(self) -> None:
        """Make the camera fail: no frames, health "unplugged", until `plug()`."""
        with self._lock:
            self._plugged = False

    def plug(self) -> None:
        """Bring the camera back after `unplug()`."""
        with self._lock:
            self._plugged = True

    def read(self, timeout_s: float) -> Frame | None:
        """Return a frame of the current scene (the newest unread one at a set fps)."""
        if self._grabber is not None:
            return self._grabber.read(timeout_s)
        with self._lock:
            if self._closed or not self._plugged:
                return None  # at once: an on-demand camera has nothing to wait for
            self._seq += 1
            return Frame(gray=self._scene, seq=self._seq, captured_ns=self._monotonic_ns())

    def health(self) -> SourceHealth:
        """Return the state and counters."""
        if self._grabber is not None:
            return self._grabber.health()
        with self._lock:
            state = "closed" if self._closed else "streaming" if self._plugged else "unplugged"
            detail = "camera unplugged" if state == "unplugged" else ""
            return SourceHealth(
                ok=state == "streaming",
                state=state,
                detail=detail,
                frames_total=self._seq,
                frames_dropped=0,
                reconnects=0,
            )

    def close(self) -> None:
        """Stop producing frames; idempotent."""
        with self._lock:
            self._closed = True
        if self._grabber is not None:
            self._grabber.close()

    def __enter__(self) -> Self:
        """Return the camera itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the camera."""
        self.close()

    def _set_scene(self, scene: Gray) -> None:
        """Replace the scene; at a set fps, publish it at once so the next read shows it."""
        scene.flags.writeable = False  # frames share the scene: nobody may draw on it
        with self._lock:
            self._scene = scene
            if self._grabber is not None and self._plugged:
                self._grabber.publish(scene)

    def _check_plugged(self) -> None:
        """Fail to open while unplugged (the grabber's reopen path)."""
        with self._lock:
            if not self._plugged:
                raise SourceDown("camera unplugged", state="unplugged")

    def _tick(self) -> None:
        """Wait one frame period, then publish the scene; under the lock, so order holds."""
        grabber = self._grabber
        if grabber is None or not grabber.pause(1.0 / (self.fps or 1.0)):
            return
        with self._lock:
            if not self._plugged:
                raise SourceDown("camera unplugged", state="unplugged")
            grabber.publish(self._scene)
