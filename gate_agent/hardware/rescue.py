"""The rescue stage: more reading effort, spent only where a code-like region was found.

When zxing-cpp's pass over the frame decodes nothing, the rescue stage works from the
symbols it *located* (finder patterns and an outline found, decoding failed). When it
located none, a cheap probe looks again: zxing-cpp with its global-histogram binarizer
on a half-size copy, a fifth of a full pass or less; it reads some codes outright (codes
with no quiet zone, strong texture) and locates others. A frame where neither finds a
code-like region costs those two passes and nothing more.

For each located region, a crop with a margin goes through a short list of attempts,
cheapest first, chosen from what read the real photo set and rendered hard codes (small,
blurred, low contrast) that the plain pass misses: zxing-cpp with another binarizer,
zxing-cpp on upscaled and sharpened copies, then pyzbar.

A rescue read must never be a false read. Every engine here returns only symbols whose
Reed-Solomon check passed, and on top of that:

- a text with replacement characters (bytes that are not UTF-8) is never returned;
- a zxing-cpp read that left error correction unused ends the search: its decoded word
  lies strictly inside the correction radius, where miscorrection is far less likely;
- any other read (pyzbar's, which report nothing about correction, or zxing-cpp's with
  none to spare) lets the remaining attempts run, and two different texts read at the
  same place cancel each other: the region gives nothing rather than a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import zxingcpp

from gate_agent.errors import ImageError
from gate_agent.hardware.images import Gray
from gate_agent.hardware.readers import (
    Corners,
    DecodedCode,
    Read,
    ZxingResult,
    read_zbar,
    read_zxing,
)

__all__ = ["ATTEMPTS", "Attempt", "rescue"]

log = logging.getLogger(__name__)

#: Regions looked at per frame, largest first: bounds the cost of a cluttered frame.
MAX_REGIONS = 3
#: An attempt that enlarges is skipped when the crop would grow past this side, in
#: pixels: a code that large has pixels enough per module, and the cost grows as the square.
MAX_SIDE = 1024
#: A located outline smaller than this (pixels) holds too few pixels to read.
MIN_SIDE = 12
#: The probe halves frames whose short side is at least this.
PROBE_HALVING_MIN_SIDE = 120

_GLOBAL = zxingcpp.Binarizer.GlobalHistogram
_LOCAL = zxingcpp.Binarizer.LocalAverage


@dataclass(frozen=True, slots=True)
class Attempt:
    """One way to read a cropped region: an engine on a resized, maybe sharpened, copy."""

    name: str
    engine: Literal["zxing-cpp", "pyzbar"]
    scale: float = 1.0
    sharpen: bool = False
    binarizer: zxingcpp.Binarizer = _LOCAL


# In order of cost. Each earns its place on the photo set or on rendered hard codes.
ATTEMPTS: tuple[Attempt, ...] = (
    # Photos of codes on crumpled paper the local binarizer splits into speckle.
    Attempt("zxing-cpp:global-histogram", "zxing-cpp", binarizer=_GLOBAL),
    # Small and blurred codes: 1-2 pixels a module is too few for the detector's sampling.
    Attempt("zxing-cpp:x2-sharpened", "zxing-cpp", scale=2.0, sharpen=True),
    Attempt("zxing-cpp:x3", "zxing-cpp", scale=3.0),
    Attempt("zxing-cpp:x2-sharpened-global", "zxing-cpp", 2.0, True, _GLOBAL),
    # zbar samples the grid its own way and reads some photos zxing-cpp cannot.
    Attempt("pyzbar", "pyzbar"),
)


@dataclass(frozen=True, slots=True)
class _Box:
    """An axis-aligned region of the frame: [x0, x1) by [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, corners: Corners) -> _Box:
        xs = [x for x, _ in corners]
        ys = [y for _, y in corners]
        return cls(min(xs), min(ys), max(xs) + 1, max(ys) + 1)

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def overlaps(self, other: _Box) -> bool:
        return (
            self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
        )

    def union(self, other: _Box) -> _Box:
        return _Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )


def rescue(
    gray: Gray,
    located: list[Corners],
    note: Callable[[str], None],
    attempts: tuple[Attempt, ...] = ATTEMPTS,
) -> list[DecodedCode]:
    """Read what a plain pass could not, only in code-like regions; `note` records each step.

    `located` are the outlines a zxing-cpp pass found but could not decode; when there are
    none, the probe looks for some first.
    """
    if not located:
        note("probe")
        probed = _probe(gray)
        if probed.reads:
            return probed.codes
        located = probed.located
    reads: list[Read] = []
    for box in _regions(located, gray.shape):
        reads.extend(_rescue_region(gray, box, attempts, note))
    return _without_conflicts(reads)


def _probe(gray: Gray) -> ZxingResult:
    """Look again cheaply: zxing-cpp's global binarizer on a half-size copy of the frame."""
    if min(gray.shape) < PROBE_HALVING_MIN_SIDE:
        return read_zxing(gray, engine="rescue:zxing-cpp", binarizer=_GLOBAL, try_invert=False)
    # No inverted pass (the full pass tried that) and no pyramid (the copy is one already):
    # each would double the probe's cost, which is paid on every frame without a code.
    found = read_zxing(
        _resized(gray, 0.5),
        engine="rescue:zxing-cpp",
        binarizer=_GLOBAL,
        try_downscale=False,
        try_invert=False,
    )
    return ZxingResult(
        reads=[Read(_placed(r.code, 0.5, 0, 0), r.spare_correction) for r in found.reads],
        located=[_to_frame(c, 0.5, 0, 0) for c in found.located],
    )


