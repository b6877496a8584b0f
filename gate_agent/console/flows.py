"""The console's live events, status and the flows guards carry out by hand.

No handler here writes the ledger: each flow becomes a request for the
station's worker, and the answer is the decision the worker recorded.
"""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gate_agent.console.deps import AdminSession, ConsoleError, GuardSession, console_of
from gate_agent.console.status import gate_status
from gate_agent.core.messages import OVERRIDE_REASONS
from gate_agent.core.reasons import Direction, GateMode
from gate_agent.core.temperature import manual_reading
from gate_agent.events import GateEvent, Subscription
from gate_agent.manual import (
    ConsoleRequest,
    HandheldTemperature,
    ManualEntry,
    ModeChange,
    Override,
    Registration,
    returnee_personal,
    visitor_personal,
)

router = APIRouter(prefix="/api")
RECENT_ON_CONNECT = 5
_HEARTBEAT_SECONDS = 15.0
_POLL_SECONDS = 0.25
_ANSWER_SECONDS = 10.0

Celsius = Annotated[float, Field(ge=30.0, le=45.0, description="From the handheld thermometer")]
Name = Annotated[str, Field(min_length=1, max_length=40)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{5,19}$")]
Household = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ManualEntryBody(_Body):
    """A resident found in the directory, going in or out."""

    pass_id: Annotated[str, Field(pattern=r"^[0-9A-Z]{6,16}$")]
    direction: Direction
    temperature_celsius: Celsius | None = None


class TemperatureBody(_Body):
    """A handheld reading for a scan."""

    temperature_celsius: Celsius


class VisitorBody(_Body):
    """A visitor registered at the gate."""

    name: Name
    phone: Phone
    host_household_id: Household
    reason: Annotated[str, Field(min_length=1, max_length=100)]
    plate: Annotated[str, Field(max_length=12)] = ""
    temperature_celsius: Celsius


class ReturneeBody(_Body):
    """A resident coming back from elsewhere, registered at the gate."""

    name: Name
    phone: Phone
    household_id: Household
    from_place: Annotated[str, Field(min_length=1, max_length=60)]
    returned_on: date
    transport: Annotated[str, Field(max_length=30, description="Train or flight number")] = ""
    health: Literal["well", "symptoms", "contact"]
    temperature_celsius: Celsius


class OverrideBody(_Body):
    """Why the guard opens the gate despite a refusal."""

    reason: Annotated[str, Field(pattern="^(" + "|".join(OVERRIDE_REASONS) + ")$")]
    text: Annotated[str, Field(max_length=200)] = ""


class ModeBody(_Body):
    """The gate's new mode."""

    mode: GateMode


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, session: GuardSession) -> StreamingResponse:
    """Server-Sent Events: decisions and device states; the last few decisions first."""
    console = console_of(request)
    bus = console.gate.events
    # Subscribed before the response starts, so nothing published once the page sees
    # the stream open can be missed.
    subscription = bus.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            for event in bus.recent("decision")[-RECENT_ON_CONNECT:]:
                yield _sse(event, replay=True)
            quiet = 0.0
            # Until the page goes, the server stops (a stop waits for open responses to
            # end; the page's EventSource connects again once it can), or the session
            # ends: signed out, or the guard's shift over.
            while (
                not console.closing.is_set()
                and console.sessions.get(session.token, console.clock.now()) is not None
                and not await request.is_disconnected()
            ):
                news = await asyncio.to_thread(_next, subscription)
                if news is not None:
                    quiet = 0.0
                    yield _sse(news)
                else:
                    quiet += _POLL_SECONDS
                    if quiet >= _HEARTBEAT_SECONDS:
                        quiet = 0.0
                        yield ": still here\n\n"
        finally:
            subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _next(subscription: Subscription) -> GateEvent | None:
    # Short, so a closed page (or a stopping server) is noticed quickly.
    return subscription.get(_POLL_SECONDS)


