"""The long-running `gate-agent` commands: run a gate, run the demo, check a gate."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from gate_agent.assemble import open_gate
from gate_agent.clock import SystemClock
from gate_agent.config import GateConfig
from gate_agent.doctor import failed, run_checks, table
from gate_agent.errors import ConfigError
from gate_agent.events import GateEvent
from gate_agent.ledger import verify_ledger_file
from gate_agent.simulation import describe, load_scenario, run_visits

log = logging.getLogger("gate_agent")


def run(config: GateConfig) -> int:
    """Run the gate until SIGTERM or SIGINT; the relay is locked on the way out."""
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", number)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_gate(config) as gate:
        subscription = gate.events.subscribe()
        log.info(
            "gate %s running: %d lane(s), ledger %s",
            config.gate.id,
            len(config.cameras),
            config.ledger_path,
        )
        try:
            while not stop.is_set():
                event = subscription.get(timeout=0.5)
                if event is not None:
                    _log_event(event)
        finally:
            subscription.close()
    return 0


def _log_event(event: GateEvent) -> None:
    d = event.data
    if event.kind == "decision":
        log.info(
            "entry %s: %s %s %s pass %s",
            d.get("seq"),
            d.get("direction"),
            d.get("outcome"),
            d.get("reason"),
            d.get("pass_id", "-"),
        )
    else:
        (log.info if d.get("ok") else log.warning)("%s: %s %s", d.get("device"), d.get("state"),
                                                     d.get("detail"))  # fmt: skip


def demo(config: GateConfig, scenario: Path, passes: Path) -> int:
    """Walk the scripted visitors through a simulated gate, printing each decision."""
    if any(not c.source.startswith("sim") for c in config.cameras) or (
        config.thermometer.kind not in ("simulated", "none") or config.signals.kind != "mock"
    ):
        raise ConfigError("the demo needs sim: cameras, a simulated thermometer and mock signals")
    visits = load_scenario(scenario, passes)
    print(f"Gate {config.gate.id} ({config.gate.name}), mode from config: {config.policy.mode}")
    print("Simulated cameras and thermometer, gpiozero mock pins; decisions as they happen:\n")
    with open_gate(config) as gate:
        results = run_visits(gate, visits, on_decision=lambda v, e: print(describe(v, e)))
        count = gate.ledger.count()
    report = verify_ledger_file(config.ledger_path)
    print(f"\n{count} entries in the ledger; chain {'intact' if report.ok else 'BROKEN'}.")
    return 0 if report.ok and all(r is not None for r in results) else 1


def doctor(config: GateConfig, *, as_json: bool) -> int:
    """Check every part of the gate and print a table; non-zero exit when one fails."""
    checks = run_checks(config, SystemClock())
    if as_json:
        print(json.dumps([{"check": c.name, "status": c.status.value, "detail": c.detail}
                          for c in checks], ensure_ascii=False))  # fmt: skip
    else:
        print(table(checks))
    return 1 if failed(checks) else 0
