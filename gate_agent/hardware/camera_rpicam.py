"""The Raspberry Pi camera module through libcamera: `rpicam-vid` writing raw YUV420 to a pipe.

The combination this is written for: Raspberry Pi OS bookworm or trixie, the
camera stack from Debian packages (``apt install rpicam-apps``; bullseye names
the binary ``libcamera-vid``), and in the gate's venv pip's
``opencv-python-headless`` with numpy 2. There is no picamera2: Debian's
``python3-picamera2`` is built against Debian's numpy 1.x, and pip's OpenCV
needs numpy 2, so the two cannot share one venv. A pipe from the stock binary
needs no Python bindings at all.

``rpicam-vid -t 0 -n --codec yuv420 --width W --height H --framerate F --flush -o -``
runs until killed (``-t 0``), without a preview window (``-n``), and writes each
frame unencoded to stdout, flushed at once. A frame is the camera buffer as is
(rpicam-vid's null encoder passes the whole buffer through): planar I420, the
Y plane ``stride × H`` bytes, then U and V, each ``stride/2 × H/2``. The Pi 4's
ISP pads each row to a multiple of 64 bytes, so the stride is taken as ``W``
rounded up to 64; choose a width that is a multiple of 64 (640, 1280, 1920)
and the frames are plain unpadded I420 whatever the ISP. `stride` overrides
the guess. To check a Pi: ``rpicam-vid --frames 1 -n --codec yuv420 --width W
--height H -o f.yuv`` must give a file of ``i420_size(stride, H)`` bytes. The
Y plane alone is the grayscale frame the decoders read: no colour conversion,
cheap on a Pi.

Tested here with a stand-in script that writes synthetic I420 frames to
stdout; the real binary's flags and layout are from its documentation and
source, not from a run on a Pi in this project's CI.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from gate_agent.errors import DeviceError
from gate_agent.hardware.camera import Backoff, FrameGrabber, GrabbedSource, SourceDown

__all__ = ["RpiCamera", "i420_size", "rpicam_command", "yuv420_stride"]

log = logging.getLogger(__name__)

_STDERR_TAIL = 400  # bytes of the camera program's last words kept for the health detail


def yuv420_stride(width: int) -> int:
    """Return the Y row length rpicam-vid writes for `width`: rounded up to 64 bytes."""
    return (width + 63) // 64 * 64


def i420_size(stride: int, height: int) -> int:
    """Return the bytes of one I420 frame: Y plane, then U and V at half size each way."""
    return stride * height + 2 * (stride // 2) * ((height + 1) // 2)


def rpicam_command(
    width: int, height: int, fps: float, *, program: str = "rpicam-vid"
) -> list[str]:
    """Return the command line that streams raw YUV420 frames to stdout until killed."""
    return [
        program,
        "-t",
        "0",
        "-n",
        "--codec",
        "yuv420",
        "--width",
        str(width),
        "--height",
        str(height),
        "--framerate",
        f"{fps:g}",
        "--flush",
        "-o",
        "-",
    ]


class RpiCamera(GrabbedSource):
    """The Pi camera module: `rpicam-vid` on a pipe, restarted with backoff when it exits."""

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        command: Sequence[str] | None = None,
        stride: int | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Start the camera program in the background; `command` replaces `rpicam_command()`."""
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        self.width, self.height = width, height
        self.stride = yuv420_stride(width) if stride is None else stride
        if self.stride < width:
            raise ValueError(f"stride {self.stride} is less than width {width}")
        self.frame_bytes = i420_size(self.stride, height)
        self.command = list(command) if command is not None else rpicam_command(width, height, fps)
        self._lock = threading.Lock()  # the process is started on the grab thread, killed on close
        self._closing = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._grabber = FrameGrabber(
            f"rpicam:{width}x{height}",
            self._grab,
            open_device=self._start,
            release=self._stop,
            interrupt=self._interrupt,
            backoff=backoff or Backoff(first_s=1.0, max_s=10.0),
            sleep=sleep,
        )
        self._grabber.start()

    @property
    def pid(self) -> int | None:
        """Return the camera program's process id while it runs."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        """Start the camera program, its stderr kept in a temporary file for diagnosis."""
        with self._lock:
            if self._closing:
                raise SourceDown("closing", state="closed", retry=False)
            # A file, not a pipe: nobody has to drain it, and its tail explains an exit.
            stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop
            try:
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
                )
            except OSError as exc:
                stderr.close()
                raise SourceDown(f"cannot start {self.command[0]}: {exc.strerror or exc}") from exc
            self._stderr = stderr
        log.info("rpicam: started %s (pid %d)", " ".join(self.command), self._proc.pid)

    def _grab(self) -> NDArray[Any]:
        """Read one whole frame from the pipe and return its Y plane, cropped to the width."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise DeviceError("rpicam: not running")
        data = proc.stdout.read(self.frame_bytes)
        if len(data) < self.frame_bytes:
            # EOF, possibly inside a frame: the program ended; its partial frame is useless.
            raise self._ended(proc, len(data))
        y = np.frombuffer(data, dtype=np.uint8, count=self.stride * self.height)
        return y.reshape(self.height, self.stride)[:, : self.width].copy()

    def _ended(self, proc: subprocess.Popen[bytes], got: int) -> SourceDown:
        """Say why the stream ended: exit code and the last line the program wrote to stderr."""
        try:
            code: int | None = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = f": {lines[-1].strip()}" if lines else ""
        status = "still running" if code is None else f"exited with code {code}"
        detail = f"{self.command[0]} {status} after {got} bytes of a frame{tail}"
        # libcamera's words for a camera that is not connected (or its ribbon is loose).
        unplugged = "no cameras available" in tail.lower()
        return SourceDown(detail, state="unplugged" if unplugged else "reconnecting")

    def _interrupt(self) -> None:
        """On close: stop the program, so a read blocked on its pipe returns."""
        with self._lock:
            self._closing = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()

    def _stop(self) -> None:
        """Stop the program, wait for it (no zombie), close the pipe and the stderr file."""
        with self._lock:
            proc, self._proc = self._proc, None
            stderr, self._stderr = self._stderr, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                log.warning("rpicam: pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if stderr is not None:
            stderr.close()
