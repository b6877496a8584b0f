"""Sync chaos: a seeded random schedule of network faults, gate restarts and server kills.

Run as ``python -m bench.chaos --seconds 600 --seed N --out bench/out/chaos.json``
(``--store sqlite|postgres|both``). Several gates, each a real ledger file and the real
``Uploader``, send through a fault proxy of their own (``tests/sync/faultproxy.py``) to
one ``gate-sync serve`` process (SQLite, or PostgreSQL started from the installed
binaries). One random generator, seeded, picks every step, so a seed replays the same
schedule: append entries at a gate; program the next request of a gate's proxy to be
reset, cut mid-body, answered but the reply lost after the commit, duplicated or
stalled past the timeout (released late, a few steps on); upload a step or drain; close
and reopen a gate's ledger and uploader (a gate restart); SIGKILL the server between
requests or while a request is held at a known point (inside the body, sent, committed
with the reply held) and start it again on a new port after a few steps down.

Invariants are checked after every step the server is up for, and at the end after a
clean drain: every entry the centre holds is stored once (no (stream, seq) twice), no
stream has a hole (its seqs are 1..stored_through), the centre's hash of each (stream,
seq) is the gate's, and no gate's acknowledged cursor is ahead of what the centre
stores. At the end each gate's whole ledger is at the centre and acknowledged. A broken
invariant raises ``ChaosFailure`` naming the seed and the step; the JSON report lists
what was done. ``tests/sync/test_sync_chaos.py`` runs a short seed per store.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.centre import enrol, make_centre_key
from bench.chaos_parts import (
    KILL_WINDOWS,
    NETWORK_FAULTS,
    CentreView,
    ChaosFailure,
    Gate,
    Server,
)
from bench.common import report_header, write_report
from gate_agent.uplink import Step
from sync.store import SqliteStreamStore, StreamStore
from tests.sync.faultproxy import Fault, FaultProxy


@dataclass
class Chaos:
    """One seeded run over one store."""

    seed: int
    store: str
    server: Server
    gates: list[Gate]
    rng: random.Random
    view: CentreView = field(default_factory=CentreView)
    actions: Counter[str] = field(default_factory=Counter)
    steps: int = 0
    down_for: int = 0  # steps the server stays down
    stalled: list[tuple[Gate, int]] = field(default_factory=list)  # (gate, release at step)
    checks: int = 0

    def fail(self, what: str) -> ChaosFailure:
        return ChaosFailure(
            f"chaos seed {self.seed} ({self.store}), step {self.steps}: {what}\n"
            f"replay: python -m bench.chaos --seed {self.seed} --store {self.store}"
        )

    def step(self) -> None:
        """One random action, then the invariants."""
        self.steps += 1
        rng = self.rng
        gate = rng.choice(self.gates)
        if not self.server.up:
            self.down_for -= 1
            if self.down_for <= 0:
                self.restart_server()
        for stalled in [s for s in self.stalled if s[1] <= self.steps]:
            stalled[0].proxy.release()  # the stalled request reaches the server, late
            self.stalled.remove(stalled)
        roll = rng.random()
        if roll < 0.30:
            self.do("append")
            gate.append(rng.randint(1, 12))
        elif roll < 0.50:
            fault = rng.choice(NETWORK_FAULTS)
            self.do(f"fault_{fault.value}")
            gate.proxy.program({gate.next_request(): fault})
            if fault is Fault.STALL:
                self.stalled.append((gate, self.steps + rng.randint(1, 6)))
            self.upload(gate)
        elif roll < 0.75:
            self.do("upload")
            self.upload(gate)
        elif roll < 0.85:
            self.do("gate_restart")
            gate.close()
            gate.open()
        elif roll < 0.92 and self.server.up:
            self.do("drain")
            assert gate.uploader is not None
            for _ in range(200):
                if gate.uploader.step()[0] in (Step.IDLE, Step.ALARM):
                    break
        elif self.server.up:
            if rng.random() < 0.5:
                self.do("server_kill")
                self.server.kill()
            else:
                window = rng.choice(KILL_WINDOWS)
                self.do(f"server_kill_{window.value}")
                self.kill_mid_batch(gate, window)
            self.down_for = rng.randint(0, 3)
            if self.down_for == 0:
                self.restart_server()
        self.check()

    def do(self, action: str) -> None:
        self.actions[action] += 1

    def upload(self, gate: Gate) -> None:
        assert gate.uploader is not None
        step, _ = gate.uploader.step()
        if step is Step.ALARM:
            raise self.fail(f"{gate.gate_id} raised an alarm: {gate.uploader.status().alarm}")

    def kill_mid_batch(self, gate: Gate, window: Fault) -> None:
        """A request held at ``window`` while the server is SIGKILLed; an entry appended."""
        assert gate.uploader is not None
        if gate.ledger is not None and gate.ledger.sync.status().backlog == 0:
            gate.append(1)
        gate.proxy.program({gate.next_request(): window})
        uploader = gate.uploader
        holds = gate.proxy._held  # every hold so far, stalls included
        worker = threading.Thread(target=uploader.step, daemon=True)
        worker.start()
        held = gate.proxy.wait_held(holds + 1)
        gate.append(1)  # the station goes on while the batch is in flight
        self.server.kill()
        gate.proxy.release()
        worker.join(30)
        if worker.is_alive():
            raise self.fail(f"{gate.gate_id}'s upload did not return after the kill")
        if not held:
            raise self.fail(f"{gate.gate_id}'s request never reached the {window.value} hold")

    def restart_server(self) -> None:
        self.do("server_start")
        self.server.start()
        for gate in self.gates:
            gate.proxy.upstream = ("127.0.0.1", self.server.port)

    def check(self) -> None:
        """The invariants, against what the centre holds now (when it is up).

        The cursors are read before the rows: a late request may store more in between,
        never less. Rows are read incrementally; PostgreSQL may commit a lower row id after
        a higher one was read, so a hole is confirmed by reading everything again.
        """
        if not self.server.up:
            return
        self.checks += 1
        cursors = self.view.cursors(self.server.url)
        problems = self.view.refresh(self.server.url)
        holes = self.holes(cursors)
        if holes:
            self.view = CentreView()
            problems = self.view.refresh(self.server.url)
            holes = self.holes(cursors)
        problems += holes
        for gate in self.gates:
            through = cursors.get(gate.stream_id, 0)
            for (stream, seq), digest in self.view.stored.items():
                if stream == gate.stream_id and digest != gate.hashes.get(seq):
                    problems.append(f"{gate.gate_id}: the centre's hash of {seq} is not the gate's")
            if gate.acked() > through:
                problems.append(
                    f"{gate.gate_id}: acknowledged {gate.acked()} but the centre stores {through}"
                )
        if problems:
            raise self.fail("; ".join(problems[:10]))

    def holes(self, cursors: dict[str, int]) -> list[str]:
        """Streams whose stored seqs are not 1..n with n at least the centre's cursor."""
        found = []
        for gate in self.gates:
            through = cursors.get(gate.stream_id, 0)
            seqs = sorted(seq for (stream, seq) in self.view.stored if stream == gate.stream_id)
            if seqs != list(range(1, len(seqs) + 1)) or len(seqs) < through:
                missing = sorted(set(range(1, max([through, *seqs]) + 1)) - set(seqs))
                found.append(f"{gate.gate_id}: cursor {through}, missing seqs {missing[:10]}")
        return found

    def finish(self) -> None:
        """Release what is held, bring the server up, drain every gate, check it all."""
        for gate, _ in self.stalled:
            gate.proxy.release()
        self.stalled.clear()
        if not self.server.up:
            self.restart_server()
        for gate in self.gates:
            gate.proxy.settle()
            assert gate.uploader is not None
            if gate.uploader.drain() is not Step.IDLE:
                raise self.fail(f"{gate.gate_id} did not drain: {gate.uploader.status()}")
            gate.proxy.release()
            gate.proxy.settle()
        self.view = CentreView()  # read it all again, not incrementally
        self.check()
        cursors = self.view.cursors(self.server.url)
        for gate in self.gates:
            count = len(gate.hashes)
            held = sum(1 for stream, _ in self.view.stored if stream == gate.stream_id)
            if held != count:
                raise self.fail(f"{gate.gate_id}: {count} entries, the centre holds {held}")
            if cursors.get(gate.stream_id, 0) != count or gate.acked() != count:
                raise self.fail(
                    f"{gate.gate_id}: {count} entries, the centre stores "
                    f"{cursors.get(gate.stream_id, 0)}, the gate acknowledged {gate.acked()}"
                )
            status = gate.uploader.status() if gate.uploader is not None else None
            if status is None or status.alarm is not None:
                raise self.fail(f"{gate.gate_id} ends with an alarm: {status}")
        errors = self.server.errors()
        if errors:
            raise self.fail(f"the server logged errors: {errors[:5]}")


