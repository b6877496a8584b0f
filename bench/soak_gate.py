"""Soak of one gate: an hour of people, one every 2 s; memory, file descriptors, latency.

Run as ``python -m bench.soak_gate --out bench/out/soak-gate.json`` (``make soak``).

Everything is the real station but the hardware: the centre's commands issue the
passes and export the signed lists, a ``gate-sync serve`` takes the gate's uploads; the
gate enrols and imports the lists as an installer does (the operators' commands run
through their CLIs' ``main`` in this process), then ``gate-agent demo`` runs it: the same
``open_gate`` as ``gate-agent run`` (scan loop, ledger, uploader, guard console with
/metrics) on simulated cameras and thermometer and gpiozero's mock pins, with scripted
people walking through (``gate-agent run`` has no way to put a pass before a ``sim:``
camera from outside its process; ``demo`` does it in-process). The people cycle through
residents in and out, refusals (expired, revoked, an isolated household, a pass of
another compound), a fever re-check, a visitor and a delivery worker.

Every ``--sample-seconds`` the harness reads the agent process's VmRSS and thread count
(/proc/PID/status), its open file descriptors (/proc/PID/fd) and the console's /metrics
(sync backlog, ledger entries). Each decision's latency comes from the demo's own
line for it (frame grabbed to decision committed, as the /metrics histogram has it).

Definitions (the summary says them too):
- warm-up: the first ``--warmup-seconds`` (default 20 % of the run, at most 300 s).
- window: ``min(600 s, a quarter of the time after warm-up)``.
- ``rss_growth_mb``: how much VmRSS rose from the first window after warm-up to the
  last, taken on both levels memory moves between: its floor (the least of a window;
  a leak raises it) and its peaks (the most; ~30 MB of frames come and go), the larger
  of the two. A median would follow the share of time spent high. Limit: 5 MB.
- ``fd_growth``: the same with open file descriptors (medians). Limit: 0.
- latency slices: the time after warm-up cut into ``--slices`` equal parts; p50/p95 of
  each. ``latency_ratio_last_first``: p50 of the last slice over p50 of the first.
  Limit: ``--latency-ratio-max`` (default 1.5; the machine may be shared).
- every person shown got a decision, and the ledger holds one entry for each (and at
  most one more: the person at the gate when the demo is stopped may be recorded
  before their line is printed; ``entries_in_flight_at_stop`` says).
- the backlog drains: after the demo stops, ``gate-agent run`` (as the service runs it)
  is started on the same ledger until the centre holds every entry.
Exit status 1 when a limit fails; the JSON says which under ``failed``. With
``--report-only`` (the smoke test's tiny runs) only the entries, the chain and the drain
are enforced.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx

from bench.centre import free_port, serving
from bench.common import report_header, write_report
from gate_agent import cli as agent_cli
from gate_agent.config import load_config
from gate_agent.ledger import Ledger, verify_ledger_file
from sync import cli as sync_cli
from sync.store import SqliteStreamStore

GATE_ID = "SOAK-1"
COMPOUND = "SOAK-C"
RSS_LIMIT_MB = 5.0
FD_LIMIT = 0
# (label, pass, lane, body temperature or None, style); refusals and a re-check included.
SCENARIO: list[tuple[str, str, str, float | None, str]] = [
    ("resident A in", "resident_a", "in", 36.5, "phone"),
    ("resident B in", "resident_b", "in", 36.6, "phone"),
    ("visitor in", "visitor", "in", 36.7, "phone"),
    ("resident A out", "resident_a", "out", None, "phone"),
    ("expired pass", "expired", "in", 36.7, "paper"),
    ("resident C in (card)", "resident_c", "in", 36.4, "paper"),
    ("revoked pass", "revoked", "in", 36.4, "phone"),
    ("isolated household out", "isolated", "out", None, "phone"),
    ("fever", "fever", "in", 38.2, "phone"),
    ("resident B out", "resident_b", "out", None, "phone"),
    ("delivery in", "delivery", "in", 36.8, "paper"),
    ("another compound's pass", "elsewhere", "in", 36.6, "phone"),
    ("visitor out", "visitor", "out", None, "phone"),
    ("delivery out", "delivery", "out", None, "paper"),
    ("resident C out", "resident_c", "out", None, "paper"),
]
_LATENCY = re.compile(r"\[(\d+) ms\]")
_OUTCOME = re.compile(r"\b(ALLOW|DENY|RECHECK)\b")


def tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise RuntimeError(f"{name} is not installed beside this Python")
    return path


def sh(*command: str) -> str:
    """Run an operator's command, ``gate-sync ...`` or ``gate-agent ...``; its stdout.

    In this process, through the command's own ``main`` (the same code as the console
    script, without a Python start per command); a failure raises with its stderr.
    """
    mains = {"gate-sync": sync_cli.main, "gate-agent": agent_cli.main}
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = mains[Path(command[0]).name](list(command[1:]))
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:4])}…: {err.getvalue().strip()[-400:]}")
    return out.getvalue()


def make_centre(central: Path, passes: Path) -> None:
    """Issuer key, passes of every kind the scenario needs, a revocation, an isolation."""
    sync = [tool("gate-sync"), "--data-dir", str(central)]
    sh(*sync, "keys", "new")
    issue = [*sync, "passes", "issue", "--scope", f"compound:{COMPOUND}", "--unit", "1-1-101"]
    made = {
        "resident_a": [*issue, "--kind", "resident", "--household", "H1", "--name", "张三明",
                       "--days", "90"],
        "resident_b": [*issue, "--kind", "resident", "--household", "H2", "--name", "李四",
                       "--days", "90"],
        "resident_c": [*issue, "--kind", "tenant", "--household", "H3", "--name", "王五",
                       "--days", "90"],
        "visitor": [*issue, "--kind", "visitor", "--household", "H1", "--name", "陈客",
                    "--days", "2"],
        "expired": [*issue, "--kind", "resident", "--household", "H4", "--name", "赵六",
                    "--valid-from", "2026-01-01", "--valid-until", "2026-01-31"],
        "revoked": [*issue, "--kind", "tenant", "--household", "H5", "--name", "钱七",
                    "--days", "90", "--pass-id", "SOAKREVOKED"],
        "isolated": [*issue, "--kind", "resident", "--household", "H6", "--name", "孙八",
                     "--days", "90"],
        "fever": [*issue, "--kind", "resident", "--household", "H7", "--name", "周九",
                  "--days", "90"],
        "elsewhere": [*sync, "passes", "issue", "--scope", "compound:OTHER", "--unit", "2-1-1",
                      "--kind", "resident", "--household", "H8", "--name", "吴十", "--days", "90"],
        "delivery": [*sync, "passes", "issue", "--scope", "community:SOAK", "--kind",
                     "delivery", "--household", "SOAK-DELIVERY", "--name", "吴师傅",
                     "--days", "30"],
    }  # fmt: skip
    for name, command in made.items():
        (passes / f"{name}.txt").write_text(sh(*command), encoding="ascii")
    sh(*sync, "passes", "revoke", "SOAKREVOKED", "--reason", "moved out")
    sh(*sync, "households", "isolate", "H6", "--until", "2099-12-31", "--note", "soak")


def gate_toml(folder: Path, console_port: int, server_url: str) -> Path:
    """The demo gate's configuration, on a free console port, syncing to ``server_url``."""
    text = (Path(__file__).parents[1] / "firmware_config/demo/gate.toml").read_text("utf-8")
    text = text.replace('id = "LGQ-012-N"', f'id = "{GATE_ID}"')
    text = text.replace('compound_id = "LGQ-012"', f'compound_id = "{COMPOUND}"')
    text = text.replace('community_id = "LGQ"', 'community_id = "SOAK"')
    text = text.replace("port = 8080", f"port = {console_port}")
    text = text.replace('server_url = "http://127.0.0.1:8600"', f'server_url = "{server_url}"')
    if f"port = {console_port}" not in text or server_url not in text:
        raise RuntimeError("firmware_config/demo/gate.toml changed: update bench/soak_gate.py")
    path = folder / "gate.toml"
    path.write_text(text, encoding="utf-8")
    token = folder / "admin.token"
    token.write_text("soak-console-token-0123456789", encoding="utf-8")
    token.chmod(0o600)
    return path


