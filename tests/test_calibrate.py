"""`gate-agent calibrate`: people at a simulated sensor of known k, stdin scripted."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

import pytest

from gate_agent import calibrate
from gate_agent import cli as agent_cli
from gate_agent.clock import FakeClock
from gate_agent.config import load_config
from gate_agent.core.calibration import CalibrationPair
from gate_agent.core.temperature import SkinModel
from gate_agent.errors import ConfigError
from gate_agent.hardware.thermometer import SimulatedThermometer
from gate_agent.sampler import ThermometerSampler

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "firmware_config" / "gate.example.toml"
TRUE_K = 0.22  # the simulated sensor's; the example config says 0.10
#: (body, air at the sensor) of the people who come to the sensor, in turn.
PEOPLE = [(36.4, 14.0), (36.9, 18.5), (37.3, 22.0), (36.6, 26.0), (37.0, 30.0), (36.8, 20.0)]


class Technician:
    """Answers the command's prompts as a technician would, moving the simulated sensor."""

    def __init__(self, sim: SimulatedThermometer, script: list[Callable[[], str]]) -> None:
        self.sim = sim
        self.script = script
        self.prompts: list[str] = []

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.script:
            raise EOFError
        return self.script.pop(0)()


def person(sim: SimulatedThermometer, body: float, air: float) -> Callable[[], str]:
    def step() -> str:
        sim.set_ambient(air)
        sim.set(body)
        return ""

    return step


def nobody(sim: SimulatedThermometer) -> Callable[[], str]:
    def step() -> str:
        sim.clear()
        return ""

    return step


def answer(text: str) -> Callable[[], str]:
    return lambda: text


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def rig() -> tuple[FakeClock, SimulatedThermometer, ThermometerSampler, Callable[[float], bool]]:
    clock = FakeClock()
    sim = SimulatedThermometer(
        ambient_celsius=20.0,
        noise_celsius=0.05,
        seed=7,
        model=SkinModel(k=TRUE_K),
        monotonic_ns=clock.monotonic_ns,
    )
    sampler = ThermometerSampler(sim, clock=clock, sample_hz=10)

    def pause(seconds: float) -> bool:
        # Time passes as the sampler's thread would see it: one sample per tenth.
        sampler.poll_once()
        clock.advance(seconds)
        return True

    return clock, sim, sampler, pause


def test_people_measured_one_by_one_recover_the_sensors_k_and_it_is_written(
    config_file: Path, tmp_path: Path
) -> None:
    clock, sim, sampler, pause = rig()
    script: list[Callable[[], str]] = []
    for number, (body, air) in enumerate(PEOPLE):
        script.append(person(sim, body, air))
        if number == 1:
            script += [answer("abc"), answer("50")]  # typos are asked again
        script.append(answer(f"{body:.1f}"))  # the clinical thermometer shows one decimal
    # Between the third and fourth: someone steps up late, and the air is too warm once.
    script[8:8] = [nobody(sim), person(sim, 36.8, 35.0)]
    said: list[str] = []
    technician = Technician(sim, script)
    pairs_file = tmp_path / "pairs.csv"
    before = config_file.read_text(encoding="utf-8")
    code = calibrate.command(
        load_config(config_file),
        config_file,
        pairs_file=None,
        people=len(PEOPLE),
        save=pairs_file,
        write=True,
        clock=clock,
        ask=technician.ask,
        say=said.append,
        sampler=sampler,
        pause=pause,
    )
    text = "\n".join(said)
    assert code == 0, text
    # The sensor warmed up first (60 s in the example config), and the technician was told.
    assert sum("warming up" in line for line in said) == 1
    assert "refused [no_person_at_sensor]" in text
    assert "refused [ambient_out_of_range]" in text and "between 10 and 32 °C" in text
    assert "'abc' is not a number" in text and "50.0 °C is not a body temperature" in text
    k = load_config(config_file).thermometer.skin_model_k
    assert k == pytest.approx(TRUE_K, abs=0.02)
    assert f"k = {k:.3f} from 6 people (the config has 0.100)" in text
    # One line changed, its comment kept.
    after = config_file.read_text(encoding="utf-8")
    changed = [
        line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"
    ]
    assert changed == [
        "- skin_model_k = 0.10            # calibrate on site against a clinical thermometer",
        f"+ skin_model_k = {k:.3f}            # calibrate on site against a clinical thermometer",
    ]
    # The pairs were saved as taken, and a --pairs run fits them the same.
    saved = calibrate.read_pairs(pairs_file)
    assert [p.clinical_celsius for p in saved] == [round(b, 1) for b, _ in PEOPLE]
    assert [p.ambient_celsius for p in saved] == [a for _, a in PEOPLE]


