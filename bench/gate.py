"""The live gate's figures: decoding, empty frames, frame to decision, throughput, memory.

Run as ``python -m bench.gate --out bench/out/gate.json``. Key names are fixed by
the live-gate issue; baselines are measured in the same run (zxing-cpp alone
for decoding; a bare interpreter with the same libraries for memory).
"""

from __future__ import annotations

import argparse
import base64
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import report_header, versus, write_report
from bench.decode import DEFAULT_PHOTOS, decode_figures, empty_frame_figures
from gate_agent import allocator
from gate_agent.assemble import open_gate
from gate_agent.config import GateConfig, load_config
from gate_agent.core.passes import PassFields, PassKind, Scope, key_id, mask_name, sign
from gate_agent.hardware.decoder import QrDecoder
from gate_agent.hardware.render import PAPER, PHONE, PRESETS, render_pass
from gate_agent.ledger import Ledger, verify_ledger_file
from gate_agent.simulation import Visit, run_visits

KEY = Ed25519PrivateKey.generate()
GAP_S = 0.2  # seconds between one visitor's decision and the next one's pass
_LIBRARIES = "import cv2, zxingcpp, numpy, pyzbar.pyzbar, gpiozero, sqlite_utils, cryptography"


def passes(count: int) -> list[str]:
    """Distinct valid passes for the bench gate's compound."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        sign(
            PassFields(
                pass_id=f"BENCH{i:05d}",
                kind=PassKind.RESIDENT,
                household_id=f"H{i:05d}",
                scope=Scope.parse("compound:C1"),
                valid_from=now - timedelta(days=1),
                valid_until=now + timedelta(days=30),
                display_name=mask_name("王小明"),
                unit=f"{i % 9 + 1}-1-{100 + i}",
            ),
            KEY,
        )
        for i in range(count)
    ]


def gate_toml(folder: Path, camera: str, extra: str = "") -> Path:
    """A screening gate with a simulated thermometer and mock pins."""
    path = folder / "gate.toml"
    path.write_text(
        f"""[gate]
id = "BENCH-1"
compound_id = "C1"
community_id = "M1"
data_dir = "gate"

[[cameras]]
source = "{camera}"
direction = "in"
{extra}
[scanner]
debounce_seconds = 1.0

[thermometer]
kind = "simulated"
warmup_seconds = 0

[signals]
kind = "mock"
open_seconds = 0.2
hold_seconds = 0.2
""",
        encoding="utf-8",
    )
    return path


def trust(config: GateConfig) -> None:
    """Give the bench gate the bench issuer's key."""
    raw = base64.b64encode(KEY.public_key().public_bytes_raw()).decode()
    item = {"kid": key_id(KEY.public_key()), "public_key": raw, "retired": False}
    with Ledger.open(config.ledger_path, gate_id=config.gate.id) as ledger:
        ledger.state.apply_snapshots({"keys": (1, [item])})


def throughput(folder: Path, count: int) -> dict[str, Any]:
    """Walk `count` screened residents through a simulated gate; latency and rate."""
    config = load_config(gate_toml(folder, "sim:"))
    trust(config)
    visits = [
        Visit(f"resident {i}", text, body_celsius=36.4 + (i % 5) / 10)
        for i, text in enumerate(passes(count))
    ]
    latencies: list[float] = []
    with open_gate(config) as gate:
        started = time.perf_counter()
        events = run_visits(gate, visits, on_decision=lambda v, e: None, gap_s=GAP_S)
        elapsed = time.perf_counter() - started
    decided = [e for e in events if e is not None]
    latencies = [float(e.data["latency_ms"]) for e in decided]
    allowed = sum(e.data["outcome"] == "allow" for e in decided)
    decode_only = zxing_decode_ms(visits)
    return {
        "frame_to_decision_ms": {
            "median": round(statistics.median(latencies), 2),
            "p95": _p95(latencies),
        },
        # Every scan's latency in the order of the visits, for the report's distribution plot.
        "frame_to_decision_ms_each": [round(ms, 2) for ms in latencies],
        "zxingcpp_decode_ms": {
            "median": round(statistics.median(decode_only), 2),
            "p95": _p95(decode_only),
        },
        "visit_gap_seconds": GAP_S,
        "persons_per_minute": round(len(decided) / elapsed * 60, 1),
        "persons": count,
        "allowed": allowed,
    }


def zxing_decode_ms(visits: list[Visit]) -> list[float]:
    """The decision latency's baseline: zxing-cpp alone reading each visit's rendered frame.

    Every reader pays for this much before anything is verified, decided or signalled.
    """
    decoder = QrDecoder(("zxing-cpp",))
    frames = [render_pass(v.text, PRESETS[v.style]) for v in visits]
    decoder.decode(frames[0])  # warm-up
    times = []
    for frame in frames:
        start = time.perf_counter()
        if not decoder.decode(frame):
            raise RuntimeError("zxing-cpp did not read a rendered pass")
        times.append((time.perf_counter() - start) * 1000)
    return times


