"""Decode benchmark: reads and speed on the real photo set, and what a frame without a code costs.

Run as ``python -m bench.decode --out bench/out/decode.json``. Prints one JSON document and
writes it to --out; prints {"skipped": reason} and exits 0 when the photo set is absent.

Four configurations over the same loaded photos, in the same run: pyzbar alone (the
baseline), zxing-cpp alone, the plain chain (zxing-cpp, then pyzbar over the whole frame)
and production (zxing-cpp, then the rescue stage). Then empty frames (flat, textured, and
the negative photos resized) at 640x480 and 1280x720, production against zxing-cpp alone,
timed in alternating pairs so that a busy machine slows both alike; and, for the other
side of the bargain, a frame holding a damaged code that nothing can read, which is
where the rescue stage spends its effort.

`decode_figures` and `empty_frame_figures` give the headline numbers to other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno

from bench.common import report_header, versus, write_report
from gate_agent.errors import ImageError
from gate_agent.hardware.decoder import ENGINES, PLAIN_CHAIN, Engine, QrDecoder
from gate_agent.hardware.images import Gray, load_gray

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qr-photos"

BASELINE = "pyzbar"
ZXING = "zxing-cpp"
PLAIN = "zxing-cpp+pyzbar"
PRODUCTION = "zxing-cpp+rescue"
CONFIGURATIONS: dict[str, tuple[Engine, ...]] = {
    BASELINE: ("pyzbar",),
    ZXING: ("zxing-cpp",),
    PLAIN: PLAIN_CHAIN,
    PRODUCTION: ENGINES,
}
SIZES = ((640, 480), (1280, 720))
#: Paired decodes per empty scene for each unit of --repeat.
EMPTY_CALLS_PER_REPEAT = 40


@dataclass(frozen=True)
class Photo:
    """One photo of the set, loaded once so that only decoding is timed."""

    image: str
    expected: str | None  # None for a negative
    gray: Gray | None  # None when the file cannot be read
    error: str | None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/decode.json"))
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=5, help="decodes per photo (median kept)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    missing = _missing(args.photos)
    if missing:
        report: dict[str, Any] = {
            "benchmark": "decode",
            "skipped": f"photo set not found at {args.photos} (no {', '.join(missing)} manifest)",
        }
    else:
        report = run(args.photos, args.repeat)
    write_report(report, args.out)
    return 0


def run(photos: Path, repeat: int) -> dict[str, Any]:
    """Measure every configuration and the empty-frame cost; return the report."""
    positives = _load(photos, "positives")
    negatives = _load(photos, "negatives")
    results = _configurations(positives, negatives, repeat)
    empty = _empty_frames(repeat, negatives)
    baseline = results[BASELINE]["median_ms"]
    production = results[PRODUCTION]["median_ms"]
    return {
        **report_header("decode", ("opencv-python-headless", "zxing-cpp", "pyzbar", "numpy")),
        "photos": str(photos),
        "repeat": repeat,
        "timing": "decode only (image already loaded as grayscale); per photo the median of "
        "`repeat` decodes; median_ms and p95_ms across positives",
        "match": "exact expected text among the texts returned",
        "baseline": BASELINE,
        "production": PRODUCTION,
        "plain_chain": PLAIN,
        "configurations": results,
        "ratio_median_vs_baseline": round(production / baseline, 3) if baseline else None,
        "read_by_production_only": sorted(
            set(results[PLAIN]["positives_missed"]) - set(results[PRODUCTION]["positives_missed"])
        ),
        "figures": _figures(results),
        "empty_frames": empty,
        "empty_frame_figures": _empty_figures(empty),
        "unreadable_code": _unreadable_frames(repeat),
        "vs_baseline": decode_versus(results, empty),
    }


def decode_versus(results: dict[str, dict[str, Any]], empty: dict[str, Any]) -> list[Any]:
    """Production beside pyzbar alone (reads, speed) and zxing-cpp alone (empty frames)."""
    production, baseline = results[PRODUCTION], results[BASELINE]
    alone = "pyzbar alone on the same photos"
    rows = [
        versus("positives_read", production["positives_exact"], baseline["positives_exact"],
               unit="photos", baseline=alone),
        versus("median_ms", production["median_ms"], baseline["median_ms"], unit="ms",
               baseline=alone),
        versus("p95_ms", production.get("p95_ms"), baseline.get("p95_ms"), unit="ms",
               baseline=alone),
    ]  # fmt: skip
    for size, scenes in empty["scenes"].items():
        for scene in ("flat", "textured"):
            if scene in scenes:
                rows.append(
                    versus(f"empty_frame_{scene}_{size}_ms", scenes[scene]["production_ms"],
                           scenes[scene]["zxing-cpp_ms"], unit="ms",
                           baseline="zxing-cpp alone on the same frame, timed in alternation")
                )  # fmt: skip
    return rows


def decode_figures(photos: Path, repeat: int) -> dict[str, Any]:
    """Production's reads, false reads and median ms, with each engine alone's reads."""
    positives = _load(photos, "positives")
    negatives = _load(photos, "negatives")
    return _figures(_configurations(positives, negatives, repeat))


def empty_frame_figures(repeat: int) -> dict[str, float]:
    """Production's ms on an empty frame at 640x480 and 1280x720, and zxing-cpp's at 1280x720.

    An empty frame's cost is the mean of the flat and the textured scene's medians: a gate
    camera sees both bare walls and busy backgrounds.
    """
    return _empty_figures(_empty_frames(repeat, []))


def _figures(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline figures, under the names the issue fixed."""
    production = results[PRODUCTION]
    return {
        "positives_read": production["positives_exact"],
        "positives_total": production["positives_total"],
        "negatives_false": production["negatives_with_text"],
        "pyzbar_only_read": results[BASELINE]["positives_exact"],
        "zxingcpp_only_read": results[ZXING]["positives_exact"],
        "median_ms": production["median_ms"],
    }