def run(
    folder: Path,
    *,
    seed: int,
    store: str,
    dsn: str | None = None,
    gates: int = 3,
    steps: int | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """One chaos run in ``folder``; a summary. Stops after ``steps`` or ``seconds``."""
    data = folder / "central"
    data.mkdir(parents=True)
    if dsn is not None:
        make_centre_key(data, dsn)  # over a shared database, before any server starts
    streams = open_streams(data, dsn)
    ids = [f"CHAOS-{n}" for n in range(gates)]
    try:
        tokens = {gate_id: enrol(streams, gate_id) for gate_id in ids}
    finally:
        streams.close()
    server = Server(data, dsn)
    server.start()
    chaos = Chaos(seed, store, server, [], random.Random(seed))  # noqa: S311 - a replayable schedule
    started = time.monotonic()
    try:
        for gate_id in ids:
            proxy = FaultProxy(("127.0.0.1", server.port))
            gate = Gate(gate_id, folder / f"{gate_id}.sqlite3", tokens[gate_id], proxy)
            gate.open()
            chaos.gates.append(gate)
        while True:
            if steps is not None and chaos.steps >= steps:
                break
            if seconds is not None and time.monotonic() - started >= seconds:
                break
            chaos.step()
        chaos.finish()
    finally:
        for gate in chaos.gates:
            gate.close()
            gate.proxy.close()
        server.stop()
    return {
        "seed": seed,
        "store": store,
        "gates": gates,
        "steps": chaos.steps,
        "checks": chaos.checks,
        "entries": sum(len(g.hashes) for g in chaos.gates),
        "requests": sum(len(g.proxy.seen) for g in chaos.gates),
        "actions": dict(sorted(chaos.actions.items())),
        "seconds": round(time.monotonic() - started, 1),
    }


def open_streams(data_dir: Path, dsn: str | None) -> StreamStore:
    """The stream store the server will use."""
    if dsn is None:
        return SqliteStreamStore(data_dir / "central.sqlite3")
    from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

    return PostgresStreamStore(dsn)


@contextlib.contextmanager
def postgres_dsn(folder: Path) -> Iterator[Callable[[str], str] | None]:
    """database name -> DSN on a PostgreSQL started for the run, or None when unavailable."""
    from bench import pg  # noqa: PLC0415 - only with PostgreSQL

    if pg.unavailable() is not None:
        yield None
        return
    with pg.server(folder / "pg") as dsn_for:
        yield dsn_for


def main(argv: list[str] | None = None) -> int:
    """Run chaos for a while per store, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="run time per store")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--gates", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--out", type=Path, default=Path("bench/out/chaos.json"))
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"chaos seed {seed}", file=sys.stderr)
    report: dict[str, Any] = {**report_header("chaos", ("uvicorn", "httpx")), "seed": seed}
    runs: list[dict[str, Any]] = []
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    with tempfile.TemporaryDirectory(prefix="bench-chaos-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        for store in stores:
            with contextlib.ExitStack() as stack:
                dsn = None
                if store == "postgres":
                    dsn_for = stack.enter_context(postgres_dsn(folder))
                    if dsn_for is None:
                        report["postgres_skipped"] = "PostgreSQL or psycopg is not installed"
                        continue
                    dsn = dsn_for("chaos")
                one = run(folder / store, seed=seed, store=store, dsn=dsn, gates=args.gates,
                          seconds=args.seconds)  # fmt: skip
                runs.append(one)
    report["runs"] = runs
    report["invariants"] = "held"
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
