"""What guards do by hand at the gate, as requests the station's worker carries out.

The console never writes the ledger: it builds one of these requests, the
worker (the only writer of entries) decides, records and signals, and the
request's future carries the recorded decision back.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gate_agent.core.passes import (
    ExitQuota,
    PassFieldError,
    PassFields,
    PassKind,
    Scope,
    VerifiedPass,
)
from gate_agent.core.reasons import Direction, GateMode
from gate_agent.core.temperature import TemperatureReading

#: The key id recorded for a pass found in the directory rather than scanned.
DIRECTORY_KEY_ID = "DIRECTORY"


@dataclass(frozen=True)
class Answer:
    """What the worker did: the decision event's data, or a coded refusal of the request."""

    data: dict[str, Any]
    error: str | None = None  # e.g. "unknown_pass", "unknown_entry", "ledger_failed"


def _future() -> Future[Answer]:
    return Future()


@dataclass(frozen=True)
class ManualEntry:
    """A resident without phone or card, found in the directory by the guard."""

    pass_id: str
    direction: Direction
    temperature: TemperatureReading | None
    guard: str
    future: Future[Answer] = field(default_factory=_future, compare=False)


@dataclass(frozen=True)
class HandheldTemperature:
    """A handheld reading for a scan that asked for one: the scan is decided again."""

    seq: int
    temperature: TemperatureReading
    guard: str
    future: Future[Answer] = field(default_factory=_future, compare=False)


@dataclass(frozen=True)
class Registration:
    """A visitor, or a resident returning from elsewhere, registered by the guard."""

    visitor: bool
    household_id: str
    personal: dict[str, str]
    temperature: TemperatureReading | None
    guard: str
    future: Future[Answer] = field(default_factory=_future, compare=False)


@dataclass(frozen=True)
class Override:
    """A guard opens the gate despite a refusal, with a reason."""

    seq: int
    reason: str
    text: str
    guard: str
    future: Future[Answer] = field(default_factory=_future, compare=False)


@dataclass(frozen=True)
class ModeChange:
    """An admin switches the gate's mode."""

    mode: GateMode
    by: str
    at: datetime
    future: Future[Answer] = field(default_factory=_future, compare=False)


ConsoleRequest = ManualEntry | HandheldTemperature | Registration | Override | ModeChange


def directory_pass(item: dict[str, Any]) -> VerifiedPass:
    """A directory item (as the centre sent it) as a pass the decision core can judge."""
    quota = item.get("exit_quota")
    exits, _, days = (quota or "").partition("/")
    try:
        fields = PassFields(
            pass_id=item["pass_id"],
            kind=PassKind(item["kind"]),
            household_id=item["household_id"],
            scope=Scope.parse(item["scope"]),
            valid_from=item["valid_from"],
            valid_until=item["valid_until"],
            display_name=item["display_name"],
            unit=item.get("unit") or "",
            exit_quota=ExitQuota(int(exits), int(days)) if quota else None,
        )
    except (KeyError, ValueError, PassFieldError) as exc:
        raise ValueError(f"directory item {item.get('pass_id')!r} is unusable: {exc}") from exc
    return VerifiedPass(fields, DIRECTORY_KEY_ID)


def returnee_personal(
    *,
    name: str,
    phone: str,
    from_place: str,
    returned_on: date,
    transport: str,
    health: str,
) -> dict[str, str]:
    """The personal data a returnee registration keeps (purged after its retention period)."""
    return {
        "type": "returnee",
        "name": name,
        "phone": phone,
        "from_place": from_place,
        "returned_on": returned_on.isoformat(),
        "transport": transport,
        "health": health,
    }


def visitor_personal(*, name: str, phone: str, reason: str, plate: str) -> dict[str, str]:
    """The personal data a visitor registration keeps (purged after its retention period)."""
    return {"type": "visitor", "name": name, "phone": phone, "reason": reason, "plate": plate}
