"""Soak of the centre: one ``gate-sync serve`` and 500 gates uploading and polling lists.

Run as ``python -m bench.soak_centre --out bench/out/soak-centre.json`` (``make soak``).

The gates are enrolled through the real API: an operator's one-time code each (made as
``gate-sync gates enrol`` makes it), then ``POST /v1/gates/enrol`` for the token. Each
gate's entries come from a real gate ledger (``Ledger.append``: real chain hashes),
built before the clock starts. A gate is then a light task in one of ``--clients``
processes, each an asyncio loop with one HTTP client, that behaves as the uploader does
at its defaults: a person every ``--person-seconds``; every ``--poll-seconds`` it posts
what is new as one gzip batch; every ``--lists-seconds`` it asks for newer lists, with
the versions it holds. Gates start at random offsets, as a real fleet does.

Reported: requests and entries per second, request latency p50/p95/p99 by kind, errors
(any status but 200 on an upload or a lists poll; must be 0), the server's RSS growth
(median of the last quarter of the run minus that of the first quarter after a warm-up
of a fifth of it), and that every entry sent is stored exactly once at the end (read
back from the store, page by page). SQLite by default; ``--postgres`` starts a durable
PostgreSQL from the installed binaries (``bench.pg``), or ``--dsn`` names one.
Exit status 1 when there were errors or an entry is missing or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import multiprocessing
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.centre import build_ledger, ledger_wire, serve_process
from bench.common import report_header, write_report
from bench.soak_gate import percentile, proc_sample
from sync.protocol import Batch
from sync.server.auth import new_enrol_code
from sync.store import SqliteStreamStore, StreamStore

GATES_PER_COMPOUND = 10


def gate_ids(count: int) -> list[tuple[str, str]]:
    """(gate, compound) pairs: ten gates a compound."""
    return [(f"SG{n:04d}", f"SC{n // GATES_PER_COMPOUND:03d}") for n in range(count)]


def _build(job: tuple[Path, str, int]) -> tuple[str, str, list[dict[str, Any]]]:
    path, gate_id, count = job
    stream = build_ledger(path, gate_id, count)
    entries = ledger_wire(path, gate_id)
    path.unlink()
    return gate_id, stream, entries


def build_entries(
    folder: Path, gates: list[tuple[str, str]], count: int, processes: int
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each gate's stream id and ``count`` wire entries, from real ledgers."""
    jobs = [(folder / f"{gate}.sqlite3", gate, count) for gate, _ in gates]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        built = pool.map(_build, jobs, chunksize=8)
    return {gate: (stream, entries) for gate, stream, entries in built}


def enrol_all(url: str, store: StreamStore, gates: list[tuple[str, str]]) -> dict[str, str]:
    """Every gate enrolled by its one-time code over the API; their tokens."""
    now = datetime.now(UTC)
    tokens = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for gate, compound in gates:
            code = new_enrol_code(store, gate, now)
            body = {"gate_id": gate, "code": code, "compound_id": compound, "community_id": "SM"}
            reply = client.post("/v1/gates/enrol", json=body)
            reply.raise_for_status()
            tokens[gate] = reply.json()["token"]
    return tokens


def list_versions(document: dict[str, Any]) -> dict[str, int]:
    """The list versions a lists document brings (name -> version)."""
    payload = document.get("payload", document)
    if isinstance(payload, str):
        payload = json.loads(payload)
    versions = {}
    for item in payload.get("lists", []):
        if "name" in item and "version" in item:
            versions[str(item["name"])] = int(item["version"])
    return versions


