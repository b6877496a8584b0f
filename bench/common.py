"""What every benchmark shares: timing, the environment it ran in, and writing its JSON."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def median_us(fn: Callable[[], object], *, repeat: int, number: int) -> float:
    """Median over `repeat` rounds of the mean time of `number` calls, in microseconds."""
    fn()  # warm-up: first calls load code and allocate
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number * 1e6)
    return round(statistics.median(rounds), 3)


def report_header(name: str, distributions: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields every report starts with: its name, when, and where (with these versions)."""
    return {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(*distributions),
    }


def write_report(report: dict[str, Any], out: Path) -> None:
    """Print the report as JSON and write it to `out`."""
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")


def environment(*distributions: str) -> dict[str, Any]:
    """Describe where the numbers were measured; they mean little without it."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "git_commit": git_commit(),
        **{name: version(name) for name in distributions},
    }


def versus(
    figure: str, value: float | None, baseline_value: float | None, *, unit: str, baseline: str
) -> dict[str, Any]:
    """One figure beside its baseline (measured in the same run) and their ratio.

    Every benchmark lists these under ``vs_baseline``; ``bench.report`` turns them into
    its tables. ``ratio`` is value / baseline_value (None when either is missing or the
    baseline is zero); ``baseline`` says in words what the baseline is.
    """
    ratio = round(value / baseline_value, 4) if value is not None and baseline_value else None
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "baseline": baseline,
    }


def git_commit() -> str:
    """The commit the benchmark ran on (with "-dirty" when the tree has changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def version(distribution: str) -> str:
    """An installed distribution's version, or 'unknown'."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux, the Pi included), else platform's guess."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for key in ("model name", "Model", "Hardware"):
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or "unknown"
