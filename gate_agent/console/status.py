"""The console's status panel: today's counts, people inside, lists, devices, clock, sync, disk."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gate_agent.assemble import Gate
from gate_agent.clock import Clock, ClockWatch
from gate_agent.core import messages
from gate_agent.core.reasons import Reason
from gate_agent.ledger.state import CENTRE, GateState


def local_midnight(now: datetime, zone: str) -> datetime:
    """The start of today where the gate stands."""
    local = now.astimezone(ZoneInfo(zone))
    return datetime.combine(local.date(), time(), tzinfo=local.tzinfo)


def gate_status(gate: Gate, clock: Clock, clock_watch: ClockWatch | None = None) -> dict[str, Any]:
    """Everything the status panel shows, as plain data."""
    config = gate.config
    now = clock.now()
    midnight = local_midnight(now, config.gate.timezone)
    ledger = gate.ledger
    state = ledger.state
    summary = ledger.day_summary(midnight, now)
    limit = timedelta(hours=config.gate.lists_max_age_hours)
    versions = state.list_versions()
    lists = {}
    for name, age in state.list_ages(now).items():
        lists[name] = {
            "version": versions.get(name, 0),
            "age_seconds": None if age is None else int(age.total_seconds()),
            "stale": name in ("revocations", "isolations", "keys") and (age is None or age > limit),
        }
    cameras = {
        lane: {"ok": h.ok, "state": h.state, "detail": h.detail, "dropped": h.frames_dropped}
        for lane, h in gate.station.health().items()
    }
    sensor = None
    if gate.sampler is not None:
        s = gate.sampler.state()
        sensor = {"ok": s.ok, "state": s.state, "detail": s.detail, "errors": s.errors_total}
    return {
        "gate": {"id": config.gate.id, "name": config.gate.name},
        "mode": gate.station.assessor.mode().value,
        "mode_set": mode_set(gate),
        "today": asdict(summary),
        "people_inside": ledger.people_inside_estimate(now - timedelta(days=1)),
        "lists": lists,
        "lists_stale": any(item["stale"] for item in lists.values()),
        "devices": {"cameras": cameras, "thermometer": sensor},
        "clock": clock_status(clock, now, clock_watch),
        "sync": sync_status(gate),
        "ledger": {"entries": ledger.count(), "errors": gate.station.stats.ledger_errors},
        "disk": disk_status(gate),
        "compound_alerts": compound_alerts(state, config.gate.id, now),
    }


def clock_status(clock: Clock, now: datetime, watch: ClockWatch | None) -> dict[str, Any]:
    """Synced or not, the gate's time, and a jump of the last hour (seconds, + forward)."""
    jump = watch.look() if watch is not None else None
    return {
        "synced": clock.synced(),
        "now": now.isoformat(),
        "jumped_seconds": None if jump is None else jump.moved_s,
    }


#: How far back the console shows the other gates' alerts, and how many at most.
ALERTS_WINDOW = timedelta(hours=24)
ALERTS_SHOWN = 10


def compound_alerts(state: GateState, gate_id: str, now: datetime) -> dict[str, Any]:
    """Isolation alerts at the compound's gates other than ``gate_id`` (the centre's
    ``alerts`` list) in the last 24 hours: how many, and the newest with their words."""
    items = [a for a in state.alerts(now - ALERTS_WINDOW) if a["gate_id"] != gate_id]
    recent = []
    for item in items[:ALERTS_SHOWN]:
        try:
            reason = Reason(item["reason"])
            words = {
                "message_zh": messages.text(reason, "zh"),
                "message_en": messages.text(reason, "en"),
            }
        except ValueError:  # a code from a newer centre: shown as it came
            words = {"message_zh": item["reason"], "message_en": item["reason"]}
        recent.append({**item, "at": item["at"].isoformat(), **words})
    return {"count": len(items), "recent": recent}


def mode_set(gate: Gate) -> dict[str, Any]:
    """Who set the mode in force: the centre, an admin at this gate, or the gate's config."""
    mode = gate.station.assessor.mode().value
    last = gate.ledger.state.local_mode()
    if last is None or last[0] != mode:
        return {"source": "config", "by": None, "at": None}
    _, at, by = last
    return {"source": "centre" if by == CENTRE else "gate", "by": by, "at": at.isoformat()}


def disk_status(gate: Gate) -> dict[str, Any] | None:
    """Free space of the data folder and the reserve (None when it cannot be read)."""
    if gate.housekeeper is None:
        return None
    try:
        return gate.housekeeper.disk().as_dict()
    except OSError:
        return None


def sync_status(gate: Gate) -> dict[str, Any]:
    """The uploader's state, or what the ledger knows when the gate does not sync."""
    if gate.uploader is not None:
        return gate.uploader.status().as_dict()
    status = gate.ledger.sync.status()
    return {
        "configured": False,
        "running": False,
        "backlog": status.backlog,
        "acked_through": status.acked_through,
        "last_success": None,
    }
