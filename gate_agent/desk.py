"""The station's desk: carrying out what guards ask for on the console, in the worker thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gate_agent.assess import Evaluation
from gate_agent.core.passes import mask_name
from gate_agent.core.policy import Decision, decide_registration
from gate_agent.core.reasons import Direction, NextStep, Outcome, Reason
from gate_agent.errors import LedgerError
from gate_agent.manual import (
    Answer,
    ConsoleRequest,
    HandheldTemperature,
    ManualEntry,
    ModeChange,
    Override,
    Registration,
    directory_pass,
)
from gate_agent.records import EntryExtra

if TYPE_CHECKING:
    from gate_agent.station import ScanResult, Station

log = logging.getLogger(__name__)

DESK_LANE = "desk"


def handle(station: Station, request: ConsoleRequest) -> None:
    """Carry out one console request and resolve its future, whatever happens."""
    try:
        answer = _dispatch(station, request)
    except (LedgerError, OSError) as exc:
        station.ledger_failed(exc)
        answer = Answer({}, "ledger_failed")
    except Exception as exc:
        log.exception("console request failed")
        request.future.set_exception(exc)
        return
    request.future.set_result(answer)


def _dispatch(station: Station, request: ConsoleRequest) -> Answer:
    if isinstance(request, ManualEntry):
        return _manual_entry(station, request)
    if isinstance(request, HandheldTemperature):
        return _handheld(station, request)
    if isinstance(request, Registration):
        return _registration(station, request)
    if isinstance(request, Override):
        return _override(station, request)
    return _mode(station, request)


def _answer(result: ScanResult) -> Answer:
    """The decision as the console shows it: the same data the live event carries."""
    if result.entry is None:
        return Answer({}, "ledger_failed")
    return Answer(dict(result.event.data))


def _manual_entry(station: Station, request: ManualEntry) -> Answer:
    item = station.ledger.state.directory_get(request.pass_id)
    if item is None:
        return Answer({}, "unknown_pass")
    scan = directory_pass(item)
    evaluation = station.assessor.evaluate_scan(
        scan, request.direction, temperature=request.temperature, now=station.clock.now()
    )
    extra = EntryExtra(
        guard=request.guard,
        manual_identity=f"directory:{scan.fields.unit or scan.fields.household_id}",
        note="looked up by the guard",
    )
    return _answer(station.record(evaluation, lane=DESK_LANE, extra=extra))


def _handheld(station: Station, request: HandheldTemperature) -> Answer:
    scan = station.scanned_text(request.seq)
    if scan is None:
        return Answer({}, "unknown_entry")
    evaluation = station.assessor.evaluate(
        scan.text, scan.direction, temperature=request.temperature, now=station.clock.now()
    )
    extra = EntryExtra(guard=request.guard, note=f"handheld reading for entry {request.seq}")
    return _answer(station.record(evaluation, lane=scan.lane, extra=extra))


def _registration(station: Station, request: Registration) -> Answer:
    assessor = station.assessor
    mode = assessor.mode()
    decision = decide_registration(
        visitor=request.visitor,
        household_id=request.household_id,
        lists=assessor.lists(),
        mode=mode,
        temperature=request.temperature,
        now=station.clock.now(),
        settings=assessor.settings,
    )
    kind = "visitor" if request.visitor else "returnee"
    evaluation = Evaluation("", None, Direction.IN, mode, request.temperature, decision)
    extra = EntryExtra(
        guard=request.guard,
        personal=request.personal,
        manual_identity=kind,
        household_id=request.household_id,
        note=f"{kind} registered at the gate",
        display_name=mask_name(request.personal.get("name", "")),
    )
    return _answer(station.record(evaluation, lane=DESK_LANE, extra=extra))


def _override(station: Station, request: Override) -> Answer:
    refused = station.ledger.get(request.seq)
    if refused is None:
        return Answer({}, "unknown_entry")
    if refused.outcome == Outcome.ALLOW.value:
        return Answer({}, "not_refused")
    decision = Decision(Outcome.ALLOW, Reason.GUARD_OVERRIDE, NextStep.LET_THROUGH, refused.alert)
    evaluation = Evaluation(
        "", None, Direction(refused.direction), station.assessor.mode(), None, decision
    )
    extra = EntryExtra(
        guard=request.guard,
        household_id=refused.household_id,
        pass_id=refused.pass_id,
        pass_kind=refused.pass_kind,
        manual_identity=refused.manual_identity,
        note=f"override of entry {refused.seq} ({refused.reason}): {request.reason}: "
        f"{request.text}".strip(),
    )
    return _answer(station.record(evaluation, lane=DESK_LANE, extra=extra))


def _mode(station: Station, request: ModeChange) -> Answer:
    station.ledger.state.set_local_mode(request.mode.value, by=request.by, at=request.at)
    station.publish_mode(request.mode, request.by)
    return Answer({"mode": request.mode.value})