def _sse(event: GateEvent, *, replay: bool = False) -> str:
    data = dict(event.data, at=event.at.isoformat())
    if replay:
        data["replay"] = True  # history for a page opened late: no colour, no sound
    return f"event: {event.kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get("/status")
async def status(request: Request, session: GuardSession) -> dict[str, Any]:
    """Counts today, people inside, lists, devices, clock, sync and mode."""
    console = console_of(request)
    return await asyncio.to_thread(gate_status, console.gate, console.clock, console.clock_watch)


@router.get("/residents")
async def residents(
    request: Request,
    session: GuardSession,
    unit: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=16)] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Residents in the directory by building-unit-room prefix or masked name."""
    if not unit and not name:
        raise ConsoleError(422, "unit_or_name", "give a unit (e.g. 3-2-501) or a name")
    state = console_of(request).gate.ledger.state
    found = await asyncio.to_thread(state.directory_search, unit=unit, name=name)
    keep = ("pass_id", "display_name", "unit", "kind", "household_id")
    return {
        "residents": [
            {("name" if k == "display_name" else k): item[k] for k in keep} for item in found
        ]
    }


@router.post("/entries/manual")
async def manual_entry(body: ManualEntryBody, request: Request, session: GuardSession) -> Any:
    """Record a resident who has no phone or card."""
    reading = _reading(body.temperature_celsius)
    return await _ask(request, ManualEntry(body.pass_id, body.direction, reading, session.name))


@router.post("/entries/{seq}/temperature")
async def handheld(seq: int, body: TemperatureBody, request: Request, session: GuardSession) -> Any:
    """Decide a scan again with a handheld reading."""
    reading = manual_reading(body.temperature_celsius)
    return await _ask(request, HandheldTemperature(seq, reading, session.name))


@router.post("/visitors")
async def visitor(body: VisitorBody, request: Request, session: GuardSession) -> Any:
    """Register a visitor (refused in lockdown)."""
    personal = visitor_personal(
        name=body.name, phone=body.phone, reason=body.reason, plate=body.plate
    )
    reading = manual_reading(body.temperature_celsius)
    request_ = Registration(True, body.host_household_id, personal, reading, session.name)
    return await _ask(request, request_)


@router.post("/returnees")
async def returnee(body: ReturneeBody, request: Request, session: GuardSession) -> Any:
    """Register a resident returning from elsewhere; the record syncs up."""
    personal = returnee_personal(
        name=body.name,
        phone=body.phone,
        from_place=body.from_place,
        returned_on=body.returned_on,
        transport=body.transport,
        health=body.health,
    )
    reading = manual_reading(body.temperature_celsius)
    return await _ask(request, Registration(False, body.household_id, personal, reading,
                                            session.name))  # fmt: skip


@router.post("/entries/{seq}/override")
async def override(seq: int, body: OverrideBody, request: Request, session: GuardSession) -> Any:
    """Open the gate despite a refusal, with the guard's reason."""
    return await _ask(request, Override(seq, body.reason, body.text, session.name))


@router.post("/mode")
async def mode(body: ModeBody, request: Request, session: AdminSession) -> Any:
    """Switch the gate's mode (admins only)."""
    console = console_of(request)
    return await _ask(request, ModeChange(body.mode, session.name, console.clock.now()))


def _reading(celsius: float | None) -> Any:
    return manual_reading(celsius) if celsius is not None else None


async def _ask(request: Request, work: ConsoleRequest) -> dict[str, Any]:
    station = console_of(request).gate.station
    try:
        station.submit(work, timeout=2.0)
    except queue.Full as exc:
        raise ConsoleError(503, "busy", "the gate is busy: try again") from exc
    try:
        answer = await asyncio.wait_for(asyncio.wrap_future(work.future), _ANSWER_SECONDS)
    except TimeoutError as exc:
        raise ConsoleError(504, "no_answer", "the gate did not answer in time") from exc
    if answer.error is not None:
        status = {"unknown_pass": 404, "unknown_entry": 404, "not_refused": 409}.get(
            answer.error, 503
        )
        raise ConsoleError(status, answer.error, answer.error.replace("_", " "))
    return answer.data
