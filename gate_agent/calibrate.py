"""`gate-agent calibrate`: people at the sensor beside a clinical thermometer, then ``k``.

Each reading goes through the gate's own path (the sampler's ring, ``measure`` with the
config's window, median, warm-up and ambient range), so ``k`` is fitted to the numbers
the gate will screen with. The pairs are saved as they are taken (CSV: skin_celsius,
ambient_celsius, clinical_celsius, measured_at), so a run cut short loses nothing and
``--pairs`` can fit them again. ``--write`` edits the one ``skin_model_k`` line of
gate.toml, keeping every other line and comment.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import tomllib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from gate_agent.clock import Clock
from gate_agent.config import GateConfig
from gate_agent.core.calibration import (
    MIN_PAIRS,
    Calibration,
    CalibrationPair,
    CalibrationRefusal,
    fit_skin_model,
)
from gate_agent.core.reasons import Reason
from gate_agent.core.temperature import (
    MANUAL_RANGE_CELSIUS,
    MeasureSettings,
    SkinModel,
    TemperatureReading,
    TemperatureRefusal,
    measure,
)
from gate_agent.errors import ConfigError
from gate_agent.sampler import ThermometerSampler

PAIR_COLUMNS = ("skin_celsius", "ambient_celsius", "clinical_celsius")
#: How long a reading waits for someone at the sensor before saying no one is there.
READ_WAIT_SECONDS = 5.0
_NS = 1_000_000_000

Ask = Callable[[str], str]
Say = Callable[[str], None]
#: Wait about this many seconds for new samples; False when the sampler is closing.
Pause = Callable[[float], bool]


class PairsFileError(ValueError):
    """A pairs file that cannot be read; the message names the row (code ``bad_pairs_file``)."""

    code = "bad_pairs_file"


def read_pairs(path: Path) -> list[CalibrationPair]:
    """The pairs of a CSV file with the columns ``PAIR_COLUMNS`` (others are ignored)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            rows = list(csv.DictReader(stream))
            header = rows[0].keys() if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PairsFileError(f"{path}: {exc}") from exc
    missing = [c for c in PAIR_COLUMNS if c not in header]
    if missing:
        raise PairsFileError(f"{path}: no rows, or no column {', '.join(missing)}")
    pairs = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        try:
            values = [float(row[c]) for c in PAIR_COLUMNS]
        except (TypeError, ValueError) as exc:
            raise PairsFileError(f"{path}: row {number}: not a number ({exc})") from exc
        pairs.append(CalibrationPair(*values))
    return pairs


class PairsLog:
    """Appends each pair to a CSV file as it is taken (header first when the file is new)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock

    def add(self, pair: CalibrationPair) -> None:
        """Append one row and flush it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            if new:
                writer.writerow([*PAIR_COLUMNS, "measured_at"])
            writer.writerow(
                [pair.skin_celsius, pair.ambient_celsius, pair.clinical_celsius,
                 self._clock.now().isoformat(timespec="seconds")]
            )  # fmt: skip
            stream.flush()
            os.fsync(stream.fileno())


