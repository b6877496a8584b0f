"""Image files and camera frames turned into the 8-bit grayscale arrays the decoders read."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal, TypeAlias

import cv2
import numpy as np
from numpy.typing import NDArray

from gate_agent.errors import ImageError

Gray: TypeAlias = NDArray[np.uint8]
"""A 2-D, C-contiguous uint8 array: one byte per pixel, 0 black, 255 white."""

# Leading bytes of the formats we expect, to tell "not an image" from "a damaged one".
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WebP"),
    (b"GIF8", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)

#: The most pixels an image file may declare: a 100-megapixel photo. OpenCV allocates what
#: the header claims before it reads the data, so a file of a few dozen bytes could ask for
#: gigabytes (OpenCV's own limit is 2^30 pixels, and a damaged PNG header skips even that).
MAX_IMAGE_PIXELS = 100_000_000
# JPEG start-of-frame markers (the ones that carry the image size); C4, C8, CC are not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

# OpenCV's log level is process-wide; the lock keeps concurrent loads from restoring it wrongly.
_LOG_LOCK = threading.Lock()


def to_gray(frame: NDArray[Any]) -> Gray:
    """Convert a camera frame or decoded image (gray, BGR or BGRA; 8 or 16 bit) to `Gray`."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(frame).__name__}")
    if frame.size == 0:
        raise ValueError(f"expected a non-empty image, got shape {frame.shape}")
    if frame.dtype == np.uint16:
        # 16-bit PNG/TIFF: keep the high byte, which is what an 8-bit decode would give.
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"expected a 2-D gray or 3-D BGR/BGRA array, got shape {frame.shape}")
    gray = cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if frame.shape[2] == 4:
        # Composite over white: a code drawn on a transparent background stores its light
        # modules as transparent black, which would otherwise read as a black square.
        alpha = frame[:, :, 3].astype(np.uint16)
        blended = (gray.astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
        gray = blended.astype(np.uint8)
    return np.ascontiguousarray(gray, dtype=np.uint8)


#: The least OpenCV's WebP reader takes (WEBP_HEADER_SIZE in its grfmt_webp.cpp).
_WEBP_MIN_BUFFER = 32


def load_gray(path: Path) -> Gray:
    """Read an image file (PNG, JPEG, WebP, BMP, TIFF, ...) as `Gray`; ImageError if unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path}: is a directory, not an image file") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageError(f"{path}: empty file")
    declared = _declared_size(data)
    if declared is not None and declared[1] * declared[2] > MAX_IMAGE_PIXELS:
        name, width, height = declared
        raise ImageError(
            f"{path}: the {name} header declares {width}x{height} pixels, more than the"
            f" {MAX_IMAGE_PIXELS:,} a gate decodes (damaged, or not a photo of a pass)"
        )
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) < _WEBP_MIN_BUFFER:
        # OpenCV's WebP reader wants 32 bytes before it looks, though a tiny image
        # (libwebp writes a 1x1 in 30) is whole in fewer; libwebp reads to the RIFF size.
        data = data.ljust(_WEBP_MIN_BUFFER, b"\0")
    # imdecode on bytes rather than imread on a path: imread cannot open non-ASCII paths
    # on every platform. UNCHANGED keeps alpha so to_gray can composite it over white.
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        with _LOG_LOCK:
            # OpenCV logs its own line to stderr for undecodable data; ours carries the reason.
            previous = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            try:
                image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            finally:
                cv2.utils.logging.setLogLevel(previous)
    except cv2.error as exc:
        raise ImageError(f"{path}: {_describe(data)} ({_first_line(exc)})") from exc
    if image is None or image.size == 0:
        raise ImageError(f"{path}: {_describe(data)}")
    try:
        return to_gray(image)
    except ValueError as exc:
        raise ImageError(f"{path}: unsupported pixel layout ({exc})") from exc


def _declared_size(data: bytes) -> tuple[str, int, int] | None:
    """The format and the width and height an image header declares, read without
    decoding (whatever the checksums say); None for other formats or no size found."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return "GIF", int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"BM" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # the old OS/2 core header
            width, height = data[18:20], data[20:22]
        else:  # the height is negative for rows stored top-down
            width, height = data[18:22], data[22:26]
        return (
            "BMP",
            abs(int.from_bytes(width, "little", signed=True)),
            abs(int.from_bytes(height, "little", signed=True)),
        )
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            return "JPEG", int.from_bytes(data[i + 7 : i + 9], "big"), height
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _webp_size(data: bytes) -> tuple[str, int, int] | None:
    """The canvas of an extended WebP, or the frame of a lossy or lossless one (RFC 9649)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return "WebP", width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30:
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        return "WebP", width, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return "WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _tiff_size(data: bytes) -> tuple[str, int, int] | None:
    """ImageWidth and ImageLength of a TIFF's first directory (the page OpenCV reads)."""
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"

    def number(at: int, size: int) -> int:
        return int.from_bytes(data[at : at + size], order)

    start = number(4, 4)
    if start + 2 > len(data):
        return None
    size: dict[int, int] = {}
    for n in range(number(start, 2)):
        entry = start + 2 + 12 * n
        if entry + 12 > len(data):
            break
        tag, kind = number(entry, 2), number(entry + 2, 2)
        if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG
            size[tag] = number(entry + 8, 2 if kind == 3 else 4)
    if 256 in size and 257 in size:
        return "TIFF", size[256], size[257]
    return None


def _describe(data: bytes) -> str:
    """Say why bytes did not decode: an unknown format or a damaged/unsupported known one."""
    for magic, offset, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return f"{name} data that OpenCV cannot decode (truncated, damaged or unsupported)"
    return "not an image (unrecognised file format)"


def _first_line(exc: BaseException) -> str:
    """Return the first non-empty line of an exception message; cv2.error spans many lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
