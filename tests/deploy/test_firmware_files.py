"""The udev rules parse, and each hardware profile has a valid config and config.txt lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gate_agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_config"
RULES = FIRMWARE / "udev" / "99-gate-station.rules"
EXAMPLE = (FIRMWARE / "gate.example.toml").read_text(encoding="utf-8")
PROFILES = {
    # name: the I2C clock its config.txt lines must set (50 kHz on a Pi 4 or older,
    # for its clock-stretching bug; the Pi 5 may use the MLX90614's ceiling, 100 kHz).
    "pi4-usb-mlx90614": 50_000,
    "pi5-camera3-mlx90614": 100_000,
    "pi-zero-2w": 50_000,
}

# udev's rule syntax (udev(7)): KEY[{attr}] OP "value", comma-separated.
MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
    "DRIVER", "DRIVERS", "ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TAG", "TAGS", "TEST",
    "PROGRAM", "RESULT",
}  # fmt: skip
ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG",
    "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS",
}  # fmt: skip
TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def rule_tokens(line: str) -> list[tuple[str, str, str]]:
    tokens, at = [], 0
    while at < len(line):
        match = TOKEN.match(line, at)
        assert match, f"cannot parse {line[at:]!r} in {line!r}"
        key, _attr, op, value, _sep = match.groups()
        tokens.append((key, op, value))
        at = match.end()
    return tokens


def rules() -> list[list[tuple[str, str, str]]]:
    lines = RULES.read_text(encoding="utf-8").splitlines()
    return [rule_tokens(line) for line in lines if line.strip() and not line.startswith("#")]


def test_every_udev_rule_parses_into_known_keys_and_operators() -> None:
    for rule in rules():
        assert any(op in ("==", "!=") for _, op, _ in rule), rule  # matches something
        for key, op, value in rule:
            if op in ("==", "!="):
                assert key in MATCH_KEYS, key
            else:
                assert key in ASSIGN_KEYS, key
            if key == "MODE":
                assert re.fullmatch(r"0[0-7]{3}", value), value


def test_the_devices_go_to_the_groups_the_agent_is_in() -> None:
    grouped = {}
    for rule in rules():
        matches = tuple(sorted((k, v) for k, op, v in rule if op == "=="))
        assignments = {k: v for k, op, v in rule if op == "="}
        grouped[matches] = (assignments["GROUP"], assignments["MODE"])
    assert grouped[(("KERNEL", "i2c-[0-9]*"), ("SUBSYSTEM", "i2c-dev"))] == ("i2c", "0660")
    assert grouped[(("KERNEL", "gpiochip[0-9]*"), ("SUBSYSTEM", "gpio"))] == ("gpio", "0660")
    assert grouped[(("KERNEL", "gpiomem"),)] == ("gpio", "0660")
    assert grouped[(("SUBSYSTEM", "video4linux"),)] == ("video", "0660")
    assert grouped[(("SUBSYSTEM", "media"),)] == ("video", "0660")
    unit = (ROOT / "systemd" / "gate-agent.service").read_text(encoding="utf-8")
    assert "SupplementaryGroups=gpio i2c video" in unit


def test_udevadm_verify_accepts_the_rules_where_it_exists() -> None:
    udevadm = shutil.which("udevadm")
    has_verify = udevadm is not None and not (
        subprocess.run([udevadm, "verify", "--help"], check=False, capture_output=True).returncode
    )
    if udevadm is None or not has_verify:
        pytest.skip("udevadm verify needs systemd 254 or later")
    result = subprocess.run(
        [udevadm, "verify", str(RULES)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_three_named_profiles_are_there() -> None:
    present = {p.stem for p in (FIRMWARE / "profiles").glob("*.toml")}
    assert present >= set(PROFILES)


def config_txt_lines(profile: str) -> dict[str, str]:
    """The effective config.txt lines of a profile, as install.sh chooses them."""
    own = FIRMWARE / "profiles" / f"{profile}.config.txt"
    path = own if own.exists() else FIRMWARE / "config.txt"
    lines = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            lines[key if key != "dtparam" else f"dtparam:{value.split('=')[0]}"] = value
    return lines


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_turns_i2c_on_at_a_clock_the_mlx90614_takes(profile: str) -> None:
    lines = config_txt_lines(profile)
    params = dict(item.split("=") for item in lines["dtparam:i2c_arm"].split(","))
    assert params["i2c_arm"] == "on"
    baudrate = int(params["i2c_arm_baudrate"])
    assert baudrate <= 100_000
    assert baudrate == PROFILES[profile]
    assert lines["camera_auto_detect"] == "1"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_makes_a_valid_gate_toml_as_install_sh_writes_it(
    profile: str, tmp_path: Path
) -> None:
    # install.sh: the example up to its cameras, the profile, [scanner], [console] onwards.
    head = EXAMPLE[: EXAMPLE.index("# One table per camera lane")]
    scanner = EXAMPLE[EXAMPLE.index("[scanner]") : EXAMPLE.index("[thermometer]")]
    tail = EXAMPLE[EXAMPLE.index("[console]") :]
    body = (FIRMWARE / "profiles" / f"{profile}.toml").read_text(encoding="utf-8")
    path = tmp_path / "gate.toml"
    path.write_text(head + body + "\n" + scanner + tail, encoding="utf-8")
    config = load_config(path)
    assert config.thermometer.kind == "mlx90614" and config.thermometer.i2c_bus == 1
    assert config.signals.kind == "gpio" and not config.signals.relay_active_high
    assert config.cameras and config.console.port == 8080
