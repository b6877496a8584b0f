"""QR decoding of grayscale frames: zxing-cpp, then a rescue stage only where a code seems to be.

A decoder runs its stages in order until one reads something. The production order is
zxing-cpp over the whole frame, then the rescue stage (see `gate_agent.hardware.rescue`),
which spends more effort only on regions zxing-cpp located but could not decode, or that
a cheap probe finds, so that a frame without a code costs little more than zxing-cpp.
pyzbar over the whole frame remains available as a stage, for comparison.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, get_args

import numpy as np

from gate_agent.errors import ImageError
from gate_agent.hardware.images import Gray, load_gray, to_gray
from gate_agent.hardware.readers import Corners, DecodedCode, Engine, ReadBy, read_zbar, read_zxing
from gate_agent.hardware.rescue import rescue

__all__ = [
    "ENGINES",
    "PLAIN_CHAIN",
    "DecodeResult",
    "DecodeTrace",
    "DecodedCode",
    "Decoder",
    "Engine",
    "QrDecoder",
    "ReadBy",
    "decode_image_file",
    "load_gray",
    "to_gray",
]

log = logging.getLogger(__name__)

ENGINES: tuple[Engine, ...] = ("zxing-cpp", "rescue")
"""The production order: zxing-cpp reads most photos and is fast; the rescue adds a few."""

PLAIN_CHAIN: tuple[Engine, ...] = ("zxing-cpp", "pyzbar")
"""The former production order: pyzbar over every frame zxing-cpp reads nothing in."""


class Decoder(Protocol):
    """The port the station reads frames through."""

    def decode(self, gray: Gray) -> list[DecodedCode]:
        """Return every code in a 2-D uint8 frame, without duplicates; [] when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class DecodeTrace:
    """The steps one decode ran, in order: stage names, "probe" and "rescue:<attempt>"."""

    steps: tuple[str, ...]

    @property
    def rescued(self) -> bool:
        """Whether the rescue stage worked on a region (more than the probe)."""
        return any(step.startswith("rescue:") for step in self.steps)


class QrDecoder:
    """QR and Micro QR decoding: stages tried in order until one reads (thread-safe)."""

    def __init__(self, engines: Sequence[Engine] = ENGINES) -> None:
        """Use the stages `engines` in this order; the first to find any code answers.

        "zxing-cpp" and "pyzbar" read the whole frame; "rescue" works on what an earlier
        "zxing-cpp" stage located but could not decode, or probes for such regions.
        """
        unknown = [e for e in engines if e not in get_args(Engine)]
        if not engines or unknown:
            raise ValueError(f"engines must be a non-empty sequence of {get_args(Engine)}")
        self.engines: tuple[Engine, ...] = tuple(engines)

    def __repr__(self) -> str:
        """Show the engine order, which is what distinguishes one decoder from another."""
        return f"QrDecoder(engines={self.engines!r})"

    def decode(self, gray: Gray) -> list[DecodedCode]:
        """Return the codes in `gray`; ValueError on a bad array, ImageError if an engine fails."""
        return self.decode_traced(gray)[0]

    def decode_traced(self, gray: Gray) -> tuple[list[DecodedCode], DecodeTrace]:
        """Like `decode`, also saying which steps ran (for tests, benchmarks and logs)."""
        gray = _checked(gray)
        # Everything about this call lives here, not on self: one decoder serves any thread.
        steps: list[str] = []
        located: list[Corners] = []
        codes: list[DecodedCode] = []
        for engine in self.engines:
            if engine == "zxing-cpp":
                steps.append(engine)
                found = read_zxing(gray)
                located.extend(found.located)
                codes = found.codes
            elif engine == "pyzbar":
                steps.append(engine)
                codes = read_zbar(gray)
            else:
                codes = rescue(gray, located, steps.append)
            if codes:
                break
        return _unique(codes), DecodeTrace(tuple(steps))


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
