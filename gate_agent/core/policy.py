"""The gate's decision: one pure function from a scan and the gate's state to an outcome.

``decide`` reads no clock and touches no device: everything it needs is an
argument, so the same inputs always give the same decision, and the table of
rules in docs/architecture.md can be tested row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gate_agent.core.passes import ExitQuota, PassKind, PassRefusal, ScopeKind, VerifiedPass
from gate_agent.core.reasons import (
    Direction,
    GateMode,
    NextStep,
    Outcome,
    Reason,
)
from gate_agent.core.temperature import TemperatureReading, TemperatureRefusal

#: Kinds let in during a lockdown: the people who live here.
LOCKDOWN_KINDS = frozenset({PassKind.RESIDENT, PassKind.TENANT})
#: Kinds whose exits a compound's household exit quota counts and limits.
QUOTA_KINDS = frozenset({PassKind.RESIDENT, PassKind.TENANT})


@dataclass(frozen=True)
class GateIdentity:
    """Where this gate is: its own id and the compound and community it belongs to."""

    gate_id: str
    compound_id: str
    community_id: str


@dataclass(frozen=True)
class Isolation:
    """A household in home isolation from ``start`` until ``end``."""

    household_id: str
    start: datetime
    end: datetime

    def covers(self, now: datetime) -> bool:
        """Whether the isolation is in force at ``now``."""
        return self.start <= now < self.end


@dataclass(frozen=True)
class GateLists:
    """The lists the centre sends down: revoked passes and isolated households."""

    revoked: frozenset[str] = frozenset()
    isolations: tuple[Isolation, ...] = ()

    def isolated(self, household_id: str, now: datetime) -> bool:
        """Whether the household is in isolation at ``now``."""
        return any(i.household_id == household_id and i.covers(now) for i in self.isolations)


@dataclass(frozen=True)
class PolicySettings:
    """Thresholds and windows; the defaults follow the 2020 Beijing practice."""

    fever_celsius: float = 37.3
    #: Below this a reading is a failed measurement (cold skin, aimed wrong), not a person.
    min_plausible_celsius: float = 34.0
    #: A second fever reading within this time of the first denies; later, it is a new first.
    recheck_window: timedelta = timedelta(minutes=15)
    #: A repeated entry in the same direction within this time is refused (anti-passback).
    passback_window: timedelta = timedelta(hours=12)
    #: Whether exits are screened too; entry screening is the norm.
    screen_exits: bool = False
    #: The compound's household exit quota (resident and tenant passes), beside any
    #: pass's own ``q=`` rule: both hold.
    exit_quota: ExitQuota | None = None

    def __post_init__(self) -> None:
        if not 30.0 <= self.min_plausible_celsius < self.fever_celsius <= 42.0:
            raise ValueError("need 30 <= min_plausible_celsius < fever_celsius <= 42")


@dataclass(frozen=True)
class PriorEntry:
    """An earlier ledger entry of the same pass, as far as the policy needs it."""

    direction: Direction
    outcome: Outcome
    reason: Reason
    at: datetime


@dataclass(frozen=True)
class PassHistory:
    """What the gate remembers of a pass: its last allowed passage and its last entry."""

    last_allowed: PriorEntry | None = None
    last_entry: PriorEntry | None = None
    #: Times of the household's allowed exits (through any gate of the compound the
    #: gate knows of), for the exit quotas.
    household_exits: Sequence[datetime] = field(default_factory=tuple)
    #: When a one-time pass was first let in (at any gate the gate knows of), or None.
    used_in_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome, its stable reason code, what the guard does next, and whether to alert."""

    outcome: Outcome
    reason: Reason
    next_step: NextStep
    alert: bool = False

    @property
    def allowed(self) -> bool:
        """Whether the gate opens."""
        return self.outcome is Outcome.ALLOW


_ALLOW = Decision(Outcome.ALLOW, Reason.OK, NextStep.LET_THROUGH)


