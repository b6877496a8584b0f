"""Traces on the SQLite stream store: indexed queries against a full scan, and what the
trace indexes cost at ingest.

Run as ``python -m bench.trace --out bench/out/trace.json``. A busy compound: ``--gates``
gates, ``--count`` entries each, one every ``--spacing-seconds``, passes of ``--passes``
residents in households of two. The baseline for a trace is the full scan an admin had
before (``gate-sync pull`` filtered by gate and time); the baseline for ingest is the
same batches into a store whose trace indexes were dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bundle import all_entries, timed_ms
from bench.common import report_header, versus, write_report
from bench.ledger import draft
from gate_agent.ledger import Ledger
from sync import pull, trace
from sync.protocol import MAX_BATCH_ENTRIES, Batch
from sync.store import SqliteStreamStore

T0 = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TRACE_INDEXES = ("entries_gate_time", "entries_time", "entries_pass", "entries_household")


def gate_entries(gate: str, count: int, passes: int, spacing: int) -> tuple[str, list[Any]]:
    """A gate's ledger of ``count`` entries (a pass each, round the residents); wire form."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp,
        Ledger.open(Path(tmp) / "ledger.sqlite3", gate_id=gate) as ledger,
    ):
        for i in range(count):
            resident = (i * 7 + len(gate)) % passes
            ledger.append(
                replace(
                    draft(i),
                    wall_time=T0 + timedelta(seconds=i * spacing),
                    pass_id=f"P{resident:09d}",
                    household_id=f"H{resident // 2:06d}",
                )
            )
        return ledger.stream_id, all_entries(ledger)


def ingest(path: Path, ledgers: dict[str, tuple[str, list[Any]]], *, indexes: bool) -> float:
    """Ingest every gate's entries in full batches; the time it took, in ms."""
    store = SqliteStreamStore(path)
    for gate in ledgers:
        store.add_enrol_code(gate, hashlib.sha256(gate.encode()).hexdigest(), NOW)
    if not indexes:
        for name in TRACE_INDEXES:  # opening the store created them
            store._db.execute(f"DROP INDEX {name}")

    def run() -> None:
        for gate, (stream, entries) in ledgers.items():
            for start in range(0, len(entries), MAX_BATCH_ENTRIES):
                chunk = entries[start : start + MAX_BATCH_ENTRIES]
                batch = Batch(
                    first_seq=chunk[0]["seq"], entries=chunk, sent_at=NOW,
                    sent_monotonic_ns=0, boot_id="b", clock_synced=True, backlog=0,
                )  # fmt: skip
                store.ingest(gate, stream, batch, now=NOW, list_versions={})

    try:
        elapsed, _ = timed_ms(run)
    finally:
        store.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.trace", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/trace.json"))
    parser.add_argument("--gates", type=int, default=4)
    parser.add_argument("--count", type=int, default=25_000, help="entries per gate")
    parser.add_argument("--passes", type=int, default=2000, help="residents with passes")
    parser.add_argument("--spacing-seconds", type=int, default=20)
    args = parser.parse_args(argv)
    gates = [f"G{n}" for n in range(args.gates)]
    ledgers = {g: gate_entries(g, args.count, args.passes, args.spacing_seconds) for g in gates}
    total = args.gates * args.count
    hour = (T0 + timedelta(seconds=args.count * args.spacing_seconds // 2)).replace(minute=0)
    with tempfile.TemporaryDirectory(prefix="bench-trace-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        plain_ms = ingest(folder / "plain.sqlite3", ledgers, indexes=False)
        indexed_ms = ingest(folder / "central.sqlite3", ledgers, indexes=True)
        with SqliteStreamStore(folder / "central.sqlite3") as store:
            one_hour = (hour, hour + timedelta(hours=1))
            gate_ms, gate_rows = timed_ms(
                lambda: list(trace.gate_rows(store, [gates[0]], *one_hour))
            )
            wanted = pull.PullFilter(since=one_hour[0], until=one_hour[1], gate_id=gates[0])
            scan_ms, scan_rows = timed_ms(lambda: list(pull.rows(store, wanted)))
            pass_ms, pass_rows = timed_ms(lambda: list(trace.pass_rows(store, "P000000001")))
            pass_scan_ms, _ = timed_ms(
                lambda: [
                    r for r in pull.rows(store, pull.PullFilter()) if r["pass_id"] == "P000000001"
                ]
            )
            inside_ms, inside = timed_ms(lambda: trace.inside_rows(store, gates, one_hour[1]))
    report = {
        **report_header("trace"),
        "entries": total,
        "gates": args.gates,
        "baseline": "full_scan_ms (pull filtered by gate and hour)",
        "gate_hour_rows": len(gate_rows),
        "gate_hour_trace_ms": round(gate_ms, 3),
        "full_scan_ms": round(scan_ms, 3),
        "ratio_trace_vs_scan": round(gate_ms / scan_ms, 4) if scan_ms else None,
        "same_rows_as_scan": sorted(r["seq"] for r in gate_rows)
        == sorted(r["seq"] for r in scan_rows),
        "pass_rows": len(pass_rows),
        "pass_trace_ms": round(pass_ms, 3),
        "inside_passes": len(inside),
        "inside_ms": round(inside_ms, 3),
        "ingest_ms_per_1000_without_trace_indexes": round(plain_ms * 1000 / total, 3),
        "ingest_ms_per_1000_with_trace_indexes": round(indexed_ms * 1000 / total, 3),
        "ratio_ingest_with_vs_without": round(indexed_ms / plain_ms, 3) if plain_ms else None,
        "pass_scan_ms": round(pass_scan_ms, 3),
        "vs_baseline": [
            versus(
                "gate_hour_trace_ms",
                round(gate_ms, 3),
                round(scan_ms, 3),
                unit="ms",
                baseline="full_scan_ms: pull filtered by gate and hour",
            ),
            versus(
                "pass_trace_ms",
                round(pass_ms, 3),
                round(pass_scan_ms, 3),
                unit="ms",
                baseline="pass_scan_ms: every entry pulled, kept by pass id in Python",
            ),
            versus(
                "ingest_ms_per_1000_with_trace_indexes",
                round(indexed_ms * 1000 / total, 3),
                round(plain_ms * 1000 / total, 3),
                unit="ms",
                baseline="the same batches into a store without the trace indexes",
            ),
        ],
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
