"""Frame sources through OpenCV: a USB webcam (V4L2), an IP camera (FFmpeg), a video file,
and a folder of images; each a small class over the `FrameGrabber`.

OpenCV errors stop here: a `cv2.error` becomes a `DeviceError`, and a device that
fails is reopened by the grabber with backoff. RTSP cameras that lose UDP
packets can be told to use TCP with the environment variable
``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp"`` (set for the whole
process, e.g. in the systemd unit); nothing here sets it, since the HTTP MJPEG
and RTSP-over-UDP cameras work without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
from numpy.typing import NDArray

from gate_agent.core.camera_names import redact_url
from gate_agent.errors import DeviceError
from gate_agent.hardware.camera import Backoff, FrameGrabber, GrabbedSource, SourceDown
from gate_agent.hardware.images import load_gray

__all__ = [
    "IMAGE_SUFFIXES",
    "Capture",
    "ImageFolderSource",
    "IpCamera",
    "UsbCamera",
    "VideoFileSource",
    "device_path",
    "redact_url",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
"""The files an image folder source shows; everything else in the folder is ignored."""


class Capture(Protocol):
    """The part of `cv2.VideoCapture` the sources use; a seam for testing the USB setup."""

    def isOpened(self) -> bool:
        """Tell whether the device or stream opened."""
        ...

    def set(self, prop: int, value: float, /) -> bool:
        """Set a capture property; False when the backend refuses it."""
        ...

    def get(self, prop: int, /) -> float:
        """Read a capture property back."""
        ...

    def read(self) -> tuple[bool, Any]:
        """Grab and decode the next frame."""
        ...

    def release(self) -> None:
        """Close the device or stream."""
        ...


CaptureFactory = Callable[[str, int], Capture]
"""Opens a capture from a device path and an OpenCV API preference (`cv2.VideoCapture`)."""


def device_path(device: str | int) -> str:
    """Map a V4L2 device index (0, "0") to its node (/dev/video0); keep paths as given."""
    if isinstance(device, int) or device.isdigit():
        return f"/dev/video{int(device)}"
    return device


def _first_line(exc: BaseException) -> str:
    """Return the first non-empty line of an exception message; cv2.error spans many lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _read(cap: Capture, name: str) -> NDArray[Any] | None:
    """Read one frame, translating cv2.error; None when the capture has nothing more."""
    try:
        ok, image = cap.read()
    except cv2.error as exc:
        raise DeviceError(f"{name}: read failed ({_first_line(exc)})") from exc
    if not ok or image is None:
        return None
    result: NDArray[Any] = image
    return result


def _release(cap: Capture | None) -> None:
    """Release a capture, if any."""
    if cap is not None:
        cap.release()


