"""`gate-agent demo` and `gate-agent guards`, as a newcomer and a shift leader use them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from gate_agent import cli, simulation
from gate_agent.assemble import open_gate
from gate_agent.config import load_config
from tests.limits import PATIENCE_S
from tests.test_station import make_pass, trust_key

ROOT = Path(__file__).resolve().parents[1]


def demo_config(tmp_path: Path) -> Path:
    text = (ROOT / "firmware_config" / "demo" / "gate.toml").read_text(encoding="utf-8")
    text = text.replace('compound_id = "LGQ-012"', 'compound_id = "C1"')
    text = text[: text.index("[console]")] + "[console]\nenabled = false\n"
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_walks_visitors_through_and_prints_each_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = demo_config(tmp_path)
    config = load_config(path)
    with open_gate(config, start=False) as gate:
        trust_key(gate)
    passes = tmp_path / "passes"
    passes.mkdir()
    (passes / "a.txt").write_text(make_pass("DEMO0001"), encoding="ascii")
    (passes / "b.txt").write_text(make_pass("DEMO0002", household="H0404"), encoding="ascii")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps([
        {"label": "resident in", "pass": "a", "body_celsius": 36.5},
        {"label": "feverish", "pass": "b", "body_celsius": 38.4, "style": "paper"},
        {"label": "resident out", "pass": "a", "lane": "out", "body_celsius": None},
    ]), encoding="utf-8")  # fmt: skip
    code = cli.main(["--config", str(path), "demo", "--scenario", str(scenario),
                     "--passes", str(passes), "--rounds", "1", "--pace", "0.1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith(("resident", "feverish"))]
    assert len(lines) == 3
    assert "ALLOW" in lines[0] and "RECHECK" in lines[1] and "ALLOW" in lines[2]
    assert "3 entries in the ledger; chain intact." in out


def demo_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The demo's config, a folder of two passes and a scenario of three visits."""
    path = demo_config(tmp_path)
    with open_gate(load_config(path), start=False) as gate:
        trust_key(gate)
    passes = tmp_path / "passes"
    passes.mkdir()
    (passes / "a.txt").write_text(make_pass("DEMO0001"), encoding="ascii")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps([
        {"label": "resident in", "pass": "a", "body_celsius": 36.5},
        {"label": "resident out", "pass": "a", "lane": "out", "body_celsius": None},
    ]), encoding="utf-8")  # fmt: skip
    return path, passes, scenario


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_endless_demo_stops_on_a_signal_even_from_a_background_job(
    tmp_path: Path, stop: signal.Signals
) -> None:
    # Found by the soak (bench/soak_gate.py) started as `make soak &`: a shell's background
    # job leaves SIGINT ignored, Python then never raises KeyboardInterrupt, and the demo
    # went on scanning after Ctrl-C's signal. The harness now sends SIGTERM; both work.
    path, passes, scenario = demo_files(tmp_path)
    # Ignored, then exec: as a shell's `cmd &` leaves it (an ignored signal survives exec).
    ignoring = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")  # fmt: skip
    command = [sys.executable, "-c", ignoring, "-m", "gate_agent.cli", "--config", str(path),
               "demo", "--scenario", str(scenario), "--passes", str(passes), "--rounds", "0",
               "--pace", "0.1"]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("resident out"):
                break
        process.send_signal(stop)
        out, _ = process.communicate(timeout=PATIENCE_S)  # TimeoutExpired: it went on
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, out
    assert "stopping" in out and "chain intact" in out


def test_the_demo_can_send_a_visitor_every_so_many_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by the hour's soak: it took 1 s off its 2 s interval for "the visit itself",
    # which takes a fifth of that, and sent 51 people a minute instead of 30. With
    # --every each visit and the quiet after it take the period, whatever the visit took.
    path, passes, scenario = demo_files(tmp_path)
    waits: list[float] = []
    clock = types.SimpleNamespace(monotonic=time.monotonic, sleep=waits.append)
    monkeypatch.setattr(simulation, "time", clock)  # the demo's waits only, not the gate's
    code = cli.main(["--config", str(path), "demo", "--scenario", str(scenario),
                     "--passes", str(passes), "--rounds", "1", "--every", "60"])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert len(waits) == 2 and all(55 < wait < 60 for wait in waits)  # 60 s less the visit
    code = cli.main(["--config", str(path), "demo", "--scenario", str(scenario),
                     "--passes", str(passes), "--rounds", "1", "--pace", "7"])  # fmt: skip
    assert code == 0 and waits[2:] == [7.0, 7.0]


def test_a_scenario_naming_a_missing_pass_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = demo_config(tmp_path)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps([{"label": "x", "pass": "absent"}]), encoding="utf-8")
    code = cli.main(["--config", str(path), "demo", "--scenario", str(scenario),
                     "--passes", str(tmp_path)])  # fmt: skip
    assert code == 1
    assert "not a usable scenario" in capsys.readouterr().err


def test_guards_are_put_on_shift_listed_and_taken_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(demo_config(tmp_path))
    assert cli.main(["--config", path, "guards", "add", "李师傅", "--hours", "8"]) == 0
    added = capsys.readouterr().out
    pin = added.split("PIN ")[1].split(",")[0]
    assert len(pin) == 6 and pin.isdigit()
    roster = tmp_path / "gate" / "guards.json"
    assert roster.stat().st_mode & 0o777 == 0o600
    assert pin not in roster.read_text(encoding="utf-8")
    assert cli.main(["--config", path, "guards", "list"]) == 0
    assert "李师傅" in capsys.readouterr().out
    assert cli.main(["--config", path, "guards", "remove", "李师傅"]) == 0
    assert cli.main(["--config", path, "guards", "remove", "李师傅"]) == 1
    assert cli.main(["--config", path, "guards", "add", "x", "--hours", "30"]) == 1
