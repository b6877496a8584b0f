"""Crash consistency: SIGKILL the running gate at random moments; every green light survives.

Run as ``python -m bench.crash --entries 10000 --kills 50 --out bench/out/crash.json``
(``make soak``); ``tests/crash`` runs a small seeded version.

The harness issues passes at a throwaway centre, imports the signed lists into a
throwaway gate, and starts the real gate (``bench.crash_agent``: ``open_gate``
with simulated cameras and thermometer, mock signals) in a subprocess. The
agent reports each green light after it is lit (``green <seq> <pass> <hash>``
on a pipe). At seeded random moments, spread over the run and landing at a
random point inside a scan, the harness kills it with SIGKILL, then checks the
ledger file it left behind:

- ``PRAGMA integrity_check`` answers ``ok``;
- ``gate-agent verify-ledger`` passes (the hash chain and the sequence);
- the sequence numbers are exactly 1..N (none skipped, none reused);
- every entry ever reported green is there with the same pass and the same hash;

and starts the gate again on the same files, until ``--entries`` greens were seen.

With ``--power-loss`` the gate runs under the ``bench/powerloss.c`` LD_PRELOAD shim
(built with gcc), which keeps a shadow copy of the gate's data folder holding only
what SQLite synced; after each kill the ledger's files are replaced by their shadow
copies, as if the power had gone at that moment, before the same checks.
The report counts kills, greens and checks; any failed check is listed and makes
the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import report_header, write_report
from gate_agent import cli as agent_cli
from sync import cli as sync_cli

ROOT = Path(__file__).resolve().parents[1]

_GATE_TOML = """\
[gate]
id = "LGQ-012-N"
compound_id = "LGQ-012"
community_id = "LGQ"
name = "crash harness"
data_dir = "gate"

[policy]
mode = "screening"

[[cameras]]
source = "sim:"
direction = "in"
name = "in"
fps = 60
width = 640
height = 480

[[cameras]]
source = "sim:"
direction = "out"
name = "out"
fps = 60
width = 640
height = 480

[scanner]
debounce_seconds = 0.5

[thermometer]
kind = "simulated"
warmup_seconds = 0

[signals]
kind = "mock"
open_seconds = 1.0
hold_seconds = 30.0

[sync]
enabled = false
"""


@dataclass
class Green:
    """One green light the agent reported."""

    seq: int
    pass_id: str
    hash: str


@dataclass
class Run:
    """What the harness saw and checked."""

    greens: dict[int, Green] = field(default_factory=dict)
    kills: int = 0
    restarts: int = 0
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    dark: list[int] = field(default_factory=list)
    entries_in_ledger: int = 0


def _quiet(main: Any, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"{argv} failed with {code}: {out.getvalue()}")
    return out.getvalue()


def prepare(work: Path, passes: int) -> Path:
    """A centre with `passes` residents' passes, and a gate that trusts its lists."""
    work.mkdir(parents=True, exist_ok=True)
    central = work / "central"
    config = work / "gate.toml"
    config.write_text(_GATE_TOML, encoding="utf-8")
    folder = work / "passes"
    folder.mkdir(parents=True)

    def sync(*args: str) -> str:
        return _quiet(sync_cli.main, ["--data-dir", str(central), *args])

    sync("keys", "new")
    for i in range(passes):
        pass_id = f"CRASH{i:04d}"
        text = sync(
            "passes", "issue", "--scope", "compound:LGQ-012", "--unit", f"1-1-{100 + i}",
            "--kind", "resident", "--household", f"LGQ012-H{i:04d}", "--name", "张三",
            "--days", "30", "--pass-id", pass_id,
        )  # fmt: skip
        (folder / f"{pass_id}.txt").write_text(text.strip() + "\n", encoding="ascii")
    sync("lists", "export", "--out", str(work / "lists.json"))
    key = sync("keys", "centre").strip()
    lists = str(work / "lists.json")
    _quiet(agent_cli.main, ["--config", str(config), "lists", "import", lists, "--trust-key", key])
    return config


