"""Reading the Pi's temperature and throttled flags through a `vcgencmd` on PATH.

The fake `vcgencmd` is a shell script printing what the firmware's tool prints;
it logs each call, so the cache is seen to spare the forks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate_agent.hardware.board import BoardReader, parse_temperature, parse_throttled


def fake_vcgencmd(folder: Path, *, temp: str, throttled: str, exit_code: int = 0) -> Path:
    """A `vcgencmd` answering measure_temp and get_throttled; calls are logged to calls.log."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    script = folder / "vcgencmd"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> "{log}"\n'
        'case "$1" in\n'
        f"  measure_temp) printf '%s\\n' \"{temp}\" ;;\n"
        f"  get_throttled) printf '%s\\n' \"{throttled}\" ;;\n"
        '  *) echo "bad command" >&2; exit 2 ;;\n'
        "esac\n"
        f"exit {exit_code}\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return folder


def on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text(encoding="utf-8").split() if log.exists() else []


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_real_format_is_read_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_vcgencmd(tmp_path / "bin", temp="temp=48.3'C", throttled="throttled=0x50005")
    on_path(monkeypatch, folder)
    ticker = Ticker()
    reader = BoardReader(max_age_s=5.0, monotonic=ticker)
    assert reader.present
    reading = reader.read()
    assert reading is not None
    assert reading.cpu_celsius == pytest.approx(48.3)
    assert reading.throttled == 0x50005
    # 0x50005: under-voltage now (bit 0) and since boot (16); throttled now (2) and since (18).
    assert reading.flag("under_voltage") is True
    assert reading.flag("under_voltage", since_boot=True) is True
    assert reading.flag("throttled") is True
    assert reading.flag("throttled", since_boot=True) is True
    assert reading.flag("frequency_capped") is False
    assert reading.flag("soft_temperature_limit", since_boot=True) is False
    assert calls(folder) == ["measure_temp", "get_throttled"]
    ticker.now += 4.0
    assert reader.read() == reading
    assert len(calls(folder)) == 2  # cached: no new fork
    ticker.now += 2.0
    reader.read()
    assert len(calls(folder)) == 4
    assert reader.errors_total == 0


def test_odd_answers_and_failures_are_counted_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_vcgencmd(tmp_path / "odd", temp="error=1 error_msg=...", throttled="0x0")
    on_path(monkeypatch, folder)
    ticker = Ticker()
    reader = BoardReader(monotonic=ticker)
    reading = reader.read()
    assert reading is not None
    assert (reading.cpu_celsius, reading.throttled) == (None, None)
    assert reading.flag("under_voltage") is None
    assert reader.errors_total == 2
    failing = fake_vcgencmd(
        tmp_path / "failing", temp="temp=40.0'C", throttled="throttled=0x0", exit_code=1
    )
    on_path(monkeypatch, failing)
    ticker.now += 60
    assert reader.read() == type(reading)(None, None)
    assert reader.errors_total == 4


def test_a_hung_vcgencmd_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "vcgencmd"
    script.write_text("#!/bin/sh\nexec sleep 30\n", encoding="utf-8")
    script.chmod(0o755)
    on_path(monkeypatch, folder)
    reader = BoardReader(timeout_s=0.2)
    reading = reader.read()
    assert reading is not None and reading.cpu_celsius is None
    assert reader.errors_total == 2


def test_without_vcgencmd_there_is_nothing_to_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path(monkeypatch, tmp_path)  # an empty folder, then /usr/bin and /bin
    reader = BoardReader()
    if reader.present:
        pytest.skip("this machine has a real vcgencmd")
    assert reader.read() is None
    assert reader.errors_total == 0


@pytest.mark.parametrize(
    ("text", "value"), [("temp=48.3'C\n", 48.3), ("temp=-2.0'C", -2.0), ("temp=61'C", 61.0)]
)
def test_temperatures_parse(text: str, value: float) -> None:
    assert parse_temperature(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["temp=48.3C", "48.3", "", "temp='C"])
def test_other_text_is_not_a_temperature(text: str) -> None:
    with pytest.raises(ValueError, match="vcgencmd"):
        parse_temperature(text)


def test_throttled_parses_hex_only() -> None:
    assert parse_throttled("throttled=0x0\n") == 0
    assert parse_throttled("throttled=0xE0000") == 0xE0000
    with pytest.raises(ValueError, match="vcgencmd"):
        parse_throttled("throttled=50005")
