"""The systemd units: `systemd-analyze verify` passes without a word; the issue's promises kept.

Each unit under systemd/ (a glob: units added later are covered too) is rendered with
the install prefix /opt/gate-station swapped for a temporary one whose venv is this
project's, so ExecStart names a real program, then verified. An unknown key or a typo
only warns (exit 0), so any output at all fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/gate-station"
UNITS = sorted((ROOT / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (Debian package systemd; `make test` installs it)",
)
#: Hardening that would hide /dev/i2c-*, /dev/gpiochip*, /dev/video* from the agent
#: (ProtectClock implies DeviceAllow=, and blocks the adjtimex the agent reads sync through).
DEVICE_HIDING = ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock")


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit's settings by section and key, every value of a repeated key kept."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a KEY=value line: {raw!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


def render(unit: Path, root: Path) -> Path:
    """The unit with the install prefix moved under ``root`` (venv: this project's)."""
    prefix = root / "gate-station"
    prefix.mkdir(exist_ok=True)
    for name, target in (("venv", Path(sys.prefix)), ("src", ROOT)):
        if not (prefix / name).exists():
            (prefix / name).symlink_to(target, target_is_directory=True)
    rendered = root / unit.name
    rendered.write_text(unit.read_text(encoding="utf-8").replace(PREFIX, str(prefix)))
    return rendered


def test_the_units_are_there() -> None:
    names = {unit.name for unit in UNITS}
    assert {"gate-agent.service", "gate-sync.service"} <= names


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_analyze_verify_passes_without_a_word(unit: Path, tmp_path: Path) -> None:
    rendered = render(unit, tmp_path)
    for program in directives(rendered)["Service"].get("ExecStart", []):
        executable = Path(program.lstrip("-@:+!").split()[0])
        assert executable.exists(), f"{unit.name}: {executable} does not exist"
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(rendered)], check=False, capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_gate_agent_unit_keeps_the_issues_promises() -> None:
    unit = directives(ROOT / "systemd" / "gate-agent.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]  # the watchdog thread is in the main process
    assert service["Restart"] == ["on-failure"]
    assert service["StateDirectory"] == ["gate-agent"]
    assert service["ExecStart"] == [
        f"{PREFIX}/venv/bin/gate-agent --config /etc/gate-agent/gate.toml run"
    ]
    assert service["User"] == service["Group"] == ["gate-agent"]
    (watchdog,) = service["WatchdogSec"]
    assert watchdog.endswith("s") and int(watchdog[:-1]) >= 10  # pinged at half of it
    groups = " ".join(service["SupplementaryGroups"]).split()
    assert {"gpio", "i2c", "video"} <= set(groups)
    assert [key for key in DEVICE_HIDING if key in service] == []
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_gate_sync_unit_keeps_the_issues_promises() -> None:
    unit = directives(ROOT / "systemd" / "gate-sync.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]  # not uvicorn's worker processes
    assert service["Restart"] == ["on-failure"]
    assert service["StateDirectory"] == ["gate-sync"]
    assert service["EnvironmentFile"] == ["-/etc/gate-sync/gate-sync.env"]
    assert service["User"] == service["Group"] == ["gate-sync"]
    (command,) = service["ExecStart"]
    assert command.startswith(f"{PREFIX}/venv/bin/gate-sync serve ")
    assert "--workers ${GATE_SYNC_WORKERS}" in command
    assert "--admin-token-file /etc/gate-sync/admin.token" in command
    assert "WatchdogSec" in service
    defaults = " ".join(service["Environment"]).split()
    for name in ("GATE_SYNC_DATA", "GATE_SYNC_HOST", "GATE_SYNC_PORT", "GATE_SYNC_WORKERS"):
        assert any(item.startswith(f"{name}=") for item in defaults), name


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_a_notify_unit_lets_only_its_main_process_notify(unit: Path) -> None:
    service = directives(unit)["Service"]
    if service.get("Type") == ["notify"]:
        assert service.get("NotifyAccess") == ["main"]


@pytest.mark.parametrize("name", ["gate-agent.service", "gate-sync.service"])
def test_a_watchdog_kill_leaves_the_python_stacks_in_the_journal(name: str) -> None:
    environment = " ".join(directives(ROOT / "systemd" / name)["Service"]["Environment"])
    assert "PYTHONFAULTHANDLER=1" in environment.split()
