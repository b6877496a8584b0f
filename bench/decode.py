"""Decode benchmark over the real photo set: pyzbar baseline, zxing-cpp, and the production chain.

Run as ``python -m bench.decode --out bench/out/decode.json``. Prints one JSON document and
writes it to --out; prints {"skipped": reason} and exits 0 when the photo set is absent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import report_header, write_report
from gate_agent.errors import ImageError
from gate_agent.hardware.decoder import ENGINES, Engine, QrDecoder
from gate_agent.hardware.images import Gray, load_gray

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qr-photos"

BASELINE = "pyzbar"
PRODUCTION = "zxing-cpp+pyzbar"
CONFIGURATIONS: dict[str, tuple[Engine, ...]] = {
    BASELINE: ("pyzbar",),
    "zxing-cpp": ("zxing-cpp",),
    PRODUCTION: ENGINES,
}


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

    kinds = ("positives", "negatives")
    missing = [k for k in kinds if not (args.photos / k / "manifest.json").is_file()]
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
    """Measure every configuration over the same loaded photos and return the report."""
    positives = _load(photos, "positives")
    negatives = _load(photos, "negatives")
    results = {
        name: _measure(QrDecoder(engines), positives, negatives, repeat)
        for name, engines in CONFIGURATIONS.items()
    }
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
        "configurations": results,
        "ratio_median_vs_baseline": round(production / baseline, 3) if baseline else None,
    }


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


def _measure(
    decoder: QrDecoder, positives: list[Photo], negatives: list[Photo], repeat: int
) -> dict[str, Any]:
    """Decode every photo `repeat` times with one decoder; count exact reads and false reads."""
    first = next((p.gray for p in positives if p.gray is not None), None)
    if first is not None:
        decoder.decode(first)  # warm-up: first calls load code and allocate buffers

    exact, missed, pos_ms = 0, [], []
    for photo in positives:
        texts, ms = _timed(decoder, photo, repeat)
        if ms is not None:
            pos_ms.append(ms)
        if photo.expected is not None and photo.expected in texts:
            exact += 1
        else:
            missed.append(photo.image)
    false_reads, neg_ms = [], []
    for photo in negatives:
        texts, ms = _timed(decoder, photo, repeat)
        if ms is not None:
            neg_ms.append(ms)
        if texts:
            false_reads.append({"image": photo.image, "texts": texts})
    return {
        "engines": list(decoder.engines),
        "positives_exact": exact,
        "positives_total": len(positives),
        "positives_missed": missed,
        "negatives_with_text": len(false_reads),
        "negatives_total": len(negatives),
        "negatives_unreadable": [p.image for p in negatives if p.gray is None],
        "false_reads": false_reads,
        "median_ms": _round(statistics.median(pos_ms)) if pos_ms else None,
        "p95_ms": _round(float(np.percentile(pos_ms, 95))) if pos_ms else None,
        "negatives_median_ms": _round(statistics.median(neg_ms)) if neg_ms else None,
        "negatives_p95_ms": _round(float(np.percentile(neg_ms, 95))) if neg_ms else None,
    }


def _timed(decoder: QrDecoder, photo: Photo, repeat: int) -> tuple[list[str], float | None]:
    """Return the texts of a photo and the median decode time in ms (None if unreadable)."""
    if photo.gray is None:
        return [], None
    times = []
    texts: list[str] = []
    for _ in range(repeat):
        start = time.perf_counter()
        codes = decoder.decode(photo.gray)
        times.append((time.perf_counter() - start) * 1000.0)
        texts = [c.text for c in codes]
    return texts, statistics.median(times)


def _round(ms: float) -> float:
    """Round a time in ms to the microsecond, which is all a perf_counter median can tell."""
    return round(ms, 3)


if __name__ == "__main__":
    raise SystemExit(main())
