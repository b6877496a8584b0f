"""The compound lists on the SQLite stream store: what one lists request costs, against
reading the compound's entries of the windows, and what their indexes cost at ingest.

Run as ``python -m bench.compound --out bench/out/compound.json``. ``--compounds``
compounds of ``--gates`` gates each, ``--count`` entries a gate, one every
``--spacing-seconds`` up to the moment of the request (alternately in and out, residents
mostly, every 50th a visitor, every 500th an isolated household's refused exit). The
baseline for a request is what it would read without the indexes: every entry of the
compound's gates in the 7-day visitor window (``entries_matching`` by gate and time,
then kept by content). The baseline for ingest is the same batches into a store without
the two compound indexes.
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
from sync import compound_lists, trace
from sync.protocol import MAX_BATCH_ENTRIES, Batch
from sync.store import EntryQuery, RecentQuery, SqliteStreamStore

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
COMPOUND_INDEXES = ("entries_gate_reason", "entries_gate_passage")
REPEATS = 20


def gate_entries(gate: str, count: int, spacing: int) -> tuple[str, list[Any]]:
    """A gate's ledger of ``count`` entries ending at NOW; its stream id and wire entries."""
    start = NOW - timedelta(seconds=count * spacing)
    with (
        tempfile.TemporaryDirectory(prefix="bench-compound-") as tmp,
        Ledger.open(Path(tmp) / "ledger.sqlite3", gate_id=gate) as ledger,
    ):
        for i in range(count):
            resident = (i * 7 + len(gate)) % 2000
            entry = replace(
                draft(i),
                wall_time=start + timedelta(seconds=i * spacing),
                pass_id=f"P{resident:09d}",
                household_id=f"H{resident // 2:06d}",
            )
            if i % 50 == 0:
                entry = replace(entry, pass_kind="visitor", direction="in")
            if i % 500 == 0:
                entry = replace(
                    entry, direction="out", outcome="deny", reason="quarantined_exit", alert=True
                )
            ledger.append(entry)
        return ledger.stream_id, all_entries(ledger)


def ingest(path: Path, ledgers: dict[str, tuple[str, list[Any]]], *, indexes: bool) -> float:
    """Ingest every gate's entries in full batches; the time it took, in ms."""
    store = SqliteStreamStore(path)
    for gate in ledgers:
        store.add_enrol_code(gate, hashlib.sha256(gate.encode()).hexdigest(), NOW)
    if not indexes:
        for name in COMPOUND_INDEXES:  # opening the store created them
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


def best_ms(fn: Any) -> tuple[float, Any]:
    """The fastest of REPEATS runs (a warm cache, as a server answering every minute has)."""
    runs = [timed_ms(fn) for _ in range(REPEATS)]
    return min(ms for ms, _ in runs), runs[0][1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.compound", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/compound.json"))
    parser.add_argument("--compounds", type=int, default=4)
    parser.add_argument("--gates", type=int, default=3, help="gates per compound")
    parser.add_argument("--count", type=int, default=10_000, help="entries per gate")
    parser.add_argument("--spacing-seconds", type=int, default=90)
    args = parser.parse_args(argv)
    places = {f"C{c}-G{g}": f"C{c}" for c in range(args.compounds) for g in range(args.gates)}
    ledgers = {gate: gate_entries(gate, args.count, args.spacing_seconds) for gate in places}
    total = len(places) * args.count
    with tempfile.TemporaryDirectory(prefix="bench-compound-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        plain_ms = ingest(folder / "plain.sqlite3", ledgers, indexes=False)
        indexed_ms = ingest(folder / "central.sqlite3", ledgers, indexes=True)
        with SqliteStreamStore(folder / "central.sqlite3") as store:
            for gate, compound in places.items():
                store.set_place(gate, compound, None)
            gates = store.compound_gates("C0")

            def request() -> tuple[int, int]:
                # What a lists request reads of the streams (the alerts' pass labels are
                # one more lookup of at most 50 pass ids in the issuer store).
                alerts = store.recent_entries(
                    RecentQuery(
                        tuple(gates),
                        NOW - compound_lists.ALERT_WINDOW,
                        reasons=compound_lists.ALERT_REASONS,
                    ),
                    compound_lists.MAX_ALERTS,
                )
                _, passages = compound_lists.passages(store, gates, "1/2", NOW)
                return len(alerts), len(passages)

            request_ms, (alerts, passages) = best_ms(request)

            def scan() -> int:
                query = EntryQuery(gate_ids=tuple(gates), since=NOW - compound_lists.VISITOR_WINDOW)
                return len(trace.matching(store, query))

            scan_ms, scanned = best_ms(scan)
    report = {
        **report_header("compound"),
        "entries": total,
        "gates": len(places),
        "compound_gates": len(gates),
        "baseline": "scan_ms (the compound's entries of the 7-day window, by gate and time)",
        "alerts": alerts,
        "passages": passages,
        "entries_in_window": scanned,
        "lists_request_ms": round(request_ms, 3),
        "scan_ms": round(scan_ms, 3),
        "ratio_request_vs_scan": round(request_ms / scan_ms, 4) if scan_ms else None,
        "ingest_ms_per_1000_without_compound_indexes": round(plain_ms * 1000 / total, 3),
        "ingest_ms_per_1000_with_compound_indexes": round(indexed_ms * 1000 / total, 3),
        "ratio_ingest_with_vs_without": round(indexed_ms / plain_ms, 3) if plain_ms else None,
        "vs_baseline": [
            versus(
                "lists_request_ms",
                round(request_ms, 3),
                round(scan_ms, 3),
                unit="ms",
                baseline="scan_ms: the compound's entries of the 7-day window, by gate and time",
            ),
            versus(
                "ingest_ms_per_1000_with_compound_indexes",
                round(indexed_ms * 1000 / total, 3),
                round(plain_ms * 1000 / total, 3),
                unit="ms",
                baseline="the same batches into a store without the compound indexes",
            ),
        ],
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
