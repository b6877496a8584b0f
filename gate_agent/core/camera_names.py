"""Camera source names as gate.toml writes them, read without opening anything.

The config checks a lane's ``source`` with this when it loads, so a mistyped camera is
refused at start with the rest of the file; the camera factory opens what it names::

    v4l2:0  v4l2:/dev/video0  v4l2:/dev/v4l/by-id/usb-...-index0   a USB webcam
    rpicam:                                                        the Pi camera module
    rtsp://user:pw@10.0.0.5/stream  http://10.0.0.5/video.mjpg      an IP camera
    file:/srv/demo/gate.avi  (or any path ending .avi, .mp4, ...)  a video file
    folder:/srv/demo/passes                                        a folder of images
    sim:                                                           the simulated camera
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

CameraKind = Literal["v4l2", "rpicam", "ip", "file", "folder", "sim"]

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"})
"""Suffixes that make a bare path a video file source."""

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
NEEDS_TARGET: tuple[CameraKind, ...] = ("ip", "file", "folder")


def split_source(text: str) -> tuple[CameraKind, str]:
    """The kind and target a source string names; ValueError saying what is allowed."""
    text = text.strip()
    kind, target = _split(text)
    if kind in NEEDS_TARGET and not target:
        raise ValueError(f"camera source {text!r} needs a path")
    return kind, target


def _split(text: str) -> tuple[CameraKind, str]:
    if text.startswith(URL_SCHEMES):
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
    if PurePath(text).suffix.lower() in VIDEO_SUFFIXES:
        return "file", text
    raise ValueError(
        f"unknown camera source {redact_url(text)!r}: use v4l2:N, rpicam:, rtsp://..., "
        "http://..., file:PATH, folder:PATH or sim:"
    )


def redact_url(url: str) -> str:
    """Hide the password of a camera URL, for logs and health details."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