def _empty_figures(empty: dict[str, Any]) -> dict[str, float]:
    """Reduce the empty-frame section to the three headline numbers."""

    def mean_of(size: str, key: str) -> float:
        scenes = empty["scenes"][size]
        return _round((scenes["flat"][key] + scenes["textured"][key]) / 2)

    return {
        "640x480": mean_of("640x480", "production_ms"),
        "1280x720": mean_of("1280x720", "production_ms"),
        "zxingcpp_only_1280x720": mean_of("1280x720", "zxing-cpp_ms"),
    }


def _missing(photos: Path) -> list[str]:
    """The manifests absent from the photo folder."""
    return [k for k in ("positives", "negatives") if not (photos / k / "manifest.json").is_file()]


def _load(photos: Path, kind: str) -> list[Photo]:
    """Load a manifest's photos as grayscale, keeping unreadable ones with their error."""
    manifest = json.loads((photos / kind / "manifest.json").read_text(encoding="utf-8"))
    loaded = []
    for item in manifest["images"]:
        expected = item.get("expected_text") if kind == "positives" else None
        try:
            gray, error = load_gray(photos / kind / item["image"]), None
        except ImageError as exc:
            gray, error = None, str(exc)
        loaded.append(Photo(image=item["image"], expected=expected, gray=gray, error=error))
    return loaded


def _configurations(
    positives: list[Photo], negatives: list[Photo], repeat: int
) -> dict[str, dict[str, Any]]:
    """Measure each configuration over the same photos, interleaved photo by photo.

    Each photo is decoded by every configuration in turn, so that a machine slowed for a
    while slows every configuration alike.
    """
    decoders = {name: QrDecoder(engines) for name, engines in CONFIGURATIONS.items()}
    first = next((p.gray for p in positives if p.gray is not None), None)
    if first is not None:
        for decoder in decoders.values():
            decoder.decode(first)  # warm-up: first calls load code and allocate buffers
    outcomes = {
        kind: [_timed(decoders, photo, repeat) for photo in photos]
        for kind, photos in (("positives", positives), ("negatives", negatives))
    }
    return {
        name: _summary(
            decoder,
            positives,
            negatives,
            [o[name] for o in outcomes["positives"]],
            [o[name] for o in outcomes["negatives"]],
        )
        for name, decoder in decoders.items()
    }


