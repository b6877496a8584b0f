"""Ledger append and verification cost, against a bare SQLite insert with the same durability.

Run as ``python -m bench.ledger --out bench/out/ledger.json``. Both sides commit
one row per transaction in WAL mode with synchronous=FULL in the same folder in
the same run, so the ratio shows what validation, the hash chain and the
append-only triggers add to the fsync every durable write pays for.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import report_header, versus, write_report
from gate_agent.ledger import EntryDraft, Ledger, verify_ledger_file


def draft(i: int) -> EntryDraft:
    """A typical screened entry."""
    return EntryDraft(
        direction="in" if i % 2 else "out",
        outcome="allow",
        reason="ok",
        wall_time=datetime.now(UTC),
        monotonic_ns=time.monotonic_ns(),
        boot_id="0f4c3d1e-9b1a-4c59-8d47-1d6a1c2e3f40",
        clock_synced=True,
        pass_id=f"P{i:09d}",
        pass_kind="resident",
        household_id="LGQ012-H0301",
        temperature_celsius=36.6,
        temperature_raw=(36.5, 36.6, 36.6, 36.7),
        ambient_celsius=4.5,
        temperature_model="v1",
        temperature_source="sensor",
        next_step="let_through",
    )


def bare_inserts(path: Path, count: int) -> list[float]:
    """Per-row times (ms) of one-row transactions on a plain table, WAL + synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        times = []
        for i in range(count):
            body = repr(draft(i))
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t(body) VALUES (?)", (body,))
            conn.execute("COMMIT")
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        conn.close()


def ledger_appends(path: Path, count: int) -> list[float]:
    """Per-entry times (ms) of Ledger.append."""
    with Ledger.open(path, gate_id="BENCH-GATE") as ledger:
        times = []
        for i in range(count):
            entry = draft(i)
            start = time.perf_counter()
            ledger.append(entry)
            times.append((time.perf_counter() - start) * 1000)
        return times


def bare_read_ms(path: Path) -> float:
    """The verify baseline: ms to read every row of every table of the file, checking nothing."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        start = time.perf_counter()
        for table in tables:
            for _ in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the file
                pass
        return (time.perf_counter() - start) * 1000
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/ledger.json"))
    parser.add_argument("--count", type=int, default=400, help="rows written by each side")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        bare = bare_inserts(folder / "bare.sqlite3", args.count)
        appends = ledger_appends(folder / "ledger.sqlite3", args.count)
        start = time.perf_counter()
        report_ok = verify_ledger_file(folder / "ledger.sqlite3").ok
        verify_ms = (time.perf_counter() - start) * 1000
        read_ms = bare_read_ms(folder / "ledger.sqlite3")
    base, ours = statistics.median(bare), statistics.median(appends)
    report = {
        **report_header("ledger", ("sqlite-utils",)),
        "sqlite": sqlite3.sqlite_version,
        "count": args.count,
        "baseline": "bare_insert_median_ms",
        "bare_insert_median_ms": round(base, 3),
        "bare_insert_p95_ms": round(_p95(bare), 3),
        "append_median_ms": round(ours, 3),
        "append_p95_ms": round(_p95(appends), 3),
        "ratio_append_vs_baseline": round(ours / base, 3),
        "verify_ms_per_1000_entries": round(verify_ms / args.count * 1000, 3),
        "verify_ok": report_ok,
        "bare_read_ms_per_1000_entries": round(read_ms / args.count * 1000, 3),
        "vs_baseline": [
            versus(
                "append_median_ms",
                round(ours, 3),
                round(base, 3),
                unit="ms",
                baseline="bare_insert_median_ms: a one-row durable insert on a plain table",
            ),
            versus(
                "append_p95_ms",
                round(_p95(appends), 3),
                round(_p95(bare), 3),
                unit="ms",
                baseline="bare_insert_p95_ms: the same, its 95th percentile",
            ),
            versus(
                "verify_ms_per_1000_entries",
                round(verify_ms / args.count * 1000, 3),
                round(read_ms / args.count * 1000, 3),
                unit="ms",
                baseline="bare_read_ms_per_1000_entries: every row of the same file read "
                "by a plain SELECT, nothing checked",
            ),
        ],
    }
    write_report(report, args.out)
    return 0


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


if __name__ == "__main__":
    raise SystemExit(main())
