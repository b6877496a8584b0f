"""USB bundles and pulls: export, import and CSV pull cost, against plain batch ingest.

Run as ``python -m bench.bundle --out bench/out/bundle.json``. The baseline ingests
the same entries through ``StreamStore.ingest`` in batches of 500 (an upload without
HTTP); the import adds reading, inflating and verifying the file (HMAC and chain) on
top of exactly that. Sizes say how many days of a busy gate fit on a stick.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.common import report_header, versus, write_report
from bench.ledger import draft
from gate_agent.bundle_export import export_bundle
from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.ledger.wire import wire_entries
from sync import bundle_import, pull
from sync.protocol import MAX_BATCH_ENTRIES, Batch
from sync.store import SqliteStreamStore

GATE = "BENCH-GATE"
TOKEN = "bench-token-0123456789abcdefghijklmnop"
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T = TypeVar("T")
INGEST = "batch_ingest_ms_per_1000: the same entries through StreamStore.ingest, 500 a batch"


def centre(path: Path) -> SqliteStreamStore:
    """A central store with the bench gate enrolled."""
    store = SqliteStreamStore(path)
    code = hashlib.sha256(b"code").hexdigest()
    store.add_enrol_code(GATE, code, NOW + timedelta(hours=1))
    store.enrol(GATE, code, hashlib.sha256(TOKEN.encode()).hexdigest(), NOW)
    return store


def timed_ms(fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn()`` once; its wall time in ms and its result."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def all_entries(ledger: Ledger) -> list[dict[str, Any]]:
    """Every entry of the ledger in wire form."""
    entries: list[dict[str, Any]] = []
    while page := wire_entries(ledger, len(entries), 10_000):
        entries.extend(page)
    return entries


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.bundle", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/bundle.json"))
    parser.add_argument("--count", type=int, default=3000, help="entries in the ledger")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bundle-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        with Ledger.open(folder / "ledger.sqlite3", gate_id=GATE) as ledger:
            for i in range(args.count):
                ledger.append(draft(i))
            stream = ledger.stream_id
            read_ms, entries = timed_ms(lambda: all_entries(ledger))
            path = folder / "stick.gsb"
            export_ms, _ = timed_ms(
                lambda: export_bundle(ledger, path, token=TOKEN, clock=FakeClock(NOW))
            )
        size = path.stat().st_size
        json_bytes = sum(len(json.dumps(e, separators=(",", ":")).encode()) for e in entries)
        with centre(folder / "baseline.sqlite3") as store:

            def ingest_batches() -> None:
                for start in range(0, len(entries), MAX_BATCH_ENTRIES):
                    chunk = entries[start : start + MAX_BATCH_ENTRIES]
                    batch = Batch(
                        first_seq=chunk[0]["seq"], entries=chunk, sent_at=NOW,
                        sent_monotonic_ns=0, boot_id="b", clock_synced=True, backlog=0,
                    )  # fmt: skip
                    store.ingest(GATE, stream, batch, now=NOW, list_versions={})

            baseline_ms, _ = timed_ms(ingest_batches)
        with centre(folder / "central.sqlite3") as store:

            def import_once() -> bundle_import.ImportSummary:
                loaded = bundle_import.load(path, store)
                return bundle_import.ingest(loaded, store, now=NOW)

            import_ms, first = timed_ms(import_once)
            again_ms, second = timed_ms(import_once)
            rows_ms, _ = timed_ms(lambda: sum(1 for _ in pull.rows(store, pull.PullFilter())))
            csv_ms, _ = timed_ms(
                lambda: sum(
                    len(c) for c in pull.text_chunks(pull.rows(store, pull.PullFilter()), "csv")
                )
            )
    per_1000 = 1000 / args.count
    report = {
        **report_header("bundle"),
        "count": args.count,
        "baseline": "batch_ingest_ms_per_1000",
        "bundle_bytes_per_entry": round(size / args.count, 1),
        "export_ms_per_1000": round(export_ms * per_1000, 3),
        "batch_ingest_ms_per_1000": round(baseline_ms * per_1000, 3),
        "import_ms_per_1000": round(import_ms * per_1000, 3),
        "reimport_ms_per_1000": round(again_ms * per_1000, 3),
        "ratio_import_vs_baseline": round(import_ms / baseline_ms, 3) if baseline_ms else None,
        "csv_pull_ms_per_1000": round(csv_ms * per_1000, 3),
        "stored_new": first.stored_new,
        "repeats_on_reimport": second.repeats,
        "read_entries_ms_per_1000": round(read_ms * per_1000, 3),
        "pull_rows_ms_per_1000": round(rows_ms * per_1000, 3),
        "json_bytes_per_entry": round(json_bytes / args.count, 1),
        "vs_baseline": [
            versus(
                "import_ms_per_1000",
                round(import_ms * per_1000, 3),
                round(baseline_ms * per_1000, 3),
                unit="ms",
                baseline=INGEST,
            ),
            versus(
                "reimport_ms_per_1000",
                round(again_ms * per_1000, 3),
                round(baseline_ms * per_1000, 3),
                unit="ms",
                baseline=INGEST,
            ),
            versus(
                "export_ms_per_1000",
                round(export_ms * per_1000, 3),
                round(read_ms * per_1000, 3),
                unit="ms",
                baseline="read_entries_ms_per_1000: reading the same entries in wire form",
            ),
            versus(
                "csv_pull_ms_per_1000",
                round(csv_ms * per_1000, 3),
                round(rows_ms * per_1000, 3),
                unit="ms",
                baseline="pull_rows_ms_per_1000: the same rows from the store, not formatted",
            ),
            versus(
                "bundle_bytes_per_entry",
                round(size / args.count, 1),
                round(json_bytes / args.count, 1),
                unit="bytes",
                baseline="json_bytes_per_entry: the entries as compact JSON, uncompressed",
            ),
        ],
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
