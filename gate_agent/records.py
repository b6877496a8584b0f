"""What a decision becomes: a ledger entry draft, and the event the console shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gate_agent.assess import Evaluation
from gate_agent.clock import Clock
from gate_agent.core import messages
from gate_agent.core.passes import VerifiedPass
from gate_agent.core.reasons import Direction, NextStep, Outcome, Reason
from gate_agent.core.temperature import TemperatureReading, TemperatureRefusal
from gate_agent.events import GateEvent
from gate_agent.ledger import EntryDraft, StoredEntry


@dataclass(frozen=True)
class EntryExtra:
    """What a guard's flow adds to an entry: who, whose personal data, how identified."""

    guard: str | None = None
    personal: dict[str, str] | None = None
    manual_identity: str | None = None
    household_id: str | None = None
    pass_id: str | None = None
    pass_kind: str | None = None
    note: str | None = None
    display_name: str | None = None  # masked, for the console only


def entry_draft(
    evaluation: Evaluation, clock: Clock, *, lane: str, extra: EntryExtra | None = None
) -> EntryDraft:
    """The ledger entry for a decision; an unverified text is not stored, only its refusal."""
    extra = extra or EntryExtra()
    decision = evaluation.decision
    scan = evaluation.scan
    fields = scan.fields if isinstance(scan, VerifiedPass) else None
    reading = evaluation.temperature
    measured = reading if isinstance(reading, TemperatureReading) else None
    return EntryDraft(
        direction=evaluation.direction.value,
        outcome=decision.outcome.value,
        reason=decision.reason.value,
        wall_time=clock.now(),
        monotonic_ns=clock.monotonic_ns(),
        boot_id=clock.boot_id,
        clock_synced=clock.synced(),
        pass_id=fields.pass_id if fields else extra.pass_id,
        pass_kind=fields.kind.value if fields else extra.pass_kind,
        household_id=fields.household_id if fields else extra.household_id,
        manual_identity=extra.manual_identity,
        guard=extra.guard,
        personal=extra.personal,
        temperature_celsius=measured.estimate_celsius if measured else None,
        temperature_raw=measured.raw_celsius if measured else (),
        ambient_celsius=measured.ambient_celsius if measured else None,
        temperature_model=measured.model_version if measured else None,
        temperature_source=measured.source.value if measured else None,
        alert=decision.alert,
        next_step=decision.next_step.value,
        note=extra.note or f"lane {lane}",
    )


def manual_release_draft(at: datetime, guard: str, clock: Clock) -> EntryDraft:
    """The ledger entry for a guard opening the gate by hand."""
    return EntryDraft(
        direction=Direction.IN.value,
        outcome=Outcome.ALLOW.value,
        reason=Reason.MANUAL_RELEASE.value,
        wall_time=at,
        monotonic_ns=clock.monotonic_ns(),
        boot_id=clock.boot_id,
        clock_synced=clock.synced(),
        guard=guard,
        next_step=NextStep.LET_THROUGH.value,
        note="release button",
    )


def manual_release_event(entry: StoredEntry, at: datetime) -> GateEvent:
    """The console's view of a manual release."""
    data = {
        "seq": entry.seq,
        "recorded": True,
        "lane": "button",
        "direction": entry.direction,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "guard": entry.guard,
        "alert": False,
        "message_zh": messages.text(Reason.MANUAL_RELEASE, "zh"),
        "message_en": messages.text(Reason.MANUAL_RELEASE, "en"),
    }
    return GateEvent("decision", at, data)


def decision_event(
    evaluation: Evaluation,
    entry: StoredEntry | None,
    lane: str,
    latency_ms: float,
    at: datetime,
    *,
    extra: EntryExtra | None = None,
) -> GateEvent:
    """The console's view of a decision: masked name only, words in both languages."""
    decision = evaluation.decision
    data: dict[str, Any] = {
        "seq": entry.seq if entry else None,
        "recorded": entry is not None,
        "lane": lane,
        "direction": evaluation.direction.value,
        "mode": evaluation.mode.value,
        "outcome": decision.outcome.value,
        "reason": decision.reason.value,
        "next_step": decision.next_step.value,
        "alert": decision.alert,
        "message_zh": messages.text(decision.reason, "zh"),
        "message_en": messages.text(decision.reason, "en"),
        "next_zh": messages.text(decision.next_step, "zh"),
        "next_en": messages.text(decision.next_step, "en"),
        "latency_ms": round(latency_ms, 2),
        "temperature": temperature_fields(evaluation.temperature),
    }
    if isinstance(evaluation.scan, VerifiedPass):
        fields = evaluation.scan.fields
        data.update(
            pass_id=fields.pass_id,
            name=fields.display_name,
            unit=fields.unit,
            kind=fields.kind.value,
            household_id=fields.household_id,
        )
    if extra is not None:
        data.update(guard=extra.guard, manual_identity=extra.manual_identity)
        if extra.display_name:
            data["name"] = extra.display_name
        if extra.household_id and "household_id" not in data:
            data["household_id"] = extra.household_id
        if extra.pass_id and "pass_id" not in data:
            data["pass_id"] = extra.pass_id
    return GateEvent("decision", at, data)


def temperature_fields(
    temperature: TemperatureReading | TemperatureRefusal | None,
) -> dict[str, Any] | None:
    """A temperature or the reason there is none, as plain data."""
    if isinstance(temperature, TemperatureReading):
        return {
            "celsius": temperature.estimate_celsius,
            "source": temperature.source.value,
            "ambient_celsius": temperature.ambient_celsius,
            "model": temperature.model_version,
        }
    if isinstance(temperature, TemperatureRefusal):
        return {"refused": temperature.reason.value, "detail": temperature.detail}
    return None
