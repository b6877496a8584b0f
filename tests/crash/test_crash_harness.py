"""The crash harness, small: the real gate killed with SIGKILL mid-scan keeps every green."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import crash
from bench.report_proof import unread
from gate_agent.ledger import Ledger


def test_every_green_survives_sigkills_of_the_running_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crash.json"
    code = crash.main(
        ["--entries", "24", "--kills", "3", "--seed", "8", "--passes", "6",
         "--work", str(tmp_path / "work"), "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text(encoding="utf-8"))
    capsys.readouterr()
    assert report["failures"] == []
    assert code == 0
    assert report["kills"] == 3 and report["checks"] == 4
    assert report["greens"] >= 24
    assert report["entries_in_ledger"] >= report["greens"]
    assert report["benchmark"] == "crash" and unread("crash", report) == []


def test_every_green_survives_power_cuts_beneath_the_running_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc: the power-loss shim cannot be built")
    out = tmp_path / "crash.json"
    code = crash.main(
        ["--entries", "12", "--kills", "2", "--seed", "9", "--passes", "4", "--power-loss",
         "--work", str(tmp_path / "work"), "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text(encoding="utf-8"))
    capsys.readouterr()
    assert report["failures"] == []
    assert code == 0
    assert report["power_loss"] is True and report["kills"] == 2
    assert report["benchmark"] == "crash_powerloss" and unread("crash", report) == []


def test_the_checks_catch_a_green_the_ledger_lost(tmp_path: Path) -> None:
    config = crash.prepare(tmp_path, 1)
    run = crash.Run()
    crash._take(run, "green 1 CRASH0000 " + "0" * 64)  # reported, but never written
    Ledger.open(tmp_path / "gate" / "ledger.sqlite3", gate_id="LGQ-012-N").close()
    crash.check(config, tmp_path / "gate" / "ledger.sqlite3", run)
    assert any("green entry 1 is None" in failure for failure in run.failures)
