"""Sync at scale: a 100,000-entry backlog draining, raw ingest, and 200 gates at once.

Run as ``python -m bench.sync --out bench/out/sync.json``. Every figure is taken on
real parts: a real gate ledger drained by the real ``Uploader`` over loopback into a
``gate-sync serve`` process; the store's own ``ingest`` for rows per second; and 200
enrolled gates, each with a real ledger stream, posting gzip batches at the same
moment to one ``gate-sync serve``. PostgreSQL figures come from a server started from
the installed binaries for the run (``bench.pg``); without them they are null, with
the reason in ``postgres_skipped``.

Report keys (others read them): ``backlog_100k_seconds`` {sqlite, postgres},
``ingest_rows_per_second`` {sqlite, postgres}, ``gates_200`` {failed_uploads,
p99_batch_ms, ...}. The baseline is ``bare_insert_rows_per_second``: the same rows
inserted by plain executemany into a table of the same shape on the same SQLite,
one transaction per 500, measured in the same run. ``vs_baseline`` puts each figure
beside the baseline that fits it (the store's own ingest for a drain, one gate alone
for the 200), and ``backlog_drain_curve`` {store: {seconds, backlog}} is the drain,
batch by batch, for the report's plot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.centre import (
    NOW,
    build_ledger,
    enrol,
    ledger_wire,
    make_centre_key,
    pg_store,
    serving,
)
from bench.common import report_header, versus, write_report
from bench.fleet import FleetGate, fleet
from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, UplinkSettings, Uploader
from sync.protocol import MAX_BATCH_ENTRIES, Batch
from sync.store import SqliteStreamStore, StreamStore

ALONE_ROUNDS = 20  # batches the lone gate (the fleet's baseline) posts, at least
Opener = Callable[[], StreamStore]


# -- the three measurements ------------------------------------------------------------------


def backlog_seconds(
    ledger_path: Path, gate_id: str, opener: Opener, url_of: Callable[[], Any]
) -> float:
    """Seconds for the real uploader to drain the whole ledger into a serving centre."""
    return drain(ledger_path, gate_id, opener, url_of)[0]


def drain(
    ledger_path: Path, gate_id: str, opener: Opener, url_of: Callable[[], Any]
) -> tuple[float, dict[str, list[float]]]:
    """Drain the whole ledger into a serving centre with the real uploader.

    Returns the seconds it took and the drain curve: after each batch, the seconds since
    the start and the entries still to send. The loop is ``Uploader.drain``'s own (one
    ``step`` after another, sleeping out a RETRY); reading the backlog after each batch
    (one small query of the gate's ledger) is inside the time.
    """
    with contextlib.closing(opener()) as store:
        token = enrol(store, gate_id)
    with url_of() as url, Ledger.open(ledger_path, gate_id=gate_id) as ledger:
        uploader = Uploader(
            ledger,
            base_url=url,
            gate_id=gate_id,
            token=token,
            clock=FakeClock(NOW),
            settings=UplinkSettings(timeout_s=60),
        )
        with uploader:
            curve: dict[str, list[float]] = {
                "seconds": [0.0],
                "backlog": [uploader.status().backlog],
            }
            start = time.perf_counter()
            while True:
                step, delay = uploader.step()
                if step in (Step.IDLE, Step.ALARM):
                    break
                if step is Step.RETRY:
                    time.sleep(delay)
                curve["seconds"].append(round(time.perf_counter() - start, 4))
                curve["backlog"].append(ledger.sync.status().backlog)
            seconds = time.perf_counter() - start
            status = uploader.status()
    if step is not Step.IDLE or status.backlog != 0:
        raise RuntimeError(f"backlog did not drain: {step}, backlog {status.backlog}")
    return seconds, curve


def batches_of(entries: list[dict[str, Any]], size: int) -> list[Batch]:
    """Contiguous batches of ``size`` entries, as an uploader would send them."""
    return [
        Batch(
            first_seq=entries[i]["seq"],
            entries=entries[i : i + size],
            sent_at=NOW,
            sent_monotonic_ns=0,
            boot_id="bench",
            clock_synced=True,
            backlog=0,
        )
        for i in range(0, len(entries), size)
    ]


def ingest_rows_per_second(
    entries: list[dict[str, Any]], stream: str, gate_id: str, opener: Opener
) -> float:
    """Rows per second through the store's own ingest, in batches of 500."""
    batches = batches_of(entries, MAX_BATCH_ENTRIES)
    with contextlib.closing(opener()) as store:
        enrol(store, gate_id)
        start = time.perf_counter()
        for batch in batches:
            store.ingest(gate_id, stream, batch, now=NOW, list_versions={})
        seconds = time.perf_counter() - start
        if store.stored_through(gate_id, stream) != len(entries):
            raise RuntimeError("ingest did not store every entry")
    return len(entries) / seconds


def _ingest_worker(
    opener: Opener, gate_id: str, stream: str, entries: list[dict[str, Any]], start: Any
) -> None:
    batches = batches_of(entries, MAX_BATCH_ENTRIES)
    with contextlib.closing(opener()) as store:
        start.wait()
        for batch in batches:
            store.ingest(gate_id, stream, batch, now=NOW, list_versions={})


def parallel_rows_per_second(
    opener: Opener, streams: list[tuple[str, str, list[dict[str, Any]]]]
) -> float:
    """Rows per second of several processes ingesting one gate's stream each, together.

    Stands for several ``gate-sync serve`` replicas over one database.
    """
    with contextlib.closing(opener()) as store:
        for gate_id, _, _ in streams:
            enrol(store, gate_id)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(len(streams) + 1)
    workers = [
        context.Process(target=_ingest_worker, args=(opener, gate_id, stream, entries, start))
        for gate_id, stream, entries in streams
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    if any(worker.exitcode != 0 for worker in workers):
        raise RuntimeError("an ingest process failed")
    return sum(len(entries) for _, _, entries in streams) / seconds


def bare_insert_rows_per_second(path: Path, entries: list[dict[str, Any]]) -> float:
    """The baseline: the same rows by executemany, WAL + synchronous=FULL, 500 a commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, gate_id TEXT, stream_id TEXT,"
            " seq INTEGER, hash TEXT, content TEXT, UNIQUE (gate_id, stream_id, seq))"
        )
        rows = [
            ("g", e["stream_id"], e["seq"], e["hash"], json.dumps(e, sort_keys=True))
            for e in entries
        ]
        start = time.perf_counter()
        for i in range(0, len(rows), MAX_BATCH_ENTRIES):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO entries(gate_id, stream_id, seq, hash, content) VALUES (?,?,?,?,?)",
                rows[i : i + MAX_BATCH_ENTRIES],
            )
            conn.execute("COMMIT")
        return len(rows) / (time.perf_counter() - start)
    finally:
        conn.close()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/sync.json"))
    parser.add_argument("--backlog", type=int, default=100_000, help="entries in the backlog")
    parser.add_argument("--gates", type=int, default=200, help="gates uploading at once")
    parser.add_argument("--rounds", type=int, default=3, help="batches each gate sends")
    parser.add_argument("--batch", type=int, default=20, help="entries per fleet batch")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="gate-sync serve --workers for the 200 gates (1: SQLite's writers queue anyway)",
    )  # fmt: skip
    parser.add_argument(
        "--postgres", choices=["auto", "skip"], default="auto",
        help="auto: start PostgreSQL from the installed binaries when there are any",
    )  # fmt: skip
    args = parser.parse_args(argv)
    report: dict[str, Any] = {**report_header("sync", ("uvicorn", "httpx", "psycopg"))}
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        ledger_path = folder / "backlog.sqlite3"
        gate = "BENCH-GATE"
        started = time.perf_counter()
        stream = build_ledger(ledger_path, gate, args.backlog)
        entries = ledger_wire(ledger_path, gate)
        report["build_ledger_seconds"] = round(time.perf_counter() - started, 1)

        def sqlite_dir(name: str) -> Path:
            path = folder / name
            path.mkdir()
            return path

        backlog: dict[str, float | None] = {}
        ingest: dict[str, float | None] = {}
        # Each store drains its own copy: a drained ledger has nothing left to send.
        pg_ledger = folder / "backlog-pg.sqlite3"
        for suffix in ("", "-wal"):
            if Path(f"{ledger_path}{suffix}").exists():
                shutil.copyfile(f"{ledger_path}{suffix}", f"{pg_ledger}{suffix}")
        central = sqlite_dir("central-backlog")
        curves: dict[str, Any] = {}
        seconds, curves["sqlite"] = drain(
            ledger_path, gate,
            lambda: SqliteStreamStore(central / "central.sqlite3"),
            lambda: serving(central, None),
        )  # fmt: skip
        backlog["sqlite"] = round(seconds, 2)
        raw = sqlite_dir("central-ingest")
        ingest["sqlite"] = round(
            ingest_rows_per_second(
                entries, stream, gate, lambda: SqliteStreamStore(raw / "central.sqlite3")
            )
        )
        # Replicas: one process per core, each ingesting a gate's stream of its own.
        processes = max(2, os.cpu_count() or 2)
        share = max(MAX_BATCH_ENTRIES, args.backlog // (2 * processes))
        parallel_streams = []
        for n in range(processes):
            gate_n = f"BENCH-P{n}"
            path_n = folder / f"parallel-{n}.sqlite3"
            stream_n = build_ledger(path_n, gate_n, share)
            parallel_streams.append((gate_n, stream_n, ledger_wire(path_n, gate_n)))
        parallel: dict[str, Any] = {"processes": processes, "entries_each": share}
        raw_parallel = sqlite_dir("central-parallel")
        parallel["sqlite"] = round(
            parallel_rows_per_second(
                lambda: SqliteStreamStore(raw_parallel / "central.sqlite3"), parallel_streams
            )
        )
        report["bare_insert_rows_per_second"] = round(
            bare_insert_rows_per_second(folder / "bare.sqlite3", entries)
        )
        report["baseline"] = "bare_insert_rows_per_second"
        report["ratio_sqlite_ingest_vs_baseline"] = round(
            ingest["sqlite"] / report["bare_insert_rows_per_second"], 3
        )

        postgres, skipped = _postgres(args.postgres, folder)
        if postgres is None:
            backlog["postgres"] = ingest["postgres"] = None
            report["postgres_skipped"] = skipped
        else:
            with postgres as dsn_for:
                pg_backlog = sqlite_dir("central-pg-backlog")
                dsn = dsn_for("backlog")
                make_centre_key(pg_backlog, dsn)
                seconds, curves["postgres"] = drain(
                    pg_ledger, gate, lambda: pg_store(dsn), lambda: serving(pg_backlog, dsn)
                )
                backlog["postgres"] = round(seconds, 2)
                dsn_ingest = dsn_for("ingest")
                ingest["postgres"] = round(
                    ingest_rows_per_second(entries, stream, gate, lambda: pg_store(dsn_ingest))
                )
                dsn_parallel = dsn_for("parallel")
                parallel["postgres"] = round(
                    parallel_rows_per_second(lambda: pg_store(dsn_parallel), parallel_streams)
                )
        report["backlog_100k_seconds"] = backlog
        # Entries left against seconds, per store, for the report's drain-curve plot.
        report["backlog_drain_curve"] = curves
        report["backlog_entries"] = args.backlog
        report["ingest_rows_per_second"] = ingest
        report["ingest_rows_per_second_parallel"] = parallel

        # 200 gates, each with its own ledger stream, at once, on the default (SQLite) server.
        fleet_dir = sqlite_dir("central-fleet")
        per_gate = args.rounds * args.batch
        gates: list[FleetGate] = []
        with SqliteStreamStore(fleet_dir / "central.sqlite3") as store:
            for n in range(args.gates):
                gate_id = f"G{n:04d}"
                path = folder / f"fleet-{n}.sqlite3"
                gate_stream = build_ledger(path, gate_id, per_gate)
                gates.append(
                    FleetGate(
                        gate_id, gate_stream, enrol(store, gate_id), ledger_wire(path, gate_id)
                    )
                )
                path.unlink()
            # The baseline: one more gate, alone, posting the same batches one after another.
            alone_rounds = max(args.rounds, ALONE_ROUNDS)
            path = folder / "fleet-alone.sqlite3"
            alone_stream = build_ledger(path, "GALONE", alone_rounds * args.batch)
            alone = FleetGate(
                "GALONE", alone_stream, enrol(store, "GALONE"), ledger_wire(path, "GALONE")
            )
            path.unlink()
        with serving(fleet_dir, None, args.workers) as url:
            results = fleet(gates, url, args.rounds, args.batch)
            alone_results = fleet([alone], url, alone_rounds, args.batch)
        alone_ms = [ms for ms, status in alone_results if status == 200]
        if len(alone_ms) != alone_rounds:
            raise RuntimeError("the lone gate's uploads failed")
        latencies = [ms for ms, _ in results]
        failed = sum(1 for _, status in results if status != 200)
        with SqliteStreamStore(fleet_dir / "central.sqlite3") as store:
            complete = sum(
                1 for g in gates if store.stored_through(g.gate_id, g.stream) == per_gate
            )
        report["gates_200"] = {
            "gates": args.gates,
            "batches": len(results),
            "entries_per_batch": args.batch,
            "failed_uploads": failed,
            "gates_complete": complete,
            "p50_batch_ms": round(_p(latencies, 0.50), 1),
            "p99_batch_ms": round(_p(latencies, 0.99), 1),
            "max_batch_ms": round(max(latencies), 1),
            "mean_batch_ms": round(statistics.fmean(latencies), 1),
            "store": "sqlite",
            "server_workers": args.workers,
            "alone_batches": alone_rounds,
            "alone_p50_batch_ms": round(_p(alone_ms, 0.50), 1),
            "alone_p99_batch_ms": round(_p(alone_ms, 0.99), 1),
        }
        report["vs_baseline"] = sync_versus(report)
    report["targets"] = {
        "backlog_100k_seconds_sqlite_at_most": 20,
        "ingest_rows_per_second_postgres_at_least": 50_000,
        "gates_200_p99_batch_ms_at_most": 1000,
        "gates_200_failed_uploads": 0,
    }
    report["cpu_count"] = os.cpu_count()
    write_report(report, args.out)
    return 0


def sync_versus(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Sync's figures beside their baselines, all measured in this run."""
    backlog, ingest = report["backlog_100k_seconds"], report["ingest_rows_per_second"]
    parallel, fleet_ = report["ingest_rows_per_second_parallel"], report["gates_200"]
    entries, bare = report["backlog_entries"], report["bare_insert_rows_per_second"]
    rows = []
    for db in ("sqlite", "postgres"):
        rate = ingest[db]
        rows.append(
            versus(f"backlog_100k_seconds.{db}", backlog[db],
                   round(entries / rate, 2) if rate else None, unit="s",
                   baseline=f"the same entries through the {db} store's own ingest, "
                   "500 a batch, no HTTP (backlog / ingest_rows_per_second)")
        )  # fmt: skip
    for db in ("sqlite", "postgres"):
        rows.append(
            versus(f"ingest_rows_per_second.{db}", ingest[db], bare, unit="rows/s",
                   baseline="bare_insert_rows_per_second: plain executemany on SQLite, "
                   "500 a commit")
        )  # fmt: skip
    for db in ("sqlite", "postgres"):
        if db in parallel:
            rows.append(
                versus(f"ingest_rows_per_second_parallel.{db}", parallel[db], ingest[db],
                       unit="rows/s",
                       baseline=f"ingest_rows_per_second.{db}: one process alone")
            )  # fmt: skip
    alone = f"one gate alone posting the same size of batch, {fleet_['alone_batches']} in a row"
    rows += [
        versus("gates_200.p50_batch_ms", fleet_["p50_batch_ms"], fleet_["alone_p50_batch_ms"],
               unit="ms", baseline=alone + " (p50)"),
        versus("gates_200.p99_batch_ms", fleet_["p99_batch_ms"], fleet_["alone_p99_batch_ms"],
               unit="ms", baseline=alone + " (p99)"),
    ]  # fmt: skip
    return rows


def _postgres(mode: str, folder: Path) -> tuple[Any, str | None]:
    """(a context manager yielding database name -> DSN, None), or (None, why not)."""
    if mode == "skip":
        return None, "--postgres skip"
    from bench import pg  # noqa: PLC0415 - only with PostgreSQL

    reason = pg.unavailable()
    if reason is not None:
        return None, reason
    return pg.server(folder / "pg"), None


if __name__ == "__main__":
    raise SystemExit(main())