def read_sensor(
    sampler: ThermometerSampler,
    clock: Clock,
    *,
    model: SkinModel,
    settings: MeasureSettings,
    pause: Pause,
    say: Say,
    wait_s: float = READ_WAIT_SECONDS,
) -> TemperatureReading | TemperatureRefusal:
    """A reading of the person at the sensor, as the gate would take it, or why not.

    Uses only samples taken from the call on. Waits out the warm-up (telling the
    technician once), and up to ``wait_s`` for someone to be seen; other refusals (air
    out of range, a fault) come back at once.
    """
    # Only samples from now: the previous person may still be in the sampler's window.
    since_ns = clock.monotonic_ns()
    deadline = since_ns + int(wait_s * _NS)
    told_warming = False
    window_s = settings.window_ns / _NS
    while True:
        state = sampler.state()
        result: TemperatureReading | TemperatureRefusal
        if state.state == "fault":
            return TemperatureRefusal(Reason.SENSOR_FAULT, state.detail)
        if sampler.started_ns is None:
            result = TemperatureRefusal(Reason.SENSOR_FAULT, "the sensor has not answered yet")
        else:
            result = measure(
                [s for s in sampler.recent(window_s) if s.monotonic_ns >= since_ns],
                sensor_started_ns=sampler.started_ns,
                model=model,
                settings=settings,
            )
            if isinstance(result, TemperatureReading):
                return result
            if result.reason is Reason.SENSOR_WARMING_UP:
                if not told_warming:
                    say(
                        f"  the sensor is warming up ({result.detail}): the gate does not screen"
                        " until it has, so calibration waits too"
                    )
                    told_warming = True
                deadline = clock.monotonic_ns() + int(wait_s * _NS)
            elif result.reason is not Reason.NO_PERSON_AT_SENSOR:
                return result
        if clock.monotonic_ns() >= deadline or not pause(0.1):
            return result


def explain(refusal: TemperatureRefusal, settings: MeasureSettings) -> str:
    """What the technician should do about a refused reading."""
    if refusal.reason is Reason.AMBIENT_OUT_OF_RANGE:
        low, high = settings.ambient_range_celsius
        return (
            f"  refused [{refusal.reason}]: {refusal.detail}. The gate refuses to screen in"
            f" this air, so a pair taken now would be useless: calibrate where and when the"
            f" gate works, with the air at the sensor between {low:g} and {high:g} °C"
            " ([thermometer] ambient_min_celsius / ambient_max_celsius)."
        )
    if refusal.reason is Reason.NO_PERSON_AT_SENSOR:
        return (
            f"  refused [{refusal.reason}]: no one seen at the sensor ({refusal.detail}):"
            " face it, forehead 3-5 cm away, hair off the forehead, and try again."
        )
    if refusal.reason is Reason.SENSOR_FAULT:
        return (
            f"  refused [{refusal.reason}]: the thermometer does not answer ({refusal.detail});"
            " check it with `gate-agent doctor`."
        )
    return f"  refused [{refusal.reason}]: {refusal.detail}"


def take_pairs(
    sampler: ThermometerSampler,
    clock: Clock,
    *,
    model: SkinModel,
    settings: MeasureSettings,
    people: int,
    ask: Ask,
    say: Say,
    pause: Pause,
    log: PairsLog | None = None,
) -> list[CalibrationPair]:
    """Measure ``people`` people one by one, each then with the clinical thermometer.

    A refused reading is explained and the same person tries again; ``q`` (or the end
    of input) stops early with the pairs taken so far.
    """
    pairs: list[CalibrationPair] = []
    while len(pairs) < people:
        number = len(pairs) + 1
        answer = _ask(
            ask,
            f"Person {number} of {people}: stand facing the sensor, forehead 3-5 cm away;"
            " press Enter (q to stop): ",
        )
        if answer is None or answer.strip().lower() == "q":
            break
        result = read_sensor(sampler, clock, model=model, settings=settings, pause=pause, say=say)
        if isinstance(result, TemperatureRefusal):
            say(explain(result, settings))
            continue
        ambient = result.ambient_celsius
        if ambient is None:  # never for a sensor reading; a guard for the type
            continue
        skin = round(statistics.median(result.raw_celsius), 2)
        say(
            f"  sensor: skin {skin:.2f} °C, air {ambient:.2f} °C"
            f" (body {result.estimate_celsius:.2f} °C with k = {model.k:.3f})"
        )
        clinical = _ask_clinical(ask, say, number)
        if clinical is None:
            say("  not kept: measure this person again")
            continue
        pair = CalibrationPair(skin, ambient, clinical)
        pairs.append(pair)
        if log is not None:
            log.add(pair)
    return pairs