def proc_sample(pid: int) -> dict[str, float]:
    """VmRSS (MB), threads and open file descriptors of a live process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.split()
    return {
        "rss_mb": round(int(fields["VmRSS"][0]) / 1024, 2),
        "threads": int(fields["Threads"][0]),
        "fds": sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()),
    }


def scrape(url: str) -> dict[str, float]:
    """The few /metrics values the soak follows (empty when the console does not answer)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    wanted = {
        "gate_sync_backlog_entries": "backlog",
        "gate_ledger_entries": "ledger_entries",
        "gate_decision_latency_seconds_count": "decisions",
        "gate_decision_latency_seconds_sum": "decision_seconds_sum",
        "gate_sqlite_memory_bytes": "sqlite_bytes",
    }
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


@contextmanager
def agent(command: list[str], log: Path) -> Iterator[subprocess.Popen[str]]:
    """A gate-agent process with its stdout piped (unbuffered); SIGTERM, then kill, on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        yield process
    finally:
        if process.stdout is not None:
            process.stdout.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def soak(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    central, passes = folder / "central", folder / "passes"
    central.mkdir()
    passes.mkdir()
    make_centre(central, passes)
    sh(tool("gate-sync"), "--data-dir", str(central), "lists", "export", "--out",
       str(folder / "lists.json"))  # fmt: skip
    scenario = folder / "scenario.json"
    scenario.write_text(json.dumps([
        {"label": label, "pass": name, "lane": lane, "body_celsius": celsius, "style": style}
        for label, name, lane, celsius, style in SCENARIO
    ], ensure_ascii=False), encoding="utf-8")  # fmt: skip
    console_port = free_port()
    console = f"http://127.0.0.1:{console_port}"
    with serving(central, None) as server_url:
        config_path = gate_toml(folder, console_port, server_url)
        config = load_config(config_path)
        gate = [tool("gate-agent"), "--config", str(config_path)]
        code = sh(tool("gate-sync"), "--data-dir", str(central), "gates", "enrol", GATE_ID)
        sh(*gate, "sync", "enrol", "--code", code.strip())
        sh(*gate, "lists", "import", str(folder / "lists.json"))

        # A person every `interval` seconds: the visit, then nobody until the next.
        decisions: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        command = [*gate, "demo", "--scenario", str(scenario), "--passes", str(passes),
                   "--rounds", "0", "--every", f"{args.interval:g}"]  # fmt: skip
        started = time.monotonic()  # set again once the console answers
        with agent(command, folder / "demo.log") as process:
            assert process.stdout is not None
            stdout = process.stdout

            def read() -> None:
                for line in stdout:
                    if line.startswith(tuple(label for label, *_ in SCENARIO)):
                        latency = _LATENCY.search(line)
                        outcome = _OUTCOME.search(line)
                        decisions.append({
                            "t": round(time.monotonic() - started, 2),
                            "latency_ms": int(latency.group(1)) if latency else None,
                            "outcome": outcome.group(1) if outcome else None,
                        })  # fmt: skip

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            wait_for(lambda: scrape(console), 300, "the gate console")
            started = time.monotonic()  # the people before fall in the warm-up
            while (elapsed := time.monotonic() - started) < args.seconds:
                if process.poll() is not None:
                    raise RuntimeError(f"the gate stopped early with {process.returncode}")
                samples.append(
                    {"t": round(elapsed, 1), **proc_sample(process.pid), **scrape(console)}
                )
                time.sleep(min(args.sample_seconds, max(0.0, args.seconds - elapsed)))
            # SIGTERM: SIGINT is ignored in a shell's background job (`make soak &`).
            process.send_signal(signal.SIGTERM)
            demo_exit: int | None
            try:
                demo_exit = process.wait(timeout=120)
            except subprocess.TimeoutExpired:  # reported under "failed", not lost
                process.kill()
                process.wait()
                demo_exit = None
            reader.join(timeout=10)
        ran_seconds = time.monotonic() - started

        # The backlog left when the demo stopped goes up when the agent starts again.
        with Ledger.open(config.ledger_path, gate_id=GATE_ID) as ledger:
            stream, last_seq = ledger.stream_id, ledger.last_seq()
        with (
            agent([*gate, "run"], folder / "run.log"),
            closing(SqliteStreamStore(central / "central.sqlite3")) as store,
        ):
            drain_started = time.monotonic()
            wait_for(
                lambda: last_seq > 0 and store.stored_through(GATE_ID, stream) >= last_seq,
                300, "the centre to hold every entry",
            )  # fmt: skip
            drain_seconds = time.monotonic() - drain_started
            stored = store.stored_through(GATE_ID, stream)
        verified = verify_ledger_file(config.ledger_path)
    return summarise(args, samples, decisions, {
        "seconds_run": round(ran_seconds, 1),
        "demo_exit_code": demo_exit,
        "ledger_entries": verified.entries_checked,
        "ledger_chain_ok": verified.ok,
        "centre_stored_through": stored,
        "drain_after_restart_seconds": round(drain_seconds, 1),
        "every_seconds": args.interval,
    })  # fmt: skip


def summarise(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    end: dict[str, Any],
) -> dict[str, Any]:
    """The figures and the limits' verdicts."""
    run_s = end["seconds_run"]
    warmup = args.warmup_seconds if args.warmup_seconds is not None else min(300, 0.2 * run_s)
    window = min(600.0, (run_s - warmup) / 4)
    after = [s for s in samples if s["t"] >= warmup] or samples
    if not after:
        raise RuntimeError("no sample of the agent: run longer or sample more often")
    # A window holds one sample at least (a short run on a loaded machine samples slowly).
    first = [s for s in after if s["t"] < warmup + window] or after[:1]
    last = [s for s in after if s["t"] >= run_s - window] or after[-1:]

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    # Memory is two-level: a floor, and ~30 MB more while frames are being made and
    # decoded. A median follows the share of time spent high; the floor (the least of
    # a window) is what a leak raises, the peak (the most) what a leak in frames raises.
    floor_growth = round(min(r["rss_mb"] for r in last) - min(r["rss_mb"] for r in first), 2)
    peak_growth = round(max(r["rss_mb"] for r in last) - max(r["rss_mb"] for r in first), 2)
    rss_growth = max(floor_growth, peak_growth)
    # SQLite's share (its page cache fills as the ledger grows, up to its bound): medians.
    sqlite_mb = [
        [r["sqlite_bytes"] / 2**20 for r in rows if "sqlite_bytes" in r] for rows in (first, last)
    ]
    sqlite_growth = (
        round(statistics.median(sqlite_mb[1]) - statistics.median(sqlite_mb[0]), 2)
        if all(sqlite_mb)
        else None
    )
    fd_growth = med(last, "fds") - med(first, "fds")
    slice_s = (run_s - warmup) / args.slices
    slices = []
    for n in range(args.slices):
        lo, hi = warmup + n * slice_s, warmup + (n + 1) * slice_s
        values = [float(d["latency_ms"]) for d in decisions
                  if lo <= d["t"] < hi and d["latency_ms"] is not None]  # fmt: skip
        slices.append({
            "from_s": round(lo), "to_s": round(hi), "decisions": len(values),
            "p50_ms": percentile(values, 0.5) if values else None,
            "p95_ms": percentile(values, 0.95) if values else None,
        })  # fmt: skip
    p50_first, p50_last = slices[0]["p50_ms"], slices[-1]["p50_ms"]
    ratio = round(p50_last / p50_first, 3) if p50_first and p50_last else None
    shown = len(decisions)
    undecided = sum(1 for d in decisions if d["latency_ms"] is None)
    outcomes: dict[str, int] = {}
    for d in decisions:
        outcomes[str(d["outcome"])] = outcomes.get(str(d["outcome"]), 0) + 1
    summary = {
        "people_shown": shown,
        "people_per_minute": round(shown / run_s * 60, 1),
        "undecided": undecided,
        "outcomes": outcomes,
        **end,
        # The stop may land between a decision's commit and its line: one entry more at most.
        "entries_in_flight_at_stop": end["ledger_entries"] - shown,
        "entries_equal_people": end["ledger_entries"] - shown in (0, 1),
        "backlog_drained": end["centre_stored_through"] == end["ledger_entries"],
        "max_backlog_after_warmup": max((s.get("backlog", 0) for s in after), default=0),
        "warmup_seconds": round(warmup),
        "window_seconds": round(window),
        "rss_mb_first_window": {
            "min": min(r["rss_mb"] for r in first),
            "median": med(first, "rss_mb"),
            "max": max(r["rss_mb"] for r in first),
        },
        "rss_mb_last_window": {
            "min": min(r["rss_mb"] for r in last),
            "median": med(last, "rss_mb"),
            "max": max(r["rss_mb"] for r in last),
        },
        "rss_floor_growth_mb": floor_growth,
        "rss_peak_growth_mb": peak_growth,
        "rss_growth_mb": rss_growth,
        "sqlite_memory_growth_mb": sqlite_growth,
        "fds_first_window": med(first, "fds"),
        "fds_last_window": med(last, "fds"),
        "fd_growth": fd_growth,
        "threads_first_window": med(first, "threads"),
        "threads_last_window": med(last, "threads"),
        "latency_slices": slices,
        "latency_ratio_last_first": ratio,
        "definitions": {
            "rss_growth_mb": "the larger of rss_floor_growth_mb (least VmRSS of the last "
            "window minus the least of the first window after warm-up) and "
            "rss_peak_growth_mb (the same with the most); window = min(600 s, a quarter "
            "of the time after warm-up)",
            "fd_growth": "the same with open file descriptors (medians)",
            "sqlite_memory_growth_mb": "how much of it SQLite's own allocator took: "
            "gate_sqlite_memory_bytes, median of the last window minus the first's",
            "latency_ratio_last_first": "p50 of the last latency slice over the first",
        },
        "limits": {
            "rss_growth_mb_at_most": RSS_LIMIT_MB,
            "fd_growth_at_most": FD_LIMIT,
            "latency_ratio_at_most": args.latency_ratio_max,
        },
    }
    failed = []
    if rss_growth > RSS_LIMIT_MB:
        failed.append("rss_growth_mb")
    if fd_growth > FD_LIMIT:
        failed.append("fd_growth")
    if ratio is None or ratio > args.latency_ratio_max:
        failed.append("latency_ratio_last_first")
    if args.report_only:
        summary["limits_not_enforced"] = failed
        failed = []
    if undecided or not summary["entries_equal_people"] or not end["ledger_chain_ok"]:
        failed.append("entries_equal_people")
    if not summary["backlog_drained"]:
        failed.append("backlog_drained")
    if end["demo_exit_code"] != 0:
        failed.append("demo_exit_code")
    summary["failed"] = failed
    summary["series"] = samples
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print its JSON and write it to --out; 1 when a limit fails."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak_gate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/soak-gate.json"))
    parser.add_argument("--seconds", type=float, default=3600.0, help="how long people come")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between people")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        help="default: 20 %% of the run, at most 300 s",
    )
    parser.add_argument("--slices", type=int, default=6, help="latency slices after warm-up")
    parser.add_argument("--latency-ratio-max", type=float, default=1.5)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="memory, fd and latency limits are reported, not enforced "
        "(the smoke test: too short a run to judge them)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    report: dict[str, Any] = {**report_header("soak_gate", ("uvicorn", "httpx"))}
    report["seconds"], report["interval_seconds"] = args.seconds, args.interval
    with tempfile.TemporaryDirectory(prefix="soak-gate-", dir=Path.cwd()) as tmp:
        report.update(soak(args, Path(tmp)))
    write_report(report, args.out)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
