"""firmware_config/kiosk.sh: the console's address from gate.toml, then cage and chromium.

cage and chromium are recording shims first on PATH (they are the kiosk's hardware: a
screen); the config loader and the console's TCP port are real.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIOSK = ROOT / "firmware_config" / "kiosk.sh"
EXAMPLE = (ROOT / "firmware_config" / "gate.example.toml").read_text(encoding="utf-8")
UNIT = (ROOT / "systemd" / "gate-kiosk.service").read_text(encoding="utf-8")

RECORD = '#!/bin/bash\nprintf "%s\\n" "${0##*/}" "$@" > "$KIOSK_LOG.${0##*/}"\n'


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections, as the console's does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def config_with(tmp_path: Path, console: str) -> Path:
    text = EXAMPLE[: EXAMPLE.index("[console]")] + console
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_kiosk(
    tmp_path: Path, config: Path, shims: tuple[str, ...] = ("cage", "chromium"), wait: str = "5"
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in shims:
        (bin_dir / name).write_text(RECORD, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    sleep = shutil.which("sleep")
    assert sleep is not None
    (bin_dir / "sleep").symlink_to(sleep)
    env = {
        "PATH": str(bin_dir),  # nothing else: a real cage or chromium here must not count
        "HOME": str(tmp_path / "home"),
        "KIOSK_LOG": str(tmp_path / "ran"),
        "GATE_KIOSK_WAIT_SECONDS": wait,
    }
    return subprocess.run(
        ["/bin/bash", str(KIOSK), sys.executable, str(config)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_kiosk_shows_the_console_at_the_port_gate_toml_gives(
    tmp_path: Path, listening: int
) -> None:
    config = config_with(tmp_path, f"[console]\nport = {listening}\n")
    result = run_kiosk(tmp_path, config)
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "ran.cage").read_text(encoding="utf-8").splitlines()
    assert argv[:4] == ["cage", "-s", "--", str(tmp_path / "bin" / "chromium")]
    assert argv[-1] == f"http://127.0.0.1:{listening}/"
    assert {"--kiosk", "--noerrdialogs", "--disable-background-networking"} <= set(argv)
    assert "--autoplay-policy=no-user-gesture-required" in argv
    assert f"--user-data-dir={tmp_path / 'home'}/chromium" in argv


def test_a_console_on_one_address_is_reached_there(tmp_path: Path, listening: int) -> None:
    config = config_with(tmp_path, f'[console]\nhost = "127.0.0.1"\nport = {listening}\n')
    assert run_kiosk(tmp_path, config).returncode == 0
    argv = (tmp_path / "ran.cage").read_text(encoding="utf-8").splitlines()
    assert argv[-1] == f"http://127.0.0.1:{listening}/"


def test_chromium_browser_is_used_where_the_image_calls_it_so(
    tmp_path: Path, listening: int
) -> None:
    config = config_with(tmp_path, f"[console]\nport = {listening}\n")
    result = run_kiosk(tmp_path, config, shims=("cage", "chromium-browser"))
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "ran.cage").read_text(encoding="utf-8").splitlines()
    assert argv[3] == str(tmp_path / "bin" / "chromium-browser")


@pytest.mark.parametrize(
    ("console", "shims", "code"),
    [
        ("[console]\nenabled = false\n", ("cage", "chromium"), "console_off"),
        ("[console]\nport = 0\n", ("cage", "chromium"), "config"),
        ("[console]\n", ("chromium",), "no_cage"),
        ("[console]\n", ("cage",), "no_browser"),
    ],
)
def test_a_kiosk_with_nothing_to_show_stops_for_good(
    tmp_path: Path, console: str, shims: tuple[str, ...], code: str
) -> None:
    result = run_kiosk(tmp_path, config_with(tmp_path, console), shims=shims)
    assert result.returncode == 78  # RestartPreventExitStatus=78 in the unit
    assert f"kiosk: error: {code}:" in result.stderr
    assert not (tmp_path / "ran.cage").exists()
    assert "RestartPreventExitStatus=78" in UNIT


def test_a_console_that_does_not_answer_ends_in_a_retry(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_kiosk(tmp_path, config_with(tmp_path, f"[console]\nport = {port}\n"), wait="1")
    assert result.returncode == 75
    assert "kiosk: error: console_down:" in result.stderr
    assert not (tmp_path / "ran.cage").exists()
    assert "Restart=always" in UNIT


def test_the_unit_runs_the_wrapper_as_its_own_user_on_tty1() -> None:
    lines = set(UNIT.splitlines())
    assert {
        "User=gate-kiosk", "PAMName=login", "TTYPath=/dev/tty1", "Conflicts=getty@tty1.service",
        "LoadCredential=gate.toml:/etc/gate-agent/gate.toml",
    } <= lines  # fmt: skip
    assert any(line.startswith("After=gate-agent.service") for line in lines)
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start.split()[1:] == [
        "/opt/gate-station/src/firmware_config/kiosk.sh",
        "/opt/gate-station/venv/bin/python",
        "%d/gate.toml",
    ]
