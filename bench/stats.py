"""The admin page's statistics on the SQLite stream store: counted in SQL, against
loading every entry into Python.

Run as ``python -m bench.stats --out bench/out/stats.json``. ``--count`` entries
(1 000 000 by default) spread over ``--gates`` gates and ``--days`` days, about one
in ten refused (a few for fever), are written straight into the store's ``entries``
table: the statistics read only an entry's gate, times and content, so rows need no
hash chain, and making a million real ledger entries would measure the ledger instead.
``stats_seconds`` is ``StreamStore.entry_stats`` over the whole window and every gate
(then summarised as the endpoint answers); the baseline is what counting without it
costs: every entry of the window through ``trace.matching`` (the traces' indexed read)
and counted in Python. Both must agree on every hourly count.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import report_header, versus, write_report
from sync import trace
from sync.store import EntryQuery, SqliteStreamStore
from sync.store.stats import StatsQuery, summary

T0 = datetime(2026, 2, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
REFUSALS = ("expired", "revoked", "quota_used", "already_inside", "out_of_scope", "fever")


def rows(count: int, gates: int, days: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``entries`` rows: gate, stream, seq, hash, content, wall time (in +08:00), received."""
    rng = random.Random(seed)  # noqa: S311 - made-up entries, not secrets
    span = days * 86400
    seqs = [0] * gates
    received = (T0 + timedelta(days=days)).isoformat(timespec="microseconds")
    for n in range(count):
        gate = n % gates
        seqs[gate] += 1
        # Entries of a gate keep their order: the n-th of a gate at its share of the span.
        at = T0 + timedelta(seconds=span * (n // gates) / (count // gates + 1) + rng.random())
        wall = at.astimezone(SHANGHAI).isoformat(timespec="microseconds")
        roll = rng.random()
        if roll < 0.003:
            outcome, reason = "recheck", "recheck_temperature"
        elif roll < 0.1:
            outcome = "deny"
            reason = REFUSALS[rng.randrange(len(REFUSALS))]
        else:
            outcome, reason = "allow", "ok"
        content = {
            "direction": "in" if rng.random() < 0.5 else "out",
            "outcome": outcome,
            "reason": reason,
            "pass_id": f"P{rng.randrange(20_000):09d}",
            "household_id": f"H{rng.randrange(10_000):06d}",
            "wall_time": wall,
        }
        yield (
            f"G{gate:03d}", f"s{gate:03d}", seqs[gate], f"h{n}", json.dumps(content), 0, wall,
            received,
        )  # fmt: skip


def fill(path: Path, count: int, gates: int, days: int) -> float:
    """Create the store (with its indexes) and write the rows; the seconds it took."""
    SqliteStreamStore(path).close()
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        for gate in range(gates):
            db.execute("INSERT INTO gates(gate_id) VALUES (?)", (f"G{gate:03d}",))
            db.execute(
                "INSERT INTO streams(gate_id, stream_id) VALUES (?, ?)",
                (f"G{gate:03d}", f"s{gate:03d}"),
            )
        db.executemany(
            "INSERT INTO entries(gate_id, stream_id, seq, hash, content, flagged, wall_time,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows(count, gates, days),
        )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started


def fill_postgres(dsn: str, count: int, gates: int, days: int) -> float:
    """Create the PostgreSQL stream tables and COPY the same rows in; the seconds it took."""
    import psycopg  # noqa: PLC0415 - only with --postgres

    from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

    PostgresStreamStore(dsn).close()
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for gate in range(gates):
            conn.execute("INSERT INTO gates(gate_id) VALUES (%s)", (f"G{gate:03d}",))
            conn.execute(
                "INSERT INTO streams(gate_id, stream_id) VALUES (%s, %s)",
                (f"G{gate:03d}", f"s{gate:03d}"),
            )
        with conn.cursor().copy(
            "COPY entries (ingest_id, gate_id, stream_id, seq, hash, content, flagged,"
            " wall_time, received_at) FROM STDIN"
        ) as copy:
            for n, row in enumerate(rows(count, gates, days), start=1):
                copy.write_row((n, *row[:5], bool(row[5]), *row[6:]))
        conn.execute("UPDATE ingest_counter SET last_id = %s", (count,))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE entries")
    return time.perf_counter() - started


def python_hourly(store: SqliteStreamStore, query: StatsQuery) -> Counter[tuple[str, str, str]]:
    """The baseline: every entry of the window into Python, counted per gate, hour, way."""
    counted: Counter[tuple[str, str, str]] = Counter()
    found = trace.matching(store, EntryQuery(gate_ids=query.gate_ids, since=query.since,
                                             until=query.until))  # fmt: skip
    for when, record in found:
        assert when is not None
        hour = when.astimezone(query.tz).replace(minute=0, second=0, microsecond=0)
        counted[record.gate_id, hour.isoformat(), str(record.content.get("direction"))] += 1
    return counted


def timed(fn: Any) -> tuple[float, Any]:
    """Seconds one call took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def cpu_timed(fn: Any) -> tuple[float, float, Any]:
    """Seconds one call took, the CPU seconds this process spent on it, and its result.

    On a machine others share, the CPU time says what the work costs; the wall time
    what an admin waited.
    """
    cpu = time.process_time()
    elapsed, result = timed(fn)
    return elapsed, time.process_time() - cpu, result


def measure_postgres(
    args: argparse.Namespace,
    queries: tuple[StatsQuery, StatsQuery, StatsQuery],
    sqlite_answer: dict[str, Any],
) -> dict[str, Any]:
    """The same counts on PostgreSQL (``postgres_`` keys), or why they were not measured."""
    from bench import pg  # noqa: PLC0415 - only with --postgres

    reason = pg.unavailable()
    if reason is not None:
        return {"postgres_skipped": reason}
    from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

    whole, day, gate = queries
    with tempfile.TemporaryDirectory(prefix="bench-stats-pg-") as tmp, pg.server(Path(tmp)) as db:
        dsn = db("stats")
        fill_seconds = fill_postgres(dsn, args.count, args.gates, args.days)
        with PostgresStreamStore(dsn) as store:
            stats_seconds, stats_cpu, answer = cpu_timed(lambda: summary(store.entry_stats(whole)))
            day_seconds, _ = timed(lambda: summary(store.entry_stats(day)))
            gate_seconds, _ = timed(lambda: summary(store.entry_stats(gate)))
    return {
        "postgres_fill_seconds": round(fill_seconds, 3),
        "postgres_counted": answer["total"],
        "postgres_same_answer_as_sqlite": answer == sqlite_answer,
        "postgres_stats_seconds": round(stats_seconds, 3),
        "postgres_stats_client_cpu_seconds": round(stats_cpu, 3),
        "postgres_stats_one_day_seconds": round(day_seconds, 3),
        "postgres_stats_one_gate_seconds": round(gate_seconds, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/stats.json"))
    parser.add_argument("--count", type=int, default=1_000_000, help="entries in the store")
    parser.add_argument("--gates", type=int, default=20)
    parser.add_argument("--days", type=int, default=30, help="days the entries spread over")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Python count")
    parser.add_argument(
        "--postgres", action="store_true", help="also count on a durable PostgreSQL (no baseline)"
    )
    args = parser.parse_args(argv)
    whole = StatsQuery(T0, T0 + timedelta(days=args.days), SHANGHAI)
    day = StatsQuery(T0 + timedelta(days=1), T0 + timedelta(days=2), SHANGHAI)
    gate = StatsQuery(whole.since, whole.until, SHANGHAI, ("G000",))
    with tempfile.TemporaryDirectory(prefix="bench-stats-", dir=Path.cwd()) as tmp:
        path = Path(tmp) / "central.sqlite3"
        fill_seconds = fill(path, args.count, args.gates, args.days)
        with SqliteStreamStore(path) as store:
            stats_seconds, stats_cpu, answer = cpu_timed(lambda: summary(store.entry_stats(whole)))
            day_seconds, _ = timed(lambda: summary(store.entry_stats(day)))
            gate_seconds, _ = timed(lambda: summary(store.entry_stats(gate)))
            baseline: dict[str, Any] = {}
            if not args.no_baseline:
                python_seconds, python_cpu, counted = cpu_timed(lambda: python_hourly(store, whole))
                from_sql = Counter(
                    {
                        (cell["gate_id"], cell["hour"], way): cell[way]
                        for cell in answer["hourly"]
                        for way in ("in", "out")
                        if cell[way]
                    }
                )
                python_day, _ = timed(lambda: python_hourly(store, day))
                python_gate, _ = timed(lambda: python_hourly(store, gate))
                baseline = {
                    "python_count_one_day_seconds": round(python_day, 3),
                    "python_count_one_gate_seconds": round(python_gate, 3),
                    "python_count_seconds": round(python_seconds, 3),
                    "python_count_cpu_seconds": round(python_cpu, 3),
                    "ratio_stats_vs_python": round(stats_seconds / python_seconds, 4),
                    "same_hourly_counts": counted == from_sql,
                }
    postgres = measure_postgres(args, (whole, day, gate), answer) if args.postgres else {}
    report = {
        **report_header("stats"),
        "entries": args.count,
        "gates": args.gates,
        "days": args.days,
        "baseline": "python_count_seconds (every entry of the window read into Python)",
        "fill_seconds": round(fill_seconds, 3),
        "counted": answer["total"],
        "stats_seconds": round(stats_seconds, 3),
        "stats_cpu_seconds": round(stats_cpu, 3),
        "stats_one_day_seconds": round(day_seconds, 3),
        "stats_one_gate_seconds": round(gate_seconds, 3),
        **baseline,
        **postgres,
    }
    python = "python_count{}_seconds: the same query's entries read into Python and counted"
    rows = [
        versus(f"stats{part}_seconds", report[f"stats{part}_seconds"],
               report.get(f"python_count{part}_seconds"), unit="s", baseline=python.format(part))
        for part in ("", "_one_day", "_one_gate")
    ]  # fmt: skip
    if "postgres_stats_seconds" in report:
        rows += [
            versus(f"postgres_stats{part}_seconds", report[f"postgres_stats{part}_seconds"],
                   report[f"stats{part}_seconds"], unit="s",
                   baseline=f"stats{part}_seconds: the same count on SQLite")
            for part in ("", "_one_day", "_one_gate")
        ]  # fmt: skip
    report["vs_baseline"] = rows
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
