"""The QR engines zxing-cpp and pyzbar, wrapped: what they read and where; errors translated."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import zxingcpp
from pyzbar import pyzbar

from gate_agent.errors import ImageError
from gate_agent.hardware.images import Gray

__all__ = [
    "Corners",
    "DecodedCode",
    "Engine",
    "Read",
    "ReadBy",
    "ZxingResult",
    "read_zbar",
    "read_zxing",
]

log = logging.getLogger(__name__)

Engine = Literal["zxing-cpp", "pyzbar", "rescue"]
"""A stage of a decoder's chain: an engine over the whole frame, or the rescue stage."""

ReadBy = Literal["zxing-cpp", "pyzbar", "rescue:zxing-cpp", "rescue:pyzbar"]
"""Which engine read a code; ``rescue:`` marks a read made by the rescue stage."""

Corners = tuple[tuple[int, int], ...]

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
    engine: ReadBy
    # zxing-cpp: top-left, top-right, bottom-right, bottom-left of the symbol as printed;
    # pyzbar: zbar's polygon as given (4 points for a QR code). Empty when unknown.
    corners: Corners


@dataclass(frozen=True, slots=True)
class Read:
    """A decoded code and how much error correction it left unused (None when not told)."""

    code: DecodedCode
    # zxing-cpp's "UEC": the share of the symbol's error-correction capacity left unused.
    # Above 0, the decoded word lies strictly inside the correction radius, where a
    # miscorrection (a damaged symbol decoded to the wrong codeword) is far less likely.
    spare_correction: float | None = None


@dataclass(frozen=True, slots=True)
class ZxingResult:
    """What one zxing-cpp pass gave: the symbols it decoded and those it found but could not."""

    reads: list[Read] = field(default_factory=list)
    # Finder patterns and a symbol outline were found but decoding failed (usually a
    # checksum error): a code-like region worth a closer look.
    located: list[Corners] = field(default_factory=list)

    @property
    def codes(self) -> list[DecodedCode]:
        """The decoded codes alone."""
        return [read.code for read in self.reads]


def read_zxing(
    gray: Gray,
    *,
    engine: ReadBy = "zxing-cpp",
    binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
    try_downscale: bool = True,
    try_invert: bool = True,
) -> ZxingResult:
    """Read with zxing-cpp in Plain text mode; keep the symbols it located but could not decode."""
    try:
        # Plain: the payload as text. The default HRI mode writes control characters as
        # <GS>-style tokens and GS1 data with parentheses, so exact matches would fail.
        # return_errors costs nothing measurable and tells where a damaged code sits.
        barcodes = zxingcpp.read_barcodes(
            gray,
            formats=_ZXING_FORMATS,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer,
            try_downscale=try_downscale,
            try_invert=try_invert,
            return_errors=True,
        )
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ImageError(f"zxing-cpp failed on a {gray.shape} frame: {exc}") from exc
    result = ZxingResult()
    for barcode in barcodes:
        p = barcode.position
        corners = tuple(
            (point.x, point.y) for point in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
        )
        if not barcode.valid or barcode.error is not None:
            result.located.append(corners)
            continue
        spare = barcode.extra.get("UEC") if isinstance(barcode.extra, dict) else None
        code = DecodedCode(text=barcode.text, engine=engine, corners=corners)
        result.reads.append(Read(code, float(spare) if isinstance(spare, int | float) else None))
    return result


def read_zbar(gray: Gray, *, engine: ReadBy = "pyzbar", strict: bool = False) -> list[DecodedCode]:
    """Read QR symbols with pyzbar (zbar reads no Micro QR), decoding its bytes as UTF-8.

    With `strict`, a payload that is not UTF-8 is dropped rather than returned with
    replacement characters.
    """
    try:
        found = pyzbar.decode(gray, symbols=_ZBAR_SYMBOLS)
    except pyzbar.PyZbarError as exc:
        raise ImageError(f"pyzbar failed on a {gray.shape} frame: {exc}") from exc
    codes = []
    for symbol in found:
        text = _utf8(symbol.data, strict=strict)
        if text is None:
            continue
        corners = tuple((int(point.x), int(point.y)) for point in symbol.polygon)
        codes.append(DecodedCode(text=text, engine=engine, corners=corners))
    return codes


def _utf8(data: bytes, *, strict: bool) -> str | None:
    """Decode zbar's output, which is UTF-8 whenever zbar recognised the payload's charset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        log.debug("pyzbar returned %d bytes that are not UTF-8", len(data))
        if strict:
            return None
        # Binary payloads or a wrong charset guess: replacement characters keep the text
        # visibly damaged, so it can never match a pass by accident.
        return data.decode("utf-8", errors="replace")