def check(config: Path, ledger: Path, run: Run) -> None:
    """The checks after a kill: integrity, the chain, contiguous seqs, every green present."""
    run.checks += 1
    where = f"after kill {run.kills}"
    # A read-write connection, as the restarted gate opens it: it recovers the WAL.
    conn = sqlite3.connect(ledger)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            run.failures.append(f"{where}: integrity_check {integrity}")
        rows = {
            seq: (pass_id, outcome, hash_)
            for seq, pass_id, outcome, hash_ in conn.execute(
                "SELECT seq, pass_id, outcome, hash FROM entries ORDER BY seq"
            )
        }
    finally:
        conn.close()
    run.entries_in_ledger = len(rows)
    if sorted(rows) != list(range(1, len(rows) + 1)):
        run.failures.append(f"{where}: sequence numbers are not 1..{len(rows)}")
    for green in run.greens.values():
        row = rows.get(green.seq)
        if row != (green.pass_id, "allow", green.hash):
            run.failures.append(f"{where}: green entry {green.seq} is {row}, was {green}")
    # The operator's command, run in this process (a process start per check adds nothing).
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = agent_cli.main(["--config", str(config), "verify-ledger"])
    if code != 0:
        run.failures.append(f"{where}: verify-ledger: {out.getvalue()}")


def _read_lines(fd: int, buffer: bytearray, timeout_s: float) -> list[str]:
    ready, _, _ = select.select([fd], [], [], timeout_s)
    if not ready:
        return []
    chunk = os.read(fd, 65536)
    if not chunk:
        raise EOFError
    buffer += chunk
    *lines, rest = buffer.split(b"\n")
    buffer[:] = rest
    return [line.decode() for line in lines]


def _take(run: Run, line: str) -> None:
    kind, *rest = line.split()
    if kind == "dark":
        run.dark.append(int(rest[0]))
        run.failures.append(f"entry {rest[0]} allowed but the green light was not lit")
        return
    seq, pass_id, hash_ = int(rest[0]), rest[1], rest[2]
    old = run.greens.get(seq)
    if old is not None and old != Green(seq, pass_id, hash_):
        run.failures.append(f"seq {seq} reused: {old} then {pass_id} {hash_}")
    run.greens[seq] = Green(seq, pass_id, hash_)


def build_shim(out: Path) -> Path:
    """Compile ``bench/powerloss.c`` into `out` (a shared object for LD_PRELOAD)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("--power-loss needs gcc to build bench/powerloss.c")
    source = ROOT / "bench" / "powerloss.c"
    command = [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out), str(source)]
    subprocess.run([*command, "-ldl"], check=True)
    return out


def _sync_shadow(data: Path, shadow: Path) -> None:
    """The disk as the closed ledger left it: every top-level file of `data`, synced."""
    if shadow.exists():
        shutil.rmtree(shadow)
    shadow.mkdir()
    for path in data.iterdir():
        if path.is_file():
            shutil.copy2(path, shadow / path.name)


def _cut_power(data: Path, shadow: Path, ledger: Path) -> None:
    """Replace the ledger's files with what the disk held (the shadow copies)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        real, kept = data / f"{ledger.name}{suffix}", shadow / f"{ledger.name}{suffix}"
        real.unlink(missing_ok=True)
        if kept.exists():
            shutil.copy2(kept, real)


def _start(
    config: Path, passes: Path, log: Path, env: dict[str, str] | None
) -> tuple[subprocess.Popen[bytes], int]:
    read_fd, write_fd = os.pipe()
    with log.open("ab") as sink:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.crash_agent",
                "--config",
                str(config),
                "--passes",
                str(passes),
                "--tap-fd",
                str(write_fd),
            ],
            pass_fds=(write_fd,),
            stdout=sink,
            stderr=sink,
            cwd=ROOT,
            env=env,
        )
    os.close(write_fd)
    return agent, read_fd


