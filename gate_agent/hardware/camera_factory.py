"""Opening a frame source from a `CameraSpec`: the gate.toml [camera] section, or a short string.

Strings name the source the way a URL does (``gate_agent.core.camera_names``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from gate_agent.core.camera_names import (
    NEEDS_TARGET,
    URL_SCHEMES,
    VIDEO_SUFFIXES,
    CameraKind,
    redact_url,
    split_source,
)
from gate_agent.errors import ConfigError
from gate_agent.hardware.camera import FrameSource
from gate_agent.hardware.camera_rpicam import RpiCamera
from gate_agent.hardware.camera_sources import (
    ImageFolderSource,
    IpCamera,
    UsbCamera,
    VideoFileSource,
)
from gate_agent.hardware.simulated import SimulatedCamera

__all__ = ["VIDEO_SUFFIXES", "CameraKind", "CameraSpec", "open_source"]


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
        if self.kind in NEEDS_TARGET and not self.target:
            raise ConfigError(f"camera kind {self.kind!r} needs a target (URL or path)")
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"camera size must be positive, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ConfigError(f"camera fps must be positive, got {self.fps}")
        if min(self.interval_s, self.open_timeout_s, self.read_timeout_s) < 0:
            raise ConfigError("camera interval and timeouts must not be negative")
        if self.kind == "ip" and not self.target.startswith(URL_SCHEMES):
            shown = redact_url(self.target)
            raise ConfigError(f"camera URL must start with {', '.join(URL_SCHEMES)}: {shown}")

    @classmethod
    def parse(cls, text: str, **options: Any) -> CameraSpec:
        """Read a source string (see the module docstring); `options` set the other fields."""
        kind, target = _split(text)
        try:
            return cls(kind=kind, target=target, **options)
        except TypeError as exc:
            raise ConfigError(f"camera options: {exc}") from exc


def _split(text: str) -> tuple[CameraKind, str]:
    """Return the kind and target a source string names."""
    try:
        return split_source(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


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