def _p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20)[-1], 2) if len(values) > 1 else values[0]


def peak_rss(folder: Path, count: int) -> dict[str, float]:
    """Peak resident memory of `gate-agent run` reading a folder of pass photos."""
    images = folder / "photos"
    images.mkdir()
    for i, text in enumerate(passes(count)):
        cv2.imwrite(str(images / f"{i:03d}.png"), render_pass(text, PHONE if i % 2 else PAPER))
    path = gate_toml(folder, f"folder:{images}", "interval_seconds = 0.5\n")
    config = load_config(path)
    trust(config)
    agent = Path(sys.executable).with_name("gate-agent")
    process = subprocess.Popen(
        [str(agent), "--config", str(path), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + count * 0.5 + 120  # reached only when something is wrong
    entries, peak_kib = 0, 0
    while time.monotonic() < deadline and entries < count:
        time.sleep(0.5)
        entries = verify_ledger_file(config.ledger_path).entries_checked
        peak_kib = max(peak_kib, vm_hwm_kib(process.pid))
    process.send_signal(signal.SIGTERM)
    exit_code = process.wait(timeout=30)
    baseline = subprocess.run(
        [sys.executable, "-c", f"{_LIBRARIES}; print(next(l.split()[1] for l in "
         "open('/proc/self/status') if l.startswith('VmHWM:')))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "baseline_libraries_rss_mb": round(int(baseline.stdout) / 1024, 1),
        "run_exit_code": exit_code,
        "run_entries": entries,
    }


def vm_hwm_kib(pid: int) -> int:
    """A process's peak resident memory so far (VmHWM), in KiB.

    Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a child
    of a large parent would report the parent's peak.
    """
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def gate_versus(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The live gate's figures beside their baselines, all measured in this run."""
    empty, latency = report["empty_frame_ms"], report["frame_to_decision_ms"]
    decode_only = report["zxingcpp_decode_ms"]
    zxing = "zxing-cpp alone decoding the same passes, rendered as the camera shows them"
    # What the script allows: a visitor every gap, plus the bare decode of their pass.
    ceiling = 60 / (report["visit_gap_seconds"] + decode_only["median"] / 1000)
    return [
        versus("frame_to_decision_ms.median", latency["median"], decode_only["median"],
               unit="ms", baseline=zxing + " (median)"),
        versus("frame_to_decision_ms.p95", latency["p95"], decode_only["p95"], unit="ms",
               baseline=zxing + " (p95)"),
        versus("persons_per_minute", report["persons_per_minute"], round(ceiling, 1),
               unit="persons/min",
               baseline="the script's ceiling, 60 / (visit gap + zxing-cpp decode median); "
               "the rest is the gate's own work, its signal hold, the temperature window"),
        versus("empty_frame_ms.1280x720", empty["1280x720"], empty["zxingcpp_only_1280x720"],
               unit="ms", baseline="zxing-cpp alone on the same empty frames"),
        versus("peak_rss_mb", report["peak_rss_mb"], report["memory"]["baseline_libraries_rss_mb"],
               unit="MB", baseline="a bare interpreter that imports the same libraries"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/gate.json"))
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--persons", type=int, default=40)
    args = parser.parse_args(argv)
    # The gate's own allocator settings (gate-agent run sets them), so the figures
    # include what mapping each frame costs; the baselines run under the same.
    tuning = allocator.tune()
    report: dict[str, Any] = report_header("gate", ("opencv-python-headless", "zxing-cpp"))
    report["allocator"] = tuning.applied or tuning.reason
    if (args.photos / "positives" / "manifest.json").is_file():
        report["decode"] = decode_figures(args.photos, args.repeat)
    else:
        report["decode"] = {"skipped": f"no photo set at {args.photos}"}
    empty = report["empty_frame_ms"] = empty_frame_figures(args.repeat)
    report["ratio_empty_frame_vs_zxingcpp_only"] = round(
        empty["1280x720"] / empty["zxingcpp_only_1280x720"], 3
    )
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        live, run = Path(tmp, "live"), Path(tmp, "run")
        live.mkdir()
        run.mkdir()
        report.update(throughput(live, args.persons))
        memory = peak_rss(run, max(4, args.persons // 4))
    report["peak_rss_mb"] = memory.pop("peak_rss_mb")
    report["memory"] = memory
    report["vs_baseline"] = gate_versus(report)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
