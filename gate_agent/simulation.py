"""A scripted stream of people at a simulated gate: the demo, and tests of the whole loop.

Each visit puts a person in front of a lane's simulated camera (their pass on a
phone or a card) and of the simulated thermometer (their body temperature),
waits for the station's decision, then clears the scene. The station under it
is the real one: real decoding, verification, ledger and signals logic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gate_agent.assemble import Gate
from gate_agent.errors import ConfigError
from gate_agent.events import GateEvent
from gate_agent.hardware.render import PRESETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Visit:
    """One person at the gate."""

    label: str
    text: str
    lane: str = "in"
    body_celsius: float | None = 36.6  # None: nobody at the thermometer
    style: str = "phone"
    rest_seconds: float = 0.0  # wait before this visit (a re-check after a rest)


def load_scenario(path: Path, passes: Path) -> list[Visit]:
    """Visits from a JSON list; ``pass`` names a file ``<passes>/<name>.txt`` with the text."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        visits = []
        for item in raw:
            text = (passes / f"{item['pass']}.txt").read_text(encoding="ascii").strip()
            visits.append(
                Visit(
                    label=item["label"],
                    text=text,
                    lane=item.get("lane", "in"),
                    body_celsius=item.get("body_celsius", 36.6),
                    style=item.get("style", "phone"),
                    rest_seconds=float(item.get("rest_seconds", 0.0)),
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a usable scenario: {exc}") from exc
    for visit in visits:
        if visit.style not in PRESETS:
            raise ConfigError(f"{path}: unknown style {visit.style!r} in {visit.label!r}")
    return visits


def run_visits(
    gate: Gate,
    visits: Sequence[Visit],
    *,
    on_decision: Callable[[Visit, GateEvent | None], None],
    timeout_s: float = 5.0,
    gap_s: float = 0.3,
    period_s: float | None = None,
) -> list[GateEvent | None]:
    """Walk each visitor through the gate and report each decision as it happens.

    Between visitors: ``gap_s`` of nobody after each decision, or with ``period_s`` a
    visitor every so many seconds (each visit and the quiet after it take that long).
    """
    thermometer = gate.simulated_thermometer() if gate.thermometer is not None else None
    subscription = gate.events.subscribe()
    results: list[GateEvent | None] = []
    try:
        for visit in visits:
            if visit.rest_seconds:
                time.sleep(visit.rest_seconds)
            started = time.monotonic()
            camera = gate.simulated_camera(visit.lane)
            if thermometer is not None:
                if visit.body_celsius is None:
                    thermometer.clear()
                else:
                    thermometer.set(visit.body_celsius)
            camera.show_pass(visit.text, PRESETS[visit.style])
            event = _next_decision(subscription.get, timeout_s)
            results.append(event)
            on_decision(visit, event)
            camera.show_nothing()
            if thermometer is not None:
                thermometer.clear()
            if period_s is None:
                time.sleep(gap_s)
            else:
                time.sleep(max(0.0, started + period_s - time.monotonic()))
    finally:
        subscription.close()
    return results


def _next_decision(
    get: Callable[[float | None], GateEvent | None], timeout_s: float
) -> GateEvent | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        event = get(left)
        if event is not None and event.kind == "decision":
            return event
    return None


def describe(visit: Visit, event: GateEvent | None) -> str:
    """One decision as the demo prints it."""
    if event is None:
        return f"{visit.label:<36} (no decision within the time limit)"
    d = event.data
    outcome = {"allow": "ALLOW  ", "deny": "DENY   ", "recheck": "RECHECK"}[d["outcome"]]
    who = f"{d.get('name', '?')} {d.get('unit', '')}".strip()
    temperature = d.get("temperature") or {}
    celsius = f"{temperature['celsius']:.1f}°C" if "celsius" in temperature else "—"
    alert = "  ⚠ alert" if d.get("alert") else ""
    return (
        f"{visit.label:<36} {d['direction']:<3} {outcome} {d['reason']:<22} "
        f"{who:<14} {celsius:>7}  {d['message_zh']} / {d['message_en']}"
        f"  [{d['latency_ms']:.0f} ms]{alert}"
    )
