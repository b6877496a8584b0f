"""Opening a frame source from a `CameraSpec`: the gate.toml [camera] section, or a short string.

Strings name the source the way a URL does::

    v4l2:0  v4l2:/dev/video0  v4l2:/dev/v4l/by-id/usb-...-index0   a USB webcam
    rpicam:                                                        the Pi camera module
    rtsp://user:pw@10.0.0.5/stream  http://10.0.0.5/video.mjpg      an IP camera
    file:/srv/demo/gate.avi  (or any path ending .avi, .mp4, ...)  a video file
    folder:/srv/demo/passes                                        a folder of images
    sim:                                                           the simulated camera
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from gate_agent.errors import ConfigError
from gate_agent.hardware.camera import FrameSource
from gate_agent.hardware.camera_rpicam import RpiCamera
from gate_agent.hardware.camera_sources import (
    ImageFolderSource,
    IpCamera,
    UsbCamera,
    VideoFileSource,
    redact_url,
)
from gate_agent.hardware.simulated import SimulatedCamera

__all__ = ["VIDEO_SUFFIXES", "CameraKind", "CameraSpec", "open_source"]

CameraKind = Literal["v4l2", "rpicam", "ip", "file", "folder", "sim"]

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"})
"""Suffixes that make a bare path a video file source."""

_URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
_NEEDS_TARGET = ("ip", "file", "folder")


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """Which frame source to open and how; the fields a source does not use are ignored."""

    kind: CameraKind
    target: str = ""  # v4l2: index or device path; ip: URL; file, folder: path
    width: int = 1280
    height: int = 720
    fps: float = 15.0  # v4l2, rpicam: asked of the camera; sim: frames made per second
    loop: bool = False  # file, folder: start again at the end
    realtime: bool = True  # file: pace frames at the file's rate, as a camera would
    interval_s: float = 1.0  # folder: time each image is shown
    open_timeout_s: float = 5.0  # ip: connecting
    read_timeout_s: float = 5.0  # ip: waiting for a frame before reconnecting
    command: tuple[str, ...] = ()  # rpicam: replaces the rpicam-vid command line

    def __post_init__(self) -> None:
        """Refuse an unknown kind, a missing target and sizes or times out of range."""
        if self.kind not in get_args(CameraKind):
            raise ConfigError(
                f"camera kind must be one of {get_args(CameraKind)}, got {self.kind!r}"
            )
        if self.kind in _NEEDS_TARGET and not self.target:
            raise ConfigError(f"camera kind {self.kind!r} needs a target (URL or path)")
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"camera size must be positive, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ConfigError(f"camera fps must be positive, got {self.fps}")
        if min(self.interval_s, self.open_timeout_s, self.read_timeout_s) < 0:
            raise ConfigError("camera interval and timeouts must not be negative")
        if self.kind == "ip" and not self.target.startswith(_URL_SCHEMES):
            shown = redact_url(self.target)
            raise ConfigError(f"camera URL must start with {', '.join(_URL_SCHEMES)}: {shown}")

    @classmethod
    def parse(cls, text: str, **options: Any) -> CameraSpec:
        """Read a source string (see the module docstring); `options` set the other fields."""
        kind, target = _split(text.strip())
        try:
            return cls(kind=kind, target=target, **options)
        except TypeError as exc:
            raise ConfigError(f"camera options: {exc}") from exc


def _split(text: str) -> tuple[CameraKind, str]:
    """Return the kind and target a source string names."""
    if text.startswith(_URL_SCHEMES):
        return "ip", text
    scheme, colon, rest = text.partition(":")
    if colon and scheme in ("sim", "rpicam"):
        return ("sim" if scheme == "sim" else "rpicam"), ""
    if text in ("sim", "rpicam"):
        return ("sim" if text == "sim" else "rpicam"), ""
    if colon and scheme == "v4l2":
        return "v4l2", rest or "0"
    if colon and scheme == "file":
        return "file", rest.removeprefix("//")  # file:///x and file:/x both mean /x
    if colon and scheme == "folder":
        return "folder", rest
    if Path(text).suffix.lower() in VIDEO_SUFFIXES:
        return "file", text
    raise ConfigError(
        f"unknown camera source {redact_url(text)!r}: use v4l2:N, rpicam:, rtsp://..., "
        "http://..., file:PATH, folder:PATH or sim:"
    )


def open_source(
    spec: CameraSpec | str, *, sleep: Callable[[float], None] | None = None
) -> FrameSource:
    """Open the source `spec` names; a camera that is absent starts unhealthy, not failing."""
    if isinstance(spec, str):
        spec = CameraSpec.parse(spec)
    size = (spec.width, spec.height)
    if spec.kind == "v4l2":
        return UsbCamera(spec.target or 0, width=size[0], height=size[1], fps=spec.fps, sleep=sleep)
    if spec.kind == "rpicam":
        command = spec.command or None
        return RpiCamera(width=size[0], height=size[1], fps=spec.fps, command=command, sleep=sleep)
    if spec.kind == "ip":
        return IpCamera(
            spec.target,
            open_timeout_s=spec.open_timeout_s,
            read_timeout_s=spec.read_timeout_s,
            sleep=sleep,
        )
    if spec.kind == "file":
        path = Path(spec.target)
        return VideoFileSource(path, loop=spec.loop, realtime=spec.realtime, sleep=sleep)
    if spec.kind == "folder":
        folder = Path(spec.target)
        return ImageFolderSource(folder, interval_s=spec.interval_s, loop=spec.loop, sleep=sleep)
    return SimulatedCamera(frame_size=size, fps=spec.fps, sleep=sleep)