async def one_gate(
    client: httpx.AsyncClient,
    *,
    gate: str,
    token: str,
    stream: str,
    entries: list[dict[str, Any]],
    args: argparse.Namespace,
    start: float,
    results: list[tuple[float, str, float, int]],
) -> int:
    """One gate for ``args.seconds``: uploads as people come, lists polls; entries sent."""
    headers = {"Authorization": f"Bearer {token}"}
    upload = {**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    held: dict[str, int] = {}
    rand = random.Random(gate)  # noqa: S311 - spreads gates in time; no secret
    offset = rand.uniform(0, args.poll_seconds)
    person_phase = rand.uniform(0, args.person_seconds)
    next_poll, next_lists = start + offset, start + rand.uniform(0, args.lists_seconds)
    sent = 0
    end = start + args.seconds

    async def request(kind: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            reply = await client.request(method, path, **kw)
        except httpx.HTTPError:
            results.append((began - start, kind, (time.perf_counter() - began) * 1000, 0))
            return None
        results.append(
            (began - start, kind, (time.perf_counter() - began) * 1000, reply.status_code)
        )
        return reply

    async def post(upto: int) -> int:
        batch = Batch(
            first_seq=sent + 1, entries=entries[sent:upto], sent_at=datetime.now(UTC),
            sent_monotonic_ns=time.monotonic_ns(), boot_id="soak", clock_synced=True,
            backlog=upto - sent,
        )  # fmt: skip
        body = gzip.compress(batch.model_dump_json().encode(), mtime=0)
        path = f"/v1/gates/{gate}/streams/{stream}/batches"
        reply = await request("upload", "POST", path, content=body, headers=upload)
        if reply is not None and reply.status_code == 200:
            return int(reply.json()["stored_through"])
        return sent

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        await asyncio.sleep(max(0.0, min(next_poll, next_lists, end) - now))
        now = time.perf_counter()
        if now >= next_lists and now < end:
            have = ",".join(f"{n}:{v}" for n, v in sorted(held.items()))
            reply = await request("lists", "GET", f"/v1/gates/{gate}/lists?have={have}",
                                  headers=headers)  # fmt: skip
            if reply is not None and reply.status_code == 200:
                held.update(list_versions(reply.json()))
            next_lists += args.lists_seconds
        if now >= next_poll and now < end:
            due = min(len(entries), int((now - start + person_phase) / args.person_seconds))
            if due > sent:
                sent = await post(due)
            next_poll += args.poll_seconds
    # The last people of the run go up too, so the store can be checked whole.
    due = min(len(entries), int((end - start + person_phase) / args.person_seconds))
    if due > sent:
        sent = await post(due)
    return sent


def client_process(
    url: str,
    gates: list[tuple[str, str, str, list[dict[str, Any]]]],
    args: argparse.Namespace,
    start_at: float,
    out: Any,
) -> None:
    """One load process: its gates as tasks on one loop, one connection pool."""

    async def run() -> tuple[list[tuple[float, str, float, int]], dict[str, int]]:
        results: list[tuple[float, str, float, int]] = []
        limits = httpx.Limits(max_connections=len(gates), max_keepalive_connections=len(gates))
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            start = time.perf_counter()
            sent = await asyncio.gather(*(
                one_gate(client, gate=gate, token=token, stream=stream, entries=entries,
                         args=args, start=start, results=results)
                for gate, token, stream, entries in gates
            ))  # fmt: skip
        return results, {g[0]: n for g, n in zip(gates, sent, strict=True)}

    out.send(asyncio.run(run()))
    out.close()


def stored_counts(store: StreamStore) -> Counter[tuple[str, str, int]]:
    """How many times each (gate, stream, seq) is stored."""
    counts: Counter[tuple[str, str, int]] = Counter()
    after = 0
    while page := store.entries_after(after, 10_000):
        for record in page:
            counts[(record.gate_id, record.stream_id, record.seq)] += 1
        after = page[-1].ingest_id
    return counts


def soak(args: argparse.Namespace, folder: Path, dsn: str | None) -> dict[str, Any]:
    gates = gate_ids(args.gates)
    per_gate = math.ceil((args.seconds + args.person_seconds) / args.person_seconds) + 1
    began = time.perf_counter()
    built = build_entries(folder, gates, per_gate, args.clients)
    report: dict[str, Any] = {"build_seconds": round(time.perf_counter() - began, 1)}
    data_dir = folder / "central"
    data_dir.mkdir()
    if dsn is not None:
        from bench.centre import make_centre_key, pg_store  # noqa: PLC0415

        make_centre_key(data_dir, dsn)

    def opener() -> StreamStore:
        if dsn is not None:
            return pg_store(dsn)
        return SqliteStreamStore(data_dir / "central.sqlite3")

    with serve_process(data_dir, dsn, args.workers) as (url, server):
        with contextlib.closing(opener()) as store:
            began = time.perf_counter()
            tokens = enrol_all(url, store, gates)
            report["enrol_seconds"] = round(time.perf_counter() - began, 1)
        rss: list[tuple[float, float]] = []
        stop = threading.Event()
        start_at = time.time() + 2

        def sample() -> None:
            while not stop.wait(args.sample_seconds):
                rss.append((round(time.time() - start_at, 1), proc_sample(server.pid)["rss_mb"]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        context = multiprocessing.get_context("fork")
        pipes, workers = [], []
        for n in range(args.clients):
            share = [(g, tokens[g], *built[g]) for g, _ in gates[n :: args.clients]]
            mine, theirs = context.Pipe(duplex=False)
            worker = context.Process(target=client_process,
                                     args=(url, share, args, start_at, theirs))  # fmt: skip
            worker.start()
            pipes.append(mine)
            workers.append(worker)
        results: list[tuple[float, str, float, int]] = []
        sent: dict[str, int] = {}
        for pipe in pipes:
            got, counts = pipe.recv()
            results += got
            sent.update(counts)
        for worker in workers:
            worker.join()
        stop.set()
        sampler.join()
    with contextlib.closing(opener()) as store:
        counts = stored_counts(store)
    expected = {(gate, built[gate][0], seq) for gate, n in sent.items() for seq in range(1, n + 1)}
    doubled = sum(1 for n in counts.values() if n > 1)
    missing = len(expected - set(counts))
    unexpected = len(set(counts) - expected)
    warm = args.seconds / 5
    after = [mb for t, mb in rss if t >= warm]
    quarter = max(1, len(after) // 4)
    by_kind: dict[str, Any] = {}
    for kind in ("upload", "lists"):
        values = [ms for _, k, ms, _ in results if k == kind]
        errors = [status for _, k, _, status in results if k == kind and status != 200]
        by_kind[kind] = {
            "requests": len(values),
            "errors": len(errors),
            "error_statuses": dict(Counter(str(s) for s in errors)),
            "p50_ms": round(percentile(values, 0.50), 1) if values else None,
            "p95_ms": round(percentile(values, 0.95), 1) if values else None,
            "p99_ms": round(percentile(values, 0.99), 1) if values else None,
            "max_ms": round(max(values), 1) if values else None,
        }
    all_ms = [ms for _, _, ms, _ in results]
    errors = sum(v["errors"] for v in by_kind.values())
    entries_sent = sum(sent.values())
    report.update({
        "store": "postgres" if dsn else "sqlite",
        "gates": args.gates,
        "seconds": args.seconds,
        "rates": {"person_seconds": args.person_seconds, "poll_seconds": args.poll_seconds,
                  "lists_seconds": args.lists_seconds},
        "client_processes": args.clients,
        "server_workers": args.workers,
        "requests": len(results),
        "requests_per_second": round(len(results) / args.seconds, 1),
        "entries_sent": entries_sent,
        "entries_per_second": round(entries_sent / args.seconds, 1),
        "p50_ms": round(percentile(all_ms, 0.50), 1) if all_ms else None,
        "p95_ms": round(percentile(all_ms, 0.95), 1) if all_ms else None,
        "p99_ms": round(percentile(all_ms, 0.99), 1) if all_ms else None,
        "by_kind": by_kind,
        "errors": errors,
        "entries_stored": len(counts),
        "entries_missing": missing,
        "entries_doubled": doubled,
        "entries_unexpected": unexpected,
        "stored_exactly_once": missing == doubled == unexpected == 0 and entries_sent > 0,
        "server_rss_mb_first_quarter": statistics.median(after[:quarter]) if after else None,
        "server_rss_mb_last_quarter": statistics.median(after[-quarter:]) if after else None,
        "server_rss_series": rss,
    })  # fmt: skip
    if after:
        report["server_rss_growth_mb"] = round(
            report["server_rss_mb_last_quarter"] - report["server_rss_mb_first_quarter"], 2
        )
    report["definitions"] = {
        "server_rss_growth_mb": "median VmRSS of the server over the last quarter of the "
        "samples after a warm-up of a fifth of the run, minus the first quarter's",
        "errors": "uploads and lists polls answered by anything but 200, or not at all",
    }
    failed = []
    if errors:
        failed.append("errors")
    if not report["stored_exactly_once"]:
        failed.append("stored_exactly_once")
    report["failed"] = failed
    return report


@contextlib.contextmanager
def _database(args: argparse.Namespace, folder: Path) -> Iterator[str | None]:
    if args.dsn:
        yield args.dsn
    elif args.postgres:
        from bench import pg  # noqa: PLC0415 - only with PostgreSQL

        reason = pg.unavailable()
        if reason is not None:
            raise SystemExit(f"--postgres: {reason}")
        with pg.server(folder / "pg") as dsn_for:
            yield dsn_for("soak")
    else:
        yield None


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print its JSON and write it to --out; 1 on errors or lost entries."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak_centre",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/soak-centre.json"))
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--gates", type=int, default=500)
    parser.add_argument(
        "--person-seconds",
        type=float,
        default=20.0,
        help="a person at each gate every so many seconds",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=5.0,
        help="the uploader's poll ([sync] poll_seconds default)",
    )
    parser.add_argument(
        "--lists-seconds",
        type=float,
        default=60.0,
        help="lists polls ([sync] lists_poll_seconds default)",
    )
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--workers", type=int, default=1, help="gate-sync serve --workers")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a durable PostgreSQL started from the installed binaries",
    )
    parser.add_argument("--dsn", default=None, help="a PostgreSQL to use instead")
    args = parser.parse_args(argv)  # fmt: skip
    report: dict[str, Any] = {**report_header("soak_centre", ("uvicorn", "httpx", "psycopg"))}
    with (
        tempfile.TemporaryDirectory(prefix="soak-centre-", dir=Path.cwd()) as tmp,
        _database(args, Path(tmp)) as dsn,
    ):
        report.update(soak(args, Path(tmp), dsn))
    write_report(report, args.out)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