#: What one configuration made of one photo: its texts, median ms (None: unreadable file)
#: and whether the rescue stage ran.
Outcome = tuple[list[str], float | None, bool]


def _timed(decoders: dict[str, QrDecoder], photo: Photo, repeat: int) -> dict[str, Outcome]:
    """Decode a photo `repeat` times with each decoder in turn, after one untimed decode.

    The untimed decode puts each decoder in its steady state on this photo: without it, a
    decoder timed right after pyzbar (which sweeps the caches) would look slower.
    """
    if photo.gray is None:
        return {name: ([], None, False) for name in decoders}
    outcomes: dict[str, Outcome] = {}
    for name, decoder in decoders.items():
        codes, trace = decoder.decode_traced(photo.gray)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            decoder.decode(photo.gray)
            times.append((time.perf_counter() - start) * 1000.0)
        outcomes[name] = ([c.text for c in codes], statistics.median(times), trace.rescued)
    return outcomes


def _summary(
    decoder: QrDecoder,
    positives: list[Photo],
    negatives: list[Photo],
    pos_outcomes: list[Outcome],
    neg_outcomes: list[Outcome],
) -> dict[str, Any]:
    """Count one configuration's exact reads and false reads; summarise its times."""
    exact, missed = 0, []
    for photo, (texts, _, _) in zip(positives, pos_outcomes, strict=True):
        if photo.expected is not None and photo.expected in texts:
            exact += 1
        else:
            missed.append(photo.image)
    false_reads = [
        {"image": photo.image, "texts": texts}
        for photo, (texts, _, _) in zip(negatives, neg_outcomes, strict=True)
        if texts
    ]
    pos_ms = [ms for _, ms, _ in pos_outcomes if ms is not None]
    neg_ms = [ms for _, ms, _ in neg_outcomes if ms is not None]
    return {
        "engines": list(decoder.engines),
        "positives_exact": exact,
        "positives_total": len(positives),
        "positives_missed": missed,
        "positives_rescued": [
            p.image for p, o in zip(positives, pos_outcomes, strict=True) if o[2]
        ],
        "negatives_with_text": len(false_reads),
        "negatives_total": len(negatives),
        "negatives_unreadable": [p.image for p in negatives if p.gray is None],
        "negatives_rescued": [
            p.image for p, o in zip(negatives, neg_outcomes, strict=True) if o[2]
        ],
        "false_reads": false_reads,
        "median_ms": _round(statistics.median(pos_ms)) if pos_ms else None,
        "p95_ms": _round(float(np.percentile(pos_ms, 95))) if pos_ms else None,
        "negatives_median_ms": _round(statistics.median(neg_ms)) if neg_ms else None,
        "negatives_p95_ms": _round(float(np.percentile(neg_ms, 95))) if neg_ms else None,
    }


def _empty_frames(repeat: int, negatives: list[Photo]) -> dict[str, Any]:
    """Production against zxing-cpp alone on frames without a code, at each camera size."""
    zxing, production = QrDecoder(CONFIGURATIONS[ZXING]), QrDecoder(ENGINES)
    calls = repeat * EMPTY_CALLS_PER_REPEAT
    photos = [p.gray for p in negatives if p.gray is not None and min(p.gray.shape) >= 200]
    sizes: dict[str, Any] = {}
    for width, height in SIZES:
        scenes: dict[str, Any] = {
            name: _paired(zxing, production, [frame], calls)
            for name, frame in _scenes(width, height).items()
        }
        if photos:
            resized = [_fit(gray, width, height) for gray in photos]
            # Every negative photo, a few paired calls each: their medians' median.
            scenes["negative_photos"] = _paired(zxing, production, resized, max(2, repeat))
        sizes[f"{width}x{height}"] = scenes
    return {
        "method": "median ms of alternating paired decodes (zxing-cpp alone, production) "
        "of the same frame; ratio = production / zxing-cpp; rescued = frames on which the "
        "rescue stage ran beyond the probe (must be 0)",
        "scenes": sizes,
    }