def crash_run(
    work: Path, *, entries: int, kills: int, seed: int, passes: int, power_loss: bool = False
) -> dict[str, Any]:
    """Run the gate to `entries` greens with `kills` SIGKILLs between; the report as a dict.

    `power_loss`: each kill also drops what SQLite had not synced (see ``bench/powerloss.c``).
    """
    rng = random.Random(seed)  # noqa: S311 - kill moments, not secrets
    config = prepare(work, passes)
    ledger = work / "gate" / "ledger.sqlite3"
    log = work / "agent.log"
    # Kill when the green count passes each point, then after a random delay that lands
    # anywhere in the following scan (a scan takes a few tens of milliseconds).
    points = sorted(rng.sample(range(1, entries), min(kills, entries - 1)))
    data, shadow = ledger.parent, work / "shadow"
    env = None
    if power_loss:
        shim = build_shim(work / "powerloss.so")
        env = {
            **os.environ,
            "LD_PRELOAD": str(shim),
            "CRASHSIM_ROOT": str(data.resolve()),
            "CRASHSIM_SHADOW": str(shadow.resolve()),
        }
    run = Run()
    started = time.monotonic()
    while True:
        if power_loss:
            _sync_shadow(data, shadow)
        agent, fd = _start(config, work / "passes", log, env)
        buffer = bytearray()
        target = points[run.kills] if run.kills < len(points) else entries
        try:
            while len(run.greens) < target:
                if agent.poll() is not None:
                    raise RuntimeError(f"the agent exited with {agent.returncode}; see {log}")
                for line in _read_lines(fd, buffer, 1.0):
                    _take(run, line)
        except EOFError:
            raise RuntimeError(f"the agent closed its tap; see {log}") from None
        last = run.kills >= len(points)
        if not last:
            time.sleep(rng.uniform(0.0, 0.15))
            agent.send_signal(signal.SIGKILL)
        else:
            agent.send_signal(signal.SIGTERM)
        agent.wait()
        # Lines written before the kill are still in the pipe: they count.
        with contextlib.suppress(EOFError):
            while lines := _read_lines(fd, buffer, 0.0) or None:
                for line in lines:
                    _take(run, line)
        os.close(fd)
        if not last:
            run.kills += 1
            if power_loss:
                _cut_power(data, shadow, ledger)
        check(config, ledger, run)
        if last:
            break
        run.restarts += 1
    seconds = time.monotonic() - started
    return {
        "entries_target": entries,
        "greens": len(run.greens),
        "entries_in_ledger": run.entries_in_ledger,
        "kills": run.kills,
        "restarts": run.restarts,
        "checks": run.checks,
        "seed": seed,
        "passes": passes,
        "power_loss": power_loss,
        "seconds": round(seconds, 1),
        "greens_per_second": round(len(run.greens) / seconds, 2),
        "failures": run.failures,
        "ok": not run.failures,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness and write its JSON report; 1 when any check failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.crash")
    parser.add_argument("--entries", type=int, default=10_000, help="green entries to reach")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs spread over the run")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--passes", type=int, default=12, help="residents walking in and out")
    parser.add_argument(
        "--power-loss", action="store_true", help="drop unsynced writes at each kill (gcc)"
    )
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/crash.json"))
    args = parser.parse_args(argv)
    name = "crash_powerloss" if args.power_loss else "crash"
    if args.power_loss and shutil.which("gcc") is None:
        skipped = "no gcc here: the power-loss shim (bench/powerloss.c) cannot be built"
        print(f"bench.crash --power-loss: {skipped}", file=sys.stderr)
        write_report({**report_header(name), "skipped": skipped}, args.out)
        return 0
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        result = crash_run(
            work,
            entries=args.entries,
            kills=args.kills,
            seed=args.seed,
            passes=args.passes,
            power_loss=args.power_loss,
        )
    write_report({**report_header(name), **result}, args.out)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