def decide(
    scan: VerifiedPass | PassRefusal,
    direction: Direction,
    *,
    gate: GateIdentity,
    lists: GateLists,
    mode: GateMode,
    temperature: TemperatureReading | TemperatureRefusal | None,
    history: PassHistory,
    now: datetime,
    settings: PolicySettings,
) -> Decision:
    """Decide for one scan. Refusals of the pass itself hold in every mode."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(scan, PassRefusal):
        if scan.reason is Reason.BAD_SIGNATURE:
            # A well-formed text whose signature fails has been altered: a person must look.
            return _deny(scan.reason, NextStep.CALL_COMMUNITY_WORKER, alert=True)
        return _deny(scan.reason, NextStep.MANUAL_LOOKUP)
    fields = scan.fields
    if now < fields.valid_from:
        return _deny(Reason.NOT_YET_VALID, NextStep.ASK_FOR_VALID_PASS)
    if now >= fields.valid_until:
        return _deny(Reason.EXPIRED, NextStep.CALL_COMMUNITY_WORKER)
    if fields.pass_id in lists.revoked:
        return _deny(Reason.REVOKED, NextStep.CALL_COMMUNITY_WORKER, alert=True)
    if not _in_scope(fields.scope.kind, fields.scope.ids, gate):
        return _deny(Reason.OUT_OF_SCOPE, NextStep.TURN_AWAY)
    # An isolation order holds whatever the gate's posture. A visitor pass carries the
    # host's household: its holder may not visit, but is never kept in by it.
    isolated = lists.isolated(fields.household_id, now)
    if fields.kind is PassKind.VISITOR:
        if direction is Direction.IN and isolated:
            return _deny(Reason.HOST_IN_ISOLATION, NextStep.TURN_AWAY)
    elif direction is Direction.OUT and isolated:
        return _deny(Reason.QUARANTINED_EXIT, NextStep.STAY_HOME, alert=True)
    # One visit, whatever the posture: one allowed entry, then only its exit.
    if fields.once and direction is Direction.IN and history.used_in_at is not None:
        return _deny(Reason.PASS_USED, NextStep.ASK_FOR_VALID_PASS)
    if mode is GateMode.OPEN:
        return _ALLOW
    lockdown_entry = mode is GateMode.LOCKDOWN and direction is Direction.IN
    if lockdown_entry and fields.kind not in LOCKDOWN_KINDS:
        return _deny(Reason.LOCKDOWN_RESIDENTS_ONLY, NextStep.TURN_AWAY)
    passback = _passback(direction, history.last_allowed, now, settings)
    if passback is not None:
        return passback
    if direction is Direction.OUT:
        for quota in applicable_quotas(fields.kind, fields.exit_quota, settings):
            since = now - timedelta(days=quota.days)
            if sum(1 for t in history.household_exits if since <= t <= now) >= quota.exits:
                return _deny(Reason.QUOTA_USED, NextStep.STAY_HOME)
    if direction is Direction.OUT and not settings.screen_exits:
        return _ALLOW
    return _screen(temperature, history.last_entry, now, settings)


def applicable_quotas(
    kind: PassKind, own: ExitQuota | None, settings: PolicySettings
) -> tuple[ExitQuota, ...]:
    """The exit quotas an exit of this pass must keep: its own, and its compound's for
    residents and tenants."""
    compound = settings.exit_quota if kind in QUOTA_KINDS else None
    return tuple(q for q in (own, compound) if q is not None)


def _deny(reason: Reason, step: NextStep, *, alert: bool = False) -> Decision:
    return Decision(Outcome.DENY, reason, step, alert)


def _in_scope(kind: ScopeKind, ids: tuple[str, ...], gate: GateIdentity) -> bool:
    if kind is ScopeKind.COMMUNITY:
        return gate.community_id in ids
    if kind is ScopeKind.COMPOUND:
        return gate.compound_id in ids
    return gate.gate_id in ids


def _passback(
    direction: Direction, last: PriorEntry | None, now: datetime, settings: PolicySettings
) -> Decision | None:
    if last is None or last.direction is not direction:
        return None
    if not timedelta(0) <= now - last.at < settings.passback_window:
        # Older than the window, or a clock that went back: trust the person, not the clock.
        return None
    reason = Reason.ALREADY_INSIDE if direction is Direction.IN else Reason.ALREADY_OUTSIDE
    return _deny(reason, NextStep.CALL_COMMUNITY_WORKER)


def _screen(
    temperature: TemperatureReading | TemperatureRefusal | None,
    last: PriorEntry | None,
    now: datetime,
    settings: PolicySettings,
) -> Decision:
    if temperature is None:
        return Decision(Outcome.RECHECK, Reason.TEMPERATURE_MISSING, NextStep.MEASURE_WITH_HANDHELD)
    if isinstance(temperature, TemperatureRefusal):
        step = (
            NextStep.FACE_THE_SENSOR
            if temperature.reason is Reason.NO_PERSON_AT_SENSOR
            else NextStep.MEASURE_WITH_HANDHELD
        )
        return Decision(Outcome.RECHECK, temperature.reason, step)
    celsius = temperature.estimate_celsius
    if celsius < settings.min_plausible_celsius:
        return Decision(
            Outcome.RECHECK, Reason.TEMPERATURE_IMPLAUSIBLE, NextStep.MEASURE_WITH_HANDHELD
        )
    if celsius < settings.fever_celsius:
        return _ALLOW
    first_was_recent = (
        last is not None
        and last.reason is Reason.RECHECK_TEMPERATURE
        and timedelta(0) <= now - last.at <= settings.recheck_window
    )
    if first_was_recent:
        return Decision(Outcome.DENY, Reason.FEVER, NextStep.REFER_FEVER_CLINIC, alert=True)
    return Decision(Outcome.RECHECK, Reason.RECHECK_TEMPERATURE, NextStep.REST_AND_REMEASURE)


def decide_registration(
    *,
    visitor: bool,
    household_id: str,
    lists: GateLists,
    mode: GateMode,
    temperature: TemperatureReading | TemperatureRefusal | None,
    now: datetime,
    settings: PolicySettings,
) -> Decision:
    """Decide for someone a guard registers at the gate without a pass: a visitor or a returnee.

    The guard has already measured them with the handheld thermometer, and that
    reading is itself the re-check: at or above the threshold it is a fever.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if visitor and mode is GateMode.LOCKDOWN:
        return _deny(Reason.LOCKDOWN_RESIDENTS_ONLY, NextStep.TURN_AWAY)
    if visitor and lists.isolated(household_id, now):
        return _deny(Reason.HOST_IN_ISOLATION, NextStep.TURN_AWAY)
    if mode is GateMode.OPEN:
        return _ALLOW
    if temperature is None or isinstance(temperature, TemperatureRefusal):
        return Decision(Outcome.RECHECK, Reason.TEMPERATURE_MISSING, NextStep.MEASURE_WITH_HANDHELD)
    celsius = temperature.estimate_celsius
    if celsius < settings.min_plausible_celsius:
        return Decision(
            Outcome.RECHECK, Reason.TEMPERATURE_IMPLAUSIBLE, NextStep.MEASURE_WITH_HANDHELD
        )
    if celsius >= settings.fever_celsius:
        return Decision(Outcome.DENY, Reason.FEVER, NextStep.REFER_FEVER_CLINIC, alert=True)
    return _ALLOW
