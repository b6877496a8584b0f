"""`gate-agent doctor`: is this gate fit to run? Each part checked, a pass/fail table out.

A technician runs it after installing a gate and whenever something looks
wrong; each check says what it saw and, on failure, what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial

from gate_agent.assemble import make_signals, make_thermometer, open_camera
from gate_agent.clock import Clock
from gate_agent.config import CameraSection, GateConfig
from gate_agent.errors import GateError
from gate_agent.hardware.decoder import ENGINES, Engine, QrDecoder
from gate_agent.hardware.render import PHONE, render_pass
from gate_agent.housekeeping import MB, disk_usage
from gate_agent.ledger import Ledger, verify_ledger_file

_TEST_TEXT = "GP1:DOCTOR23:" + "A" * 120 + ":" + "B" * 103
_MIN_FREE_BYTES = 500 * 1024 * 1024
_LOW_FREE_BYTES = 2 * 1024 * 1024 * 1024


class Status(StrEnum):
    """How a check came out; only FAIL makes the exit status non-zero."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One line of the table."""

    name: str
    status: Status
    detail: str


def run_checks(config: GateConfig, clock: Clock) -> list[Check]:
    """Every check, in the order a technician would fix things."""
    checks: list[Check] = []
    for step in (_cameras, _decoders, _thermometer, _gpio, _clock, _disk, _ledger, _lists):
        checks.extend(step(config, clock))
    return checks


def _guarded(name: str, action: Callable[[], Check]) -> Check:
    try:
        return action()
    except (GateError, OSError, ValueError) as exc:
        return Check(name, Status.FAIL, str(exc))


def _camera(section: CameraSection) -> Check:
    name = f"camera {section.lane}"
    with open_camera(section) as source:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            frame = source.read(timeout_s=0.5)
            if frame is not None:
                height, width = frame.gray.shape
                return Check(name, Status.PASS, f"{width}x{height} frames")
        health = source.health()
    return Check(name, Status.FAIL, f"no frame in 5 s: {health.state} {health.detail}")


def _cameras(config: GateConfig, clock: Clock) -> Iterator[Check]:
    if not config.cameras:
        yield Check("camera", Status.FAIL, "no [[cameras]] in the config")
    for section in config.cameras:
        yield _guarded(f"camera {section.lane}", partial(_camera, section))


def _decoder(engine: Engine) -> Check:
    name = f"decoder {engine}"
    texts = [c.text for c in QrDecoder(engines=(engine,)).decode(render_pass(_TEST_TEXT, PHONE))]
    if texts == [_TEST_TEXT]:
        return Check(name, Status.PASS, "reads a rendered pass")
    return Check(name, Status.FAIL, f"read {texts!r} from a rendered pass")


def _decoders(config: GateConfig, clock: Clock) -> Iterator[Check]:
    for engine in ENGINES:
        yield _guarded(f"decoder {engine}", partial(_decoder, engine))


def _thermometer(config: GateConfig, clock: Clock) -> Iterator[Check]:
    section = config.thermometer
    if section.kind == "none":
        yield Check("thermometer", Status.WARN, "none configured: guards measure by hand")
        return

    def probe() -> Check:
        thermometer = make_thermometer(section, clock)
        if thermometer is None:
            return Check("thermometer", Status.WARN, "none configured")
        try:
            samples = [thermometer.read() for _ in range(5)]
        finally:
            thermometer.close()
        ambient = sorted(s.ambient_celsius for s in samples)[2]
        low, high = section.ambient_min_celsius, section.ambient_max_celsius
        detail = f"5 PEC-checked reads, ambient {ambient:.1f} °C"
        if not low <= ambient <= high:
            return Check("thermometer", Status.FAIL, f"{detail}, outside {low:g}–{high:g} °C")
        return Check("thermometer", Status.PASS, detail)

    yield _guarded("thermometer", probe)


def _gpio(config: GateConfig, clock: Clock) -> Iterator[Check]:
    def probe() -> Check:
        signals = make_signals(config.signals)
        try:
            locked = not signals.state().relay_released
        finally:
            signals.close()
        kind = "mock pins" if config.signals.kind == "mock" else "GPIO"
        status = Status.PASS if locked else Status.FAIL
        return Check("signals", status, f"{kind}: lights, buzzer, relay (locked), button")

    yield _guarded("signals", probe)


def _clock(config: GateConfig, clock: Clock) -> Iterator[Check]:
    if clock.synced():
        yield Check("clock", Status.PASS, f"synchronised, {clock.now():%Y-%m-%d %H:%M:%S} UTC")
    else:
        # A warning, not a failure: the gate decides and records as ever, each entry says
        # its clock was not synced and the centre corrects its time on upload. A Pi has
        # no battery clock, so an offline gate stays unsynced until its network is back.
        yield Check(
            "clock",
            Status.WARN,
            "not synchronised: entries are flagged and the console warns;"
            " check NTP (timedatectl) and the network",
        )


def _disk(config: GateConfig, clock: Clock) -> Iterator[Check]:
    free = disk_usage(config.gate.data_dir).free
    detail = f"{free / 2**30:.1f} GiB free at {config.gate.data_dir}"
    warn_bytes = config.retention.warn_free_mb * MB
    if free < warn_bytes:
        yield Check(
            "disk",
            Status.FAIL,
            f"{detail}: nearly full, below {config.retention.warn_free_mb} MB"
            " (the console warns); free space or purge (gate-agent purge)",
        )
    elif free < _MIN_FREE_BYTES:
        yield Check("disk", Status.FAIL, f"{detail}: the ledger needs room")
    else:
        yield Check("disk", Status.WARN if free < _LOW_FREE_BYTES else Status.PASS, detail)


def _ledger(config: GateConfig, clock: Clock) -> Iterator[Check]:
    path = config.ledger_path
    if not path.exists():
        yield Check("ledger", Status.WARN, f"no ledger yet at {path}: it is made at first start")
        return
    report = verify_ledger_file(path)
    if report.ok:
        yield Check("ledger", Status.PASS, f"{report.entries_checked} entries, chain intact")
    else:
        where = f"broken at entry {report.first_break_seq}"
        yield Check("ledger", Status.FAIL, f"{where}: {report.problem}")


def _lists(config: GateConfig, clock: Clock) -> Iterator[Check]:
    if not config.ledger_path.exists():
        yield Check("lists", Status.FAIL, "no lists: import them (gate-agent lists import)")
        return
    with Ledger.open(config.ledger_path, gate_id=config.gate.id) as ledger:
        state = ledger.state
        keys = len(state.issuer_keys())
        ages = state.list_ages(clock.now())
    if not keys:
        yield Check("lists", Status.FAIL, "no issuer keys: import the centre's lists")
        return
    hours = config.gate.lists_max_age_hours
    limit = timedelta(hours=hours)
    stale = sorted(
        name for name, age in ages.items() if name != "settings" and (age is None or age > limit)
    )
    if stale:
        yield Check("lists", Status.FAIL, f"older than {hours:g} h or missing: {', '.join(stale)}")
    else:
        yield Check("lists", Status.PASS, f"{keys} issuer key(s); lists fresher than {hours:g} h")


def table(checks: list[Check]) -> str:
    """The checks as an aligned text table."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail"]
    lines += [f"{c.name:<{width}}  {c.status.upper():<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


def failed(checks: list[Check]) -> bool:
    """Whether any check failed."""
    return any(c.status is Status.FAIL for c in checks)
