"""`gate-agent doctor` and `gate-agent run`, as a technician and systemd use them."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent import cli
from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig, load_config
from gate_agent.doctor import Status, failed, run_checks, table
from gate_agent.hardware.decoder import ENGINES
from gate_agent.hardware.render import PAPER, PHONE, render_pass
from gate_agent.ledger import Ledger, verify_ledger_file
from tests.ledger.helpers import draft, tamper
from tests.limits import PATIENCE_S
from tests.test_station import KEY, make_pass

SIM = """
[gate]
id = "G1"
compound_id = "C1"
community_id = "M1"
data_dir = "gate"

[[cameras]]
source = "{source}"
direction = "in"
interval_seconds = 0.4

[scanner]
debounce_seconds = 1.0

[thermometer]
kind = "simulated"
warmup_seconds = 0
{thermometer}
[signals]
kind = "mock"
open_seconds = 0.2
hold_seconds = 0.2
"""


def write_config(tmp_path: Path, source: str = "sim:", thermometer: str = "") -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(SIM.format(source=source, thermometer=thermometer), encoding="utf-8")
    return path


def trust(config: GateConfig, key: Ed25519PrivateKey = KEY) -> None:
    from gate_agent.core.passes import key_id

    raw = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    item = {"kid": key_id(key.public_key()), "public_key": raw, "retired": False}
    with Ledger.open(config.ledger_path, gate_id=config.gate.id) as ledger:
        ledger.state.apply_snapshots(
            {"keys": (1, [item]), "revocations": (1, []), "isolations": (1, [])}
        )


def results(config: GateConfig, clock: FakeClock) -> dict[str, Status]:
    return {check.name: check.status for check in run_checks(config, clock)}


def test_a_healthy_simulated_gate_passes_every_check(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    trust(config)
    checks = run_checks(config, FakeClock(synced=True))
    assert [c.name for c in checks] == [
        "camera in",
        *(f"decoder {engine}" for engine in ENGINES),
        "thermometer",
        "signals",
        "clock",
        "disk",
        "ledger",
        "lists",
    ]
    assert not failed(checks), table(checks)
    assert "PASS" in table(checks)


def test_a_tampered_ledger_fails_the_doctor_and_verify_ledger_names_the_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    config = load_config(path)
    with Ledger.open(config.ledger_path, gate_id=config.gate.id) as ledger:
        for n in range(4):
            ledger.append(draft(n))
    assert cli.main(["--config", str(path), "verify-ledger"]) == 0
    tamper(config.ledger_path, "UPDATE entries SET outcome = 'deny' WHERE seq = 3")
    checks = {c.name: c for c in run_checks(config, FakeClock(synced=True))}
    assert checks["ledger"].status is Status.FAIL
    assert checks["ledger"].detail.startswith("broken at entry 3")
    capsys.readouterr()
    assert cli.main(["--config", str(path), "verify-ledger"]) == 2
    assert f"{config.ledger_path}: BROKEN at entry 3" in capsys.readouterr().out


def test_what_fails_is_named(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, thermometer="ambient_min_celsius = 25\n"))
    clock = FakeClock(datetime.now(UTC), synced=False)
    before = results(config, clock)
    assert before["clock"] is Status.WARN  # the gate works; the console warns
    assert before["thermometer"] is Status.FAIL  # the air (20 °C) is below the range
    assert before["ledger"] is Status.WARN  # none yet
    assert before["lists"] is Status.FAIL
    trust(config)
    clock.advance(timedelta(hours=25).total_seconds())
    assert results(config, clock)["lists"] is Status.FAIL  # stale after a day
    assert results(config, FakeClock(datetime.now(UTC)))["ledger"] is Status.PASS


def test_a_disk_below_the_consoles_warning_level_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    # The warning level at its highest, a terabyte: more than a test machine has free.
    if shutil.disk_usage(tmp_path).free >= 1_000_000 * 2**20:
        pytest.skip("this machine has more than a terabyte free")
    path.write_text(
        path.read_text(encoding="utf-8") + "\n[retention]\nwarn_free_mb = 1000000\n",
        encoding="utf-8",
    )
    checks = {c.name: c for c in run_checks(load_config(path), FakeClock())}
    assert checks["disk"].status is Status.FAIL
    assert "nearly full" in checks["disk"].detail and "gate-agent purge" in checks["disk"].detail


def test_a_missing_camera_fails_its_check(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, source="v4l2:/dev/video97"))
    checks = {c.name: c for c in run_checks(config, FakeClock())}
    assert checks["camera in"].status is Status.FAIL
    assert "unplugged" in checks["camera in"].detail or "no frame" in checks["camera in"].detail


def test_doctor_command_exits_non_zero_on_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert cli.main(["--config", str(path), "doctor", "--json"]) == 1  # no lists yet
    rows = json.loads(capsys.readouterr().out)
    assert {"check": "lists", "status": "fail"}.items() <= next(
        r for r in rows if r["check"] == "lists"
    ).items()


def test_gate_agent_run_scans_until_sigterm_and_leaves_the_ledger_intact(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, style in enumerate((PHONE, PAPER)):
        cv2.imwrite(str(photos / f"{i}.png"), render_pass(make_pass(f"RUN0000{i}"), style))
    path = write_config(tmp_path, source=f"folder:{photos}")
    config = load_config(path)
    trust(config)
    script = shutil.which("gate-agent", path=str(Path(sys.executable).parent))
    assert script
    process = subprocess.Popen(
        [script, "--config", str(path), "run"], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            if verify_ledger_file(config.ledger_path).entries_checked >= 2:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    report = verify_ledger_file(config.ledger_path)
    assert (report.ok, report.entries_checked) == (True, 2)
    assert "gate G1 running" in errors
    assert "entry 1: in" in errors
    assert "stopping" in errors
