"""QR decoding of grayscale frames: zxing-cpp first, pyzbar when zxing-cpp finds nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np
import zxingcpp
from pyzbar import pyzbar

from gate_agent.errors import ImageError
from gate_agent.hardware.images import Gray, load_gray, to_gray

__all__ = [
    "ENGINES",
    "DecodeResult",
    "DecodedCode",
    "Decoder",
    "Engine",
    "QrDecoder",
    "decode_image_file",
    "load_gray",
    "to_gray",
]

log = logging.getLogger(__name__)

Engine = Literal["zxing-cpp", "pyzbar"]
ENGINES: tuple[Engine, ...] = ("zxing-cpp", "pyzbar")
"""The production order: zxing-cpp reads more real photos and is faster; pyzbar adds a few."""

# In zxing-cpp 3.x `QRCode` names the whole family (Model 1/2, Micro, rMQR); MicroQRCode is
# listed to say so. A sequence, because `a | b` on formats is deprecated since 3.0.
_ZXING_FORMATS = zxingcpp.BarcodeFormats(
    [zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode]
)
_ZBAR_SYMBOLS = [pyzbar.ZBarSymbol.QRCODE]


@dataclass(frozen=True, slots=True)
class DecodedCode:
    """One symbol found in a frame: its text, the engine that read it, its corners in pixels."""

    text: str
    engine: Engine
    # zxing-cpp: top-left, top-right, bottom-right, bottom-left of the symbol as printed;
    # pyzbar: zbar's polygon as given (4 points for a QR code). Empty when unknown.
    corners: tuple[tuple[int, int], ...]


class Decoder(Protocol):
    """The port the station reads frames through."""

    def decode(self, gray: Gray) -> list[DecodedCode]:
        """Return every code in a 2-D uint8 frame, without duplicates; [] when there is none."""
        ...


class QrDecoder:
    """QR and Micro QR decoding with zxing-cpp and pyzbar, tried in order until one reads."""

    def __init__(self, engines: Sequence[Engine] = ENGINES) -> None:
        """Use `engines` in this order; the first to find any code answers for the frame."""
        unknown = [e for e in engines if e not in get_args(Engine)]
        if not engines or unknown:
            raise ValueError(f"engines must be a non-empty sequence of {get_args(Engine)}")
        self.engines: tuple[Engine, ...] = tuple(engines)

    def __repr__(self) -> str:
        """Show the engine order, which is what distinguishes one decoder from another."""
        return f"QrDecoder(engines={self.engines!r})"

    def decode(self, gray: Gray) -> list[DecodedCode]:
        """Return the codes in `gray`; ValueError on a bad array, ImageError if an engine fails."""
        gray = _checked(gray)
        for engine in self.engines:
            codes = _read_zxing(gray) if engine == "zxing-cpp" else _read_zbar(gray)
            if codes:
                return _unique(codes)
        return []


def _checked(gray: Gray) -> Gray:
    """Refuse anything but a non-empty 2-D uint8 array; make it contiguous for the C readers."""
    if not isinstance(gray, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(gray).__name__}")
    if gray.ndim != 2:
        raise ValueError(
            f"expected a 2-D grayscale array, got shape {gray.shape}; convert with to_gray()"
        )
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}; convert with to_gray()")
    if gray.size == 0:
        raise ValueError(f"expected a non-empty image, got shape {gray.shape}")
    return np.ascontiguousarray(gray)


def _read_zxing(gray: Gray) -> list[DecodedCode]:
    """Read with zxing-cpp in Plain text mode, keeping only valid results."""
    try:
        # Plain: the payload as text. The default HRI mode writes control characters as
        # <GS>-style tokens and GS1 data with parentheses, so exact matches would fail.
        barcodes = zxingcpp.read_barcodes(
            gray, formats=_ZXING_FORMATS, text_mode=zxingcpp.TextMode.Plain
        )
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ImageError(f"zxing-cpp failed on a {gray.shape} frame: {exc}") from exc
    codes = []
    for barcode in barcodes:
        if not barcode.valid or barcode.error is not None:
            continue
        p = barcode.position
        corners = tuple(
            (point.x, point.y) for point in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
        )
        codes.append(DecodedCode(text=barcode.text, engine="zxing-cpp", corners=corners))
    return codes


def _read_zbar(gray: Gray) -> list[DecodedCode]:
    """Read QR symbols with pyzbar (zbar reads no Micro QR), decoding its bytes as UTF-8."""
    try:
        found = pyzbar.decode(gray, symbols=_ZBAR_SYMBOLS)
    except pyzbar.PyZbarError as exc:
        raise ImageError(f"pyzbar failed on a {gray.shape} frame: {exc}") from exc
    codes = []
    for symbol in found:
        corners = tuple((int(point.x), int(point.y)) for point in symbol.polygon)
        codes.append(DecodedCode(text=_utf8(symbol.data), engine="pyzbar", corners=corners))
    return codes


def _utf8(data: bytes) -> str:
    """Decode zbar's output, which is UTF-8 whenever zbar recognised the payload's charset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Binary payloads or a wrong charset guess: replacement characters keep the text
        # visibly damaged, so it can never match a pass by accident.
        log.debug("pyzbar returned %d bytes that are not UTF-8", len(data))
        return data.decode("utf-8", errors="replace")


def _unique(codes: list[DecodedCode]) -> list[DecodedCode]:
    """Drop a code whose text was already read at the same place (its centre inside the other)."""
    kept: list[DecodedCode] = []
    for code in codes:
        if not any(k.text == code.text and _same_place(k, code) for k in kept):
            kept.append(code)
    return kept


def _same_place(a: DecodedCode, b: DecodedCode) -> bool:
    """Tell whether b's centre lies within a's bounding box (true when either has no corners)."""
    if not a.corners or not b.corners:
        return True
    xs = [x for x, _ in a.corners]
    ys = [y for _, y in a.corners]
    cx = sum(x for x, _ in b.corners) / len(b.corners)
    cy = sum(y for _, y in b.corners) / len(b.corners)
    return min(xs) <= cx <= max(xs) and min(ys) <= cy <= max(ys)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one image file held: its texts, the decode time, or why it could not be read."""

    image: str
    texts: list[str]
    ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Return {"image", "texts", "ms"}, plus "error" only when there was one."""
        out: dict[str, object] = {
            "image": self.image,
            "texts": list(self.texts),
            "ms": round(self.ms, 3),
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def to_json(self) -> str:
        """Return `as_dict()` as one line of JSON (non-ASCII escaped, safe on any terminal)."""
        return json.dumps(self.as_dict())


def decode_image_file(path: Path, decoder: Decoder) -> DecodeResult:
    """Decode one image file; an unreadable file gives a result with `error`, never an exception."""
    try:
        gray = load_gray(path)
    except ImageError as exc:
        return DecodeResult(image=str(path), texts=[], ms=0.0, error=str(exc))
    start = time.perf_counter()
    try:
        codes = decoder.decode(gray)
    except ImageError as exc:
        ms = (time.perf_counter() - start) * 1000.0
        return DecodeResult(image=str(path), texts=[], ms=ms, error=str(exc))
    ms = (time.perf_counter() - start) * 1000.0
    return DecodeResult(image=str(path), texts=[c.text for c in codes], ms=ms)