class UsbCamera(GrabbedSource):
    """A UVC webcam through OpenCV's V4L2 backend (MJPG, one-frame driver queue); replug-safe.

    `device` is an index (0), a node (/dev/video0) or, better, a stable link such as
    /dev/v4l/by-id/usb-...-video-index0, which survives replugging into another port.
    """

    def __init__(
        self,
        device: str | int = 0,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        fourcc: str = "MJPG",
        capture_factory: CaptureFactory | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Start grabbing in the background; a missing device shows as "unplugged", not an error."""
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.device = device_path(device)
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._factory: CaptureFactory = capture_factory or cv2.VideoCapture
        self._cap: Capture | None = None
        self._grabber = FrameGrabber(
            f"v4l2:{self.device}",
            self._grab,
            open_device=self._open,
            release=self._close_capture,
            backoff=backoff or Backoff(first_s=1.0, max_s=5.0),
            sleep=sleep,
        )
        self._grabber.start()

    def _open(self) -> None:
        """Open the device and ask for the format, size, rate and a one-frame queue."""
        if not Path(self.device).exists():
            raise SourceDown(f"{self.device}: no such device", state="unplugged")
        try:
            cap = self._factory(self.device, cv2.CAP_V4L2)
        except cv2.error as exc:
            raise DeviceError(f"{self.device}: cannot open ({_first_line(exc)})") from exc
        if not cap.isOpened():
            cap.release()
            raise SourceDown(f"{self.device}: cannot open (busy, or not a capture device)")
        # The pixel format first: a UVC camera offers its large sizes and full rates in MJPG
        # only, and the driver picks the size among those the current format offers.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        # One driver buffer: each read gets a fresh frame instead of one queued seconds ago.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        got = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        log.info(
            "%s: opened at %gx%g, %g fps (asked %dx%d, %g fps)",
            self.device,
            *got,
            cap.get(cv2.CAP_PROP_FPS),
            self.width,
            self.height,
            self.fps,
        )
        self._cap = cap

    def _grab(self) -> NDArray[Any]:
        """Read one frame; a failed read of a vanished node means it was unplugged."""
        if self._cap is None:
            raise DeviceError(f"{self.device}: not open")
        image = _read(self._cap, self.device)
        if image is None:
            if not Path(self.device).exists():
                raise SourceDown(f"{self.device}: unplugged", state="unplugged")
            raise DeviceError(f"{self.device}: read failed")
        return image

    def _close_capture(self) -> None:
        """Release the device."""
        cap, self._cap = self._cap, None
        _release(cap)


class IpCamera(GrabbedSource):
    """An RTSP or HTTP MJPEG camera through OpenCV's FFmpeg backend, reconnecting when it drops."""

    def __init__(
        self,
        url: str,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Start grabbing in the background; the timeouts bound how long a dead stream blocks."""
        self.url = url
        self._shown = redact_url(url)
        self._params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            max(1, round(open_timeout_s * 1000)),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            max(1, round(read_timeout_s * 1000)),
        ]
        self._cap: Capture | None = None
        self._grabber = FrameGrabber(
            self._shown,
            self._grab,
            open_device=self._open,
            release=self._close_capture,
            backoff=backoff or Backoff(first_s=1.0, max_s=10.0),
            sleep=sleep,
            # The thread may be inside an open or a read when asked to stop.
            join_timeout_s=open_timeout_s + read_timeout_s + 2.0,
        )
        self._grabber.start()

    def _open(self) -> None:
        """Connect to the stream."""
        try:
            cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, self._params)
        except cv2.error as exc:
            raise DeviceError(f"{self._shown}: cannot open ({_first_line(exc)})") from exc
        if not cap.isOpened():
            cap.release()
            raise SourceDown(f"{self._shown}: cannot connect")
        self._cap = cap

    def _grab(self) -> NDArray[Any]:
        """Read one frame; a failed read means the stream dropped."""
        if self._cap is None:
            raise DeviceError(f"{self._shown}: not open")
        image = _read(self._cap, self._shown)
        if image is None:
            raise DeviceError(f"{self._shown}: stream dropped")
        return image

    def _close_capture(self) -> None:
        """Close the stream."""
        cap, self._cap = self._cap, None
        _release(cap)


class VideoFileSource(GrabbedSource):
    """A video file as a camera: as fast as it decodes, or paced at its frame rate; may loop."""

    def __init__(
        self,
        path: Path,
        *,
        loop: bool = False,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Start reading in the background; DeviceError if the file does not exist."""
        if not path.is_file():
            raise DeviceError(f"{path}: no such video file")
        self.path, self.loop, self.realtime = path, loop, realtime
        self._clock = clock
        self._cap: Capture | None = None
        self._fps = 25.0
        self._start = 0.0
        self._count = 0  # frames read in the current pass over the file
        self._grabber = FrameGrabber(
            f"file:{path.name}",
            self._grab,
            open_device=self._open,
            release=self._close_capture,
            sleep=sleep,
        )
        self._grabber.start()

    def _open(self) -> None:
        """Open the file and learn its frame rate."""
        try:
            cap = cv2.VideoCapture(str(self.path))
        except cv2.error as exc:
            detail = f"{self.path}: {_first_line(exc)}"
            raise SourceDown(detail, state="failed", retry=False) from exc
        if not cap.isOpened():
            cap.release()
            detail = f"{self.path}: not a video OpenCV can read"
            raise SourceDown(detail, state="failed", retry=False)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if fps > 0 else 25.0  # NaN and 0 both fail the test
        self._cap, self._count = cap, 0

    def _grab(self) -> NDArray[Any] | None:
        """Read the next frame, after waiting for its time in realtime mode; loop or end."""
        if self._cap is None:
            raise DeviceError(f"{self.path}: not open")
        if self.realtime:
            if self._count == 0:
                self._start = self._clock()
            due = self._start + self._count / self._fps
            if not self._grabber.pause(due - self._clock()):
                return None
        image = _read(self._cap, str(self.path))
        if image is not None:
            self._count += 1
            return image
        if self._count == 0:
            raise SourceDown(f"{self.path}: no frames", state="failed", retry=False)
        if not self.loop:
            raise SourceDown(f"{self.path}: end of file", state="ended", retry=False)
        # Reopen rather than seek: seeking to 0 is unreliable in some containers.
        self._close_capture()
        self._open()
        return None

    def _close_capture(self) -> None:
        """Close the file."""
        cap, self._cap = self._cap, None
        _release(cap)


class ImageFolderSource(GrabbedSource):
    """Every image in a folder, in name order, one every `interval_s`; may loop."""

    def __init__(
        self,
        folder: Path,
        *,
        interval_s: float = 1.0,
        loop: bool = False,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Start showing in the background; DeviceError if the folder holds no image."""
        if not folder.is_dir():
            raise DeviceError(f"{folder}: no such folder")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DeviceError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.folder, self.interval_s, self.loop = folder, interval_s, loop
        self._next = 0
        self._grabber = FrameGrabber(f"folder:{folder.name}", self._grab, sleep=sleep)
        self._grabber.start()

    def _grab(self) -> NDArray[Any] | None:
        """Wait the interval, then load the next image (an unreadable one is a bad frame)."""
        if self._next > 0 and not self._grabber.pause(self.interval_s):
            return None
        if self._next >= len(self.files):
            if not self.loop:
                raise SourceDown(f"{self.folder}: no more images", state="ended", retry=False)
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        return load_gray(path)