def _regions(located: list[Corners], shape: tuple[int, ...]) -> list[_Box]:
    """Merge overlapping outlines, widen each by a margin, keep the largest few."""
    boxes: list[_Box] = []
    for corners in located:
        box = _Box.around(corners)
        if min(box.x1 - box.x0, box.y1 - box.y0) < MIN_SIDE:
            continue
        # A damaged QR code is often also "located" as one or two Micro QR codes inside
        # it: one region, looked at once.
        for other in [b for b in boxes if b.overlaps(box)]:
            boxes.remove(other)
            box = box.union(other)
        boxes.append(box)
    boxes.sort(key=lambda b: b.area, reverse=True)
    height, width = shape[0], shape[1]
    widened = []
    for box in boxes[:MAX_REGIONS]:
        # A quarter of the side each way: room for the quiet zone the decoders need and
        # for corners the outline got wrong.
        margin = max(box.x1 - box.x0, box.y1 - box.y0) // 4 + 4
        widened.append(
            _Box(
                max(0, box.x0 - margin),
                max(0, box.y0 - margin),
                min(width, box.x1 + margin),
                min(height, box.y1 + margin),
            )
        )
    return widened


def _rescue_region(
    gray: Gray, box: _Box, attempts: tuple[Attempt, ...], note: Callable[[str], None]
) -> list[Read]:
    """Try each attempt on a crop until one reads with error correction to spare."""
    crop = np.ascontiguousarray(gray[box.y0 : box.y1, box.x0 : box.x1])
    reads: list[Read] = []
    for attempt in attempts:
        scale = attempt.scale
        if scale > 1.0 and max(crop.shape) * scale > MAX_SIDE:
            continue
        note(f"rescue:{attempt.name}")
        image = _prepared(crop, scale, sharpen=attempt.sharpen)
        if attempt.engine == "pyzbar":
            found = [Read(code) for code in read_zbar(image, engine="rescue:pyzbar", strict=True)]
        else:
            found = read_zxing(image, engine="rescue:zxing-cpp", binarizer=attempt.binarizer).reads
        found = [Read(_placed(r.code, scale, box.x0, box.y0), r.spare_correction) for r in found]
        reads.extend(found)
        if any(_spares_correction(r) and _clean(r.code.text) for r in found):
            break
    if reads:
        log.debug("rescue read %s in %s", sorted({r.code.text for r in reads}), box)
    return reads


def _spares_correction(read: Read) -> bool:
    """Tell whether a read left some of its error correction unused."""
    return read.spare_correction is not None and read.spare_correction > 0


def _clean(text: str) -> bool:
    """Tell whether a text holds no replacement character (bytes that were not UTF-8)."""
    return "\ufffd" not in text


def _without_conflicts(reads: list[Read]) -> list[DecodedCode]:
    """Keep the reads no other read at the same place contradicts, one of each, clean ones."""
    kept: list[DecodedCode] = []
    for read in reads:
        code = read.code
        # A damaged text still contradicts: it says the region reads two ways.
        rivals = [
            other.code.text
            for other in reads
            if other.code.text != code.text and _overlap(code.corners, other.code.corners)
        ]
        if rivals:
            log.info("rescue: %r contradicted at its place by %r; neither kept", code.text, rivals)
            continue
        # Never a damaged text from a rescue, whichever engine made it.
        if not _clean(code.text):
            continue
        if not any(k.text == code.text and _overlap(k.corners, code.corners) for k in kept):
            kept.append(code)
    return kept


def _overlap(a: Corners, b: Corners) -> bool:
    """Tell whether two outlines' bounding boxes overlap (true when either is unknown)."""
    return not a or not b or _Box.around(a).overlaps(_Box.around(b))


def _prepared(crop: Gray, scale: float, *, sharpen: bool) -> Gray:
    """Resize a crop (cubic when enlarging), then unsharp-mask it if asked."""
    image = _resized(crop, scale) if scale != 1.0 else crop
    if not sharpen:
        return image
    try:
        blurred = cv2.GaussianBlur(image, (0, 0), 1.0)
        # 2*image - blurred: edges steepened, flat areas unchanged; saturates at 0 and 255.
        sharpened = cv2.addWeighted(image, 2.0, blurred, -1.0, 0.0)
    except cv2.error as exc:
        raise ImageError(f"cannot sharpen a {image.shape} crop: {exc}") from exc
    return np.ascontiguousarray(sharpened, dtype=np.uint8)


def _resized(image: Gray, scale: float) -> Gray:
    """Scale an image: area averaging to shrink (no aliasing), cubic to enlarge."""
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    try:
        out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    except cv2.error as exc:
        raise ImageError(f"cannot resize a {image.shape} image by {scale}: {exc}") from exc
    return np.ascontiguousarray(out, dtype=np.uint8)


def _placed(code: DecodedCode, scale: float, x0: int, y0: int) -> DecodedCode:
    """Return a code read on a scaled crop with its corners in frame coordinates."""
    return DecodedCode(code.text, code.engine, _to_frame(code.corners, scale, x0, y0))


def _to_frame(corners: Corners, scale: float, x0: int, y0: int) -> Corners:
    """Map points of a crop taken at (x0, y0) and resized by `scale` back to the frame."""
    return tuple((round(x / scale) + x0, round(y / scale) + y0) for x, y in corners)