def _ask(ask: Ask, prompt: str) -> str | None:
    """The answer; None when input ends or the technician presses Ctrl-C (stop: the pairs
    taken so far are saved and fitted)."""
    try:
        return ask(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def _ask_clinical(ask: Ask, say: Say, number: int) -> float | None:
    """The clinical thermometer's reading in °C; None: measure again (empty answer or EOF)."""
    low, high = MANUAL_RANGE_CELSIUS
    while True:
        answer = _ask(
            ask,
            f"  clinical thermometer's reading for person {number}, °C (empty: measure again): ",
        )
        if answer is None or not answer.strip():
            return None
        try:
            value = float(answer.strip().replace(",", "."))
        except ValueError:
            say(f"  {answer.strip()!r} is not a number: type e.g. 36.7")
            continue
        if not low <= value <= high:
            say(f"  {value} °C is not a body temperature ({low:g}-{high:g} °C): type it again")
            continue
        return value


def report(result: Calibration | CalibrationRefusal, pairs: Sequence[CalibrationPair],
           current_k: float) -> list[str]:  # fmt: skip
    """The lines that tell the technician what the fit found."""
    if isinstance(result, CalibrationRefusal):
        lines = [f"refused [{result.code}]: {result.detail}"]
        if len(pairs) < MIN_PAIRS:
            lines.append(f"measure at least {MIN_PAIRS} people (`--pairs FILE` fits a saved run)")
        lines.append(f"skin_model_k stays {current_k:.3f}")
        return lines
    model = SkinModel(k=result.k)
    lines = [
        f"k = {result.k:.3f} from {result.pairs} people (the config has {current_k:.3f})",
        f"errors with this k (model - clinical): mean {result.mean_error_celsius:+.2f} °C,"
        f" max abs {result.max_abs_error_celsius:.2f} °C,"
        f" rms {result.rms_error_celsius:.2f} °C",
    ]
    for number, (pair, error) in enumerate(zip(pairs, result.errors_celsius, strict=True), 1):
        body = model.body(pair.skin_celsius, pair.ambient_celsius)
        lines.append(
            f"  {number:>2}: skin {pair.skin_celsius:.2f}  air {pair.ambient_celsius:.2f}"
            f"  clinical {pair.clinical_celsius:.2f}  model {body:.2f}  ({error:+.2f})"
        )
    if result.max_abs_error_celsius > 0.5:
        lines.append(
            "warning: a person is off by more than 0.5 °C: check that pair (aim, distance,"
            " a sweaty or cold forehead) and measure again"
        )
    return lines


_HEADER = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")
_K_LINE = re.compile(r"^(\s*skin_model_k\s*=\s*)([^#\s]+)(\s*)(#.*)?$")


def set_skin_model_k(text: str, k: float) -> str:
    """gate.toml with ``skin_model_k`` set to ``k`` under ``[thermometer]``, nothing else
    changed: the one line edited (its comment kept), or added under the section, or the
    section added at the end. Refused (``ConfigError``) when the result would not say so."""
    value = f"{k:.3f}"
    lines = text.splitlines(keepends=True)
    section: str | None = None
    header_at: int | None = None
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header is not None:
            section = header.group(1)
            if section == "thermometer":
                header_at = index
            continue
        found = _K_LINE.match(line.rstrip("\r\n")) if section == "thermometer" else None
        if found is not None:
            ending = line[len(line.rstrip("\r\n")) :]
            prefix, _, space, comment = found.groups()
            lines[index] = f"{prefix}{value}{space or ''}{comment or ''}".rstrip() + ending
            break
    else:
        if header_at is not None:
            lines.insert(header_at + 1, f"skin_model_k = {value}            # calibrated on site\n")
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(
                f"\n[thermometer]\nskin_model_k = {value}            # calibrated on site\n"
            )
    edited = "".join(lines)
    try:
        raw = tomllib.loads(edited)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the edited config does not parse: {exc}") from exc
    if raw.get("thermometer", {}).get("skin_model_k") != float(value):
        raise ConfigError("gate.toml sets skin_model_k in a way this edit cannot change")
    GateConfig.model_validate(raw)
    return edited


def write_config(path: Path, k: float) -> None:
    """Set ``skin_model_k`` in the file, atomically, keeping its mode and owner."""
    edited = set_skin_model_k(path.read_text(encoding="utf-8"), k)
    info = path.stat()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(edited, encoding="utf-8")
        tmp.chmod(info.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, info.st_uid, info.st_gid)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def default_pairs_path(config: GateConfig, now: datetime) -> Path:
    """Where an interactive run saves its pairs: the data folder, named by the time."""
    return config.gate.data_dir / f"calibration-{now:%Y%m%dT%H%M%SZ}.csv"


#: `calibrate` exit code when no k is suggested (too few people, a refused fit).
REFUSED_EXIT = 2


def command(
    config: GateConfig,
    config_file: Path,
    *,
    pairs_file: Path | None,
    people: int,
    save: Path | None,
    write: bool,
    clock: Clock,
    ask: Ask,
    say: Say,
    sampler: ThermometerSampler | None = None,
    pause: Pause | None = None,
) -> int:
    """Run `gate-agent calibrate`: from a pairs file, or people measured now through
    ``sampler`` (the config's thermometer when None); print the fit; maybe write it."""
    section = config.thermometer
    if pairs_file is not None:
        pairs = read_pairs(pairs_file)
        say(f"{len(pairs)} pairs read from {pairs_file}")
    else:
        if people < MIN_PAIRS:
            raise ValueError(f"--people must be at least {MIN_PAIRS}")
        log = PairsLog(save or default_pairs_path(config, clock.now()), clock)
        low, high = section.ambient_min_celsius, section.ambient_max_celsius
        say(
            f"Calibrating k against a clinical thermometer: {people} people, one at a time."
            f" The air at the sensor must be {low:g}-{high:g} °C, and the sensor warmed up"
            f" ({section.warmup_seconds:g} s after it first answers). Pairs are saved to"
            f" {log.path}."
        )
        pairs = _measure_people(
            config, sampler, clock, people=people, ask=ask, say=say, pause=pause, log=log
        )
    result = fit_skin_model(pairs)
    for line in report(result, pairs, section.skin_model_k):
        say(line)
    if isinstance(result, CalibrationRefusal):
        return REFUSED_EXIT
    k = round(result.k, 3)
    if write:
        write_config(config_file, k)
        say(f"{config_file}: skin_model_k = {k:.3f} written; restart the agent to use it")
    else:
        say(f"paste under [thermometer] in {config_file} (or run again with --write):")
        say(f"skin_model_k = {k:.3f}")
    return 0


def _measure_people(
    config: GateConfig,
    sampler: ThermometerSampler | None,
    clock: Clock,
    *,
    people: int,
    ask: Ask,
    say: Say,
    pause: Pause | None,
    log: PairsLog,
) -> list[CalibrationPair]:
    # Imported here: assemble pulls in the camera stack, which a --pairs run never needs.
    from gate_agent.assemble import make_thermometer  # noqa: PLC0415

    owned = sampler is None
    if sampler is None:
        thermometer = make_thermometer(config.thermometer, clock)
        if thermometer is None:
            raise ConfigError("[thermometer] kind is none: there is no sensor to calibrate")
        sampler = ThermometerSampler(
            thermometer, clock=clock, sample_hz=config.thermometer.sample_hz
        )
        sampler.start()
    try:
        return take_pairs(
            sampler,
            clock,
            model=SkinModel(k=config.thermometer.skin_model_k),
            settings=config.thermometer.measure_settings(),
            people=people,
            ask=ask,
            say=say,
            pause=pause or sampler.wait,
            log=log,
        )
    finally:
        if owned:
            sampler.close()