def test_stopping_early_saves_the_pairs_and_suggests_nothing(
    config_file: Path, tmp_path: Path
) -> None:
    clock, sim, sampler, pause = rig()
    script = [person(sim, 36.6, 20.0), answer("36.6"), answer("q")]
    said: list[str] = []
    pairs_file = tmp_path / "pairs.csv"
    code = calibrate.command(
        load_config(config_file),
        config_file,
        pairs_file=None,
        people=5,
        save=pairs_file,
        write=True,
        clock=clock,
        ask=Technician(sim, script).ask,
        say=said.append,
        sampler=sampler,
        pause=pause,
    )
    assert code == calibrate.REFUSED_EXIT
    assert "refused [too_few_pairs]" in "\n".join(said)
    assert load_config(config_file).thermometer.skin_model_k == 0.10
    assert len(calibrate.read_pairs(pairs_file)) == 1


def write_pairs(path: Path, pairs: list[CalibrationPair]) -> None:
    rows = ["skin_celsius,ambient_celsius,clinical_celsius,measured_at"]
    rows += [
        f"{p.skin_celsius},{p.ambient_celsius},{p.clinical_celsius},2026-11-29T10:00:00+00:00"
        for p in pairs
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_the_cli_fits_a_pairs_file_and_prints_the_line_to_paste(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = SkinModel(k=0.3)
    pairs = [CalibrationPair(round(model.skin(b, a), 2), a, b) for b, a in PEOPLE]
    write_pairs(tmp_path / "pairs.csv", pairs)
    before = config_file.read_text(encoding="utf-8")
    argv = ["--config", str(config_file), "calibrate", "--pairs", str(tmp_path / "pairs.csv")]
    assert agent_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "k = 0.300 from 6 people" in out
    assert out.rstrip().endswith("skin_model_k = 0.300")
    assert config_file.read_text(encoding="utf-8") == before  # no --write, no change
    assert agent_cli.main([*argv, "--write"]) == 0
    assert load_config(config_file).thermometer.skin_model_k == 0.3


def test_the_cli_refuses_too_few_pairs_and_a_bad_file(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = SkinModel(k=0.1)
    write_pairs(tmp_path / "few.csv", [CalibrationPair(model.skin(37, 20), 20, 37)] * 3)
    base = ["--config", str(config_file), "calibrate", "--write", "--pairs"]
    assert agent_cli.main([*base, str(tmp_path / "few.csv")]) == calibrate.REFUSED_EXIT
    assert "refused [too_few_pairs]" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("skin_celsius,ambient_celsius,clinical_celsius\n1,x,3\n")
    assert agent_cli.main([*base, str(tmp_path / "bad.csv")]) == 1
    assert "row 2: not a number" in capsys.readouterr().err
    assert load_config(config_file).thermometer.skin_model_k == 0.10


GATE = '[gate]\nid = "G1"\ncompound_id = "C1"\ncommunity_id = "CM"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GATE + "\n[thermometer]\nkind = 'none'\n", "[thermometer]\nskin_model_k = 0.250"),
        (GATE, "\n[thermometer]\nskin_model_k = 0.250"),
        (
            GATE + "[thermometer]\nskin_model_k=0.1\n[signals]\nkind='mock'\n",
            "skin_model_k=0.250\n",
        ),
    ],
    ids=["added-under-the-section", "section-added", "edited-in-place"],
)
def test_the_k_line_is_added_or_edited(text: str, expected: str) -> None:
    edited = calibrate.set_skin_model_k(text, 0.25)
    assert expected in edited
    assert edited.startswith(GATE)


def test_a_k_set_as_a_dotted_key_elsewhere_is_refused_not_doubled() -> None:
    with pytest.raises(ConfigError):
        calibrate.set_skin_model_k(
            GATE.replace("[gate]", "thermometer.skin_model_k = 0.1\n[gate]"), 0.2
        )


def test_the_cli_measures_through_the_configured_thermometer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        GATE + 'data_dir = "data"\n[thermometer]\nkind = "simulated"\nwarmup_seconds = 0\n',
        encoding="utf-8",
    )
    prompts: list[str] = []

    def stop(prompt: str) -> str:
        prompts.append(prompt)
        raise KeyboardInterrupt  # Ctrl-C at the first prompt: stop, keep what was taken

    monkeypatch.setattr("builtins.input", stop)
    assert agent_cli.main(["--config", str(path), "calibrate", "--people", "5"]) == 2
    out = capsys.readouterr().out
    assert "5 people, one at a time" in out
    assert "Pairs are saved to " + str(tmp_path / "data" / "calibration-") in out
    assert prompts and prompts[0].startswith("Person 1 of 5")
    assert "refused [too_few_pairs]" in out
    path.write_text(GATE + '[thermometer]\nkind = "none"\n', encoding="utf-8")
    assert agent_cli.main(["--config", str(path), "calibrate"]) == 1
    assert "there is no sensor to calibrate" in capsys.readouterr().err
    assert agent_cli.main(["--config", str(path), "calibrate", "--people", "3"]) == 1
    assert "--people must be at least 5" in capsys.readouterr().err
