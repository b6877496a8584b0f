"""The gate's configuration: the shipped example validates, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate_agent.config import load_config
from gate_agent.core.reasons import GateMode
from gate_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "firmware_config" / "gate.example.toml"


def test_the_example_config_validates() -> None:
    config = load_config(EXAMPLE)
    assert config.gate.id == "LGQ-012-N"
    assert config.policy.mode is GateMode.SCREENING
    assert config.policy.settings().fever_celsius == 37.3
    assert config.ledger_path == Path("/var/lib/gate-agent/ledger.sqlite3")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


GATE = '[gate]\nid = "G1"\ncompound_id = "C1"\ncommunity_id = "M1"\n'


def test_a_relative_data_dir_is_taken_from_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GATE + 'data_dir = "state"\n'))
    assert config.gate.data_dir == tmp_path.resolve() / "state"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GATE + "colour = 'red'\n", "gate.colour: Extra inputs are not permitted"),
        (GATE.replace('"G1"', '"G 1"'), "gate.id: String should match pattern"),
        (GATE + "[policy]\nfever_celsius = 35\n", "policy.fever_celsius"),
        (GATE + "[policy]\nmode = 'closed'\n", "policy.mode"),
        (GATE + "[sync]\nbatch_entries = 501\n", "sync.batch_entries"),
        (GATE + "[[cameras]]\nsource = 'usb:0'\n", "cameras.0.source: Value error, unknown camera"),
        (GATE + "[[cameras]]\nsource = 'folder:'\n", "cameras.0.source: Value error, camera"),
        ("[gate\n", "gate.toml"),
        ("", "gate: Field required"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    "source",
    ["v4l2:0", "v4l2:/dev/video2", "rpicam:", "rtsp://10.0.0.5/s", "http://10.0.0.5/v.mjpg",
     "file:/srv/gate.avi", "/srv/gate.mp4", "folder:/srv/passes", "sim:"],
)  # fmt: skip
def test_each_camera_source_form_loads(tmp_path: Path, source: str) -> None:
    config = load_config(write(tmp_path, GATE + f"[[cameras]]\nsource = '{source}'\n"))
    assert config.cameras[0].source == source


def test_a_camera_password_is_not_repeated_in_the_error(tmp_path: Path) -> None:
    text = GATE + "[[cameras]]\nsource = 'rtp://admin:secret@10.0.0.5/s'\n"
    with pytest.raises(ConfigError, match="unknown camera source") as refused:
        load_config(write(tmp_path, text))
    assert "secret" not in str(refused.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


PROFILES = sorted((ROOT / "firmware_config" / "profiles").glob("*.toml"))


def test_there_are_hardware_profiles() -> None:
    assert {p.stem for p in PROFILES} >= {
        "pi4-usb-mlx90614", "pi5-camera3-mlx90614", "pi-zero-2w",
    }  # fmt: skip


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_each_hardware_profile_validates_in_the_example(profile: Path, tmp_path: Path) -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    head = example[: example.index("# One table per camera lane")]
    config = load_config(write(tmp_path, head + profile.read_text(encoding="utf-8")))
    assert config.cameras and config.thermometer.kind == "mlx90614"
    assert config.signals.kind == "gpio"


def test_the_demo_config_validates() -> None:
    config = load_config(ROOT / "firmware_config" / "demo" / "gate.toml")
    assert [c.lane for c in config.cameras] == ["in", "out"]
    assert (config.thermometer.kind, config.signals.kind) == ("simulated", "mock")