def _unreadable_frames(repeat: int) -> dict[str, Any]:
    """What a frame costs when it holds a code found but unreadable: the rescue's worst case."""
    zxing, production = QrDecoder(CONFIGURATIONS[ZXING]), QrDecoder(ENGINES)
    text = "GP1:ABCDEFGH:" + "A" * 150 + ":" + "B" * 103  # a pass's size: version 10-M
    modules = np.array(segno.make(text, error="m").matrix, dtype=np.uint8)
    # An eighth of the modules flipped, finder patterns spared: located, never decoded.
    flips = np.random.default_rng(0).random(modules.shape) < 0.125
    flips[:9, :9] = flips[:9, -9:] = flips[-9:, :9] = False
    code = np.where(np.pad(modules ^ flips, 4) == 1, 0, 255).astype(np.uint8)
    sizes = {}
    for width, height in SIZES:
        for share in (0.25, 0.6):
            side = round(height * share)
            frame = np.full((height, width), 200, dtype=np.uint8)
            frame[40 : 40 + side, 80 : 80 + side] = cv2.resize(
                code, (side, side), interpolation=cv2.INTER_AREA
            )
            sizes[f"{width}x{height}, code {side} px"] = _paired(
                zxing, production, [frame], max(2, repeat * 2)
            )
    return {"method": "as empty_frames; rescued must be 1 (the rescue ran)", "scenes": sizes}


def _paired(
    zxing: QrDecoder, production: QrDecoder, frames: list[Gray], calls: int
) -> dict[str, Any]:
    """Time both decoders on each frame in alternating order; medians and their ratio."""
    zx_medians, prod_medians, rescued = [], [], 0
    for frame in frames:
        zxing.decode(frame)  # warm-up, both
        rescued += production.decode_traced(frame)[1].rescued
        times: dict[int, list[float]] = {id(zxing): [], id(production): []}
        for i in range(calls):
            for decoder in (zxing, production) if i % 2 == 0 else (production, zxing):
                start = time.perf_counter()
                decoder.decode(frame)
                times[id(decoder)].append((time.perf_counter() - start) * 1000.0)
        zx_ms, prod_ms = times[id(zxing)], times[id(production)]
        zx_medians.append(statistics.median(zx_ms))
        prod_medians.append(statistics.median(prod_ms))
    zx, prod = statistics.median(zx_medians), statistics.median(prod_medians)
    return {
        "frames": len(frames),
        "zxing-cpp_ms": _round(zx),
        "production_ms": _round(prod),
        "ratio": round(prod / zx, 3),
        "rescued": rescued,
    }


def _scenes(width: int, height: int) -> dict[str, Gray]:
    """Rendered frames without a code: a flat grey wall, and a textured, lit background."""
    rng = np.random.default_rng(width * height)
    y, x = np.mgrid[0:height, 0:width]
    # Out-of-focus blobs over a lighting gradient, with sensor noise on top.
    coarse = rng.normal(0, 40, size=(height // 16 + 1, width // 16 + 1)).astype(np.float32)
    blobs = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    textured = 60 + 120 * x / width + 20 * y / height + blobs + rng.normal(0, 3, (height, width))
    return {
        "flat": np.full((height, width), 128, dtype=np.uint8),
        "textured": np.clip(textured, 0, 255).astype(np.uint8),
    }


def _fit(gray: Gray, width: int, height: int) -> Gray:
    """Resize a photo to a camera frame's size, as the camera would have framed it."""
    return np.ascontiguousarray(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA))


def _round(ms: float) -> float:
    """Round a time in ms to the microsecond, which is all a perf_counter median can tell."""
    return round(ms, 3)


if __name__ == "__main__":
    raise SystemExit(main())
