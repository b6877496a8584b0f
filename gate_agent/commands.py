"""The long-running `gate-agent` commands: run a gate, run the demo, check a gate."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType

from gate_agent import journal
from gate_agent.assemble import Gate, open_gate
from gate_agent.clock import Clock, SystemClock
from gate_agent.config import GateConfig
from gate_agent.console.auth import Roster
from gate_agent.console.server import ConsoleServer, console_app, roster_path
from gate_agent.doctor import failed, run_checks, table
from gate_agent.errors import ConfigError
from gate_agent.events import GateEvent
from gate_agent.ledger import verify_ledger_file
from gate_agent.service import Notifier, Watchdog
from gate_agent.simulation import describe, load_scenario, run_visits

log = logging.getLogger("gate_agent")
DEMO_GUARD = "值班保安"


def run(config: GateConfig, notifier: Notifier | None = None) -> int:
    """Run the gate until SIGTERM or SIGINT; the relay is locked on the way out.

    Under systemd (Type=notify) it says READY=1 once the console serves and the scan
    loop turns, keeps STATUS= current, pings the watchdog only while the scan loop's
    threads keep turning (``Station.stalled``), and says STOPPING=1 on a signal.
    """
    notifier = notifier or Notifier.from_environ(unset=True)
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", number)
        notifier.stopping(f"gate {config.gate.id}: stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    clock = SystemClock()
    with (
        open_gate(config, clock=clock) as gate,
        _console(gate, config, clock) as url,
        _watchdog(gate, notifier),
    ):
        journal.tag(GATE_ID=config.gate.id, STREAM_ID=gate.ledger.stream_id)
        subscription = gate.events.subscribe()
        last_seq = gate.ledger.last_seq()
        log.info(
            "gate %s running: %d lane(s), ledger %s, console %s",
            config.gate.id,
            len(config.cameras),
            config.ledger_path,
            url or "off",
        )
        notifier.ready(_status(config, last_seq, url))
        try:
            while not stop.is_set():
                event = subscription.get(timeout=0.5)
                if event is None:
                    continue
                _log_event(event, config.gate.id, gate.ledger.stream_id)
                if event.kind == "decision" and isinstance(event.data.get("seq"), int):
                    last_seq = event.data["seq"]
                    notifier.status(_status(config, last_seq, url))
        finally:
            subscription.close()
    return 0


def _status(config: GateConfig, last_seq: int, url: str | None) -> str:
    """The line `systemctl status gate-agent` shows."""
    lanes = len(config.cameras)
    return (
        f"gate {config.gate.id}: {lanes} lane{'s' if lanes != 1 else ''},"
        f" ledger seq {last_seq}, console {url or 'off'}"
    )


@contextmanager
def _watchdog(gate: Gate, notifier: Notifier) -> Iterator[Watchdog]:
    """Ping systemd's watchdog while every scan-loop thread has turned within its interval."""
    interval_s = notifier.watchdog_s or 0.0

    def check() -> str | None:
        return "; ".join(gate.station.stalled(interval_s)) or None

    with Watchdog(notifier, check) as watchdog:
        yield watchdog


@contextmanager
def _console(gate: Gate, config: GateConfig, clock: Clock) -> Iterator[str | None]:
    """Serve the guard console for the gate while the block runs (unless it is off)."""
    if not config.console.enabled:
        yield None
        return
    app = console_app(gate, config.console, clock)
    server = ConsoleServer(app, config.console.host, config.console.port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _log_event(event: GateEvent, gate_id: str, stream_id: str) -> None:
    """One log line per decision: gate, entry number, outcome and reason; no names.

    The journal gets the same as fields (GATE_ID, ENTRY_SEQ, OUTCOME, …) to search by.
    """
    d = event.data
    if event.kind == "decision":
        seq = d.get("seq")
        log.info(
            "gate %s entry %s: %s %s %s pass %s lane %s",
            gate_id,
            seq if seq is not None else "- (not recorded)",
            d.get("direction"),
            d.get("outcome"),
            d.get("reason"),
            d.get("pass_id") or "-",
            d.get("lane"),
            extra=journal.fields(
                GATE_ID=gate_id,
                STREAM_ID=stream_id,
                ENTRY_SEQ=seq,
                DIRECTION=d.get("direction"),
                OUTCOME=d.get("outcome"),
                REASON=d.get("reason"),
                PASS_ID=d.get("pass_id"),
                LANE=d.get("lane"),
                ALERT=int(bool(d.get("alert"))),
            ),
        )
    else:
        (log.info if d.get("ok") else log.warning)("%s: %s %s", d.get("device"), d.get("state"),
                                                     d.get("detail"))  # fmt: skip


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def demo(
    config: GateConfig,
    scenario: Path,
    passes: Path,
    *,
    rounds: int,
    pace_s: float,
    every_s: float | None = None,
) -> int:
    """Walk the scripted visitors through a simulated gate, printing each decision.

    The console is served meanwhile; with ``rounds`` 0 the visitors keep coming
    until Ctrl-C, so a newcomer can watch them on the page.
    """
    if any(not c.source.startswith("sim") for c in config.cameras) or (
        config.thermometer.kind not in ("simulated", "none") or config.signals.kind != "mock"
    ):
        raise ConfigError("the demo needs sim: cameras, a simulated thermometer and mock signals")
    visits = load_scenario(scenario, passes)
    clock = SystemClock()
    pin = Roster(roster_path(config.gate.data_dir)).add(
        DEMO_GUARD, until=clock.now() + timedelta(hours=12)
    )
    print(f"Gate {config.gate.id} ({config.gate.name}), mode from config: {config.policy.mode}")
    # Ctrl-C or SIGTERM ends it, even when started from a shell's background job, which
    # leaves SIGINT ignored (and Python then never raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    undecided = 0  # a count, not the events: with rounds 0 the demo may run for days
    with open_gate(config, clock=clock) as gate, _console(gate, config, clock) as url:
        if url:
            print(f"\nGuard console: {url}   sign in as {DEMO_GUARD}, PIN {pin}")
        print("Simulated cameras and thermometer, gpiozero mock pins; decisions as they happen:\n")
        done = 0
        try:
            while rounds == 0 or done < rounds:
                results = run_visits(
                    gate,
                    visits,
                    on_decision=lambda v, e: print(describe(v, e)),
                    gap_s=pace_s,
                    period_s=every_s,
                )
                undecided += sum(1 for r in results if r is None)
                done += 1
                if rounds == 0:
                    print(f"\n-- round {done} done; the next begins (Ctrl-C to stop)\n")
        except KeyboardInterrupt:
            print("\nstopping")
        count = gate.ledger.count()
    report = verify_ledger_file(config.ledger_path)
    print(f"\n{count} entries in the ledger; chain {'intact' if report.ok else 'BROKEN'}.")
    return 0 if report.ok and undecided == 0 else 1


def doctor(config: GateConfig, *, as_json: bool) -> int:
    """Check every part of the gate and print a table; non-zero exit when one fails."""
    checks = run_checks(config, SystemClock())
    if as_json:
        print(json.dumps([{"check": c.name, "status": c.status.value, "detail": c.detail}
                          for c in checks], ensure_ascii=False))  # fmt: skip
    else:
        print(table(checks))
    return 1 if failed(checks) else 0
