"""The decision core, rule by rule, and the promise that no altered pass is ever allowed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_agent.core.passes import (
    ExitQuota,
    IssuerKey,
    Keyring,
    PassKind,
    PassRefusal,
    Scope,
    VerifiedPass,
    sign,
    verify,
)
from gate_agent.core.policy import (
    Decision,
    GateIdentity,
    GateLists,
    Isolation,
    PassHistory,
    PolicySettings,
    PriorEntry,
    decide,
    decide_registration,
)
from gate_agent.core.reasons import (
    PASS_TEXT_REASONS,
    Direction,
    GateMode,
    NextStep,
    Outcome,
    Reason,
)
from gate_agent.core.temperature import (
    TemperatureReading,
    TemperatureRefusal,
    TemperatureSource,
    manual_reading,
)
from tests.core.test_passes import KEY, VECTORS, fields_from

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
GATE = GateIdentity("LGQ-012-N", "LGQ-012", "LGQ")
RESIDENT = fields_from(VECTORS["vectors"][0]["fields"])  # compound LGQ-012, quota 1/2
IN, OUT = Direction.IN, Direction.OUT
ALLOW, DENY, RECHECK = Outcome.ALLOW, Outcome.DENY, Outcome.RECHECK


def sensor_reading(celsius: float) -> TemperatureReading:
    return TemperatureReading(celsius, TemperatureSource.SENSOR)


def prior(direction: Direction, outcome: Outcome, reason: Reason, ago: timedelta) -> PriorEntry:
    return PriorEntry(direction, outcome, reason, NOW - ago)


@dataclass
class Case:
    """One row of the rule table: what differs from a healthy resident walking in."""

    name: str
    outcome: Outcome
    reason: Reason
    direction: Direction = IN
    mode: GateMode = GateMode.SCREENING
    temperature: float | TemperatureRefusal | None = 36.5
    fields: dict[str, object] = field(default_factory=dict)
    lists: GateLists = field(default_factory=GateLists)
    history: PassHistory = field(default_factory=PassHistory)
    alert: bool = False


ISOLATED = GateLists(
    isolations=(Isolation("LGQ012-H0301", NOW - timedelta(days=3), NOW + timedelta(days=11)),)
)
ISOLATION_OVER = GateLists(
    isolations=(Isolation("LGQ012-H0301", NOW - timedelta(days=14), NOW - timedelta(hours=1)),)
)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
REVOKED = GateLists(revoked=frozenset({"P7K2M9QX4T"}))
REVOKED_AND_ISOLATED = GateLists(revoked=REVOKED.revoked, isolations=ISOLATED.isolations)
SCREENING, OPEN, LOCKDOWN = GateMode.SCREENING, GateMode.OPEN, GateMode.LOCKDOWN


def scope(text: str) -> dict[str, object]:
    return {"scope": Scope.parse(text)}


def kind(k: PassKind) -> dict[str, object]:
    return {"kind": k}


def last_allowed(direction: Direction, ago: timedelta) -> PassHistory:
    return PassHistory(last_allowed=prior(direction, ALLOW, Reason.OK, ago))


def first_fever(ago: timedelta) -> PassHistory:
    return PassHistory(last_entry=prior(IN, RECHECK, Reason.RECHECK_TEMPERATURE, ago))


def exits(*ago: timedelta) -> PassHistory:
    return PassHistory(household_exits=tuple(NOW - a for a in ago))


VISITOR: dict[str, object] = {"kind": PassKind.VISITOR, "exit_quota": None}
ONCE: dict[str, object] = {**VISITOR, "once": True}


def used_in(ago: timedelta) -> PassHistory:
    """The pass was let in ``ago`` (and out again since, so passback does not decide)."""
    return PassHistory(last_allowed=prior(OUT, ALLOW, Reason.OK, ago / 2), used_in_at=NOW - ago)


# One row per rule; the columns are Case's fields. A healthy resident walking in at 36.5 °C
# through a screening gate is the default.
# fmt: off
CASES = [
    Case("healthy resident walks in", ALLOW, Reason.OK),
    Case("resident walks out, exits unscreened", ALLOW, Reason.OK, OUT, temperature=None),
    Case("not yet valid", DENY, Reason.NOT_YET_VALID, fields={"valid_from": NOW + HOUR}),
    Case("expired", DENY, Reason.EXPIRED, fields={"valid_until": NOW}),
    Case("revoked", DENY, Reason.REVOKED, lists=REVOKED, alert=True),
    Case("other compound", DENY, Reason.OUT_OF_SCOPE, fields=scope("compound:LGQ-013")),
    Case("other community", DENY, Reason.OUT_OF_SCOPE, fields=scope("community:XYZ")),
    Case("our community", ALLOW, Reason.OK, fields=scope("community:LGQ")),
    Case("listed gate", ALLOW, Reason.OK, fields=scope("gates:X,LGQ-012-N")),
    Case("not a listed gate", DENY, Reason.OUT_OF_SCOPE, fields=scope("gates:LGQ-012-S")),
    Case("isolated household goes out", DENY, Reason.QUARANTINED_EXIT, OUT, lists=ISOLATED,
         alert=True),
    Case("isolated household goes out in open mode", DENY, Reason.QUARANTINED_EXIT, OUT, OPEN,
         lists=ISOLATED, alert=True),
    Case("isolated household comes home", ALLOW, Reason.OK, IN, lists=ISOLATED),
    Case("isolation over", ALLOW, Reason.OK, OUT, lists=ISOLATION_OVER),
    Case("open mode needs no temperature", ALLOW, Reason.OK, mode=OPEN, temperature=None),
    Case("open mode ignores fever", ALLOW, Reason.OK, mode=OPEN, temperature=39.0),
    Case("open mode still refuses expired", DENY, Reason.EXPIRED, mode=OPEN,
         fields={"valid_until": NOW - MIN}),
    Case("lockdown lets residents in", ALLOW, Reason.OK, mode=LOCKDOWN),
    Case("lockdown lets tenants in", ALLOW, Reason.OK, mode=LOCKDOWN,
         fields=kind(PassKind.TENANT)),
    *[
        Case(f"lockdown refuses {k} in", DENY, Reason.LOCKDOWN_RESIDENTS_ONLY, mode=LOCKDOWN,
             fields=kind(k))
        for k in (PassKind.VISITOR, PassKind.WORKER, PassKind.DELIVERY, PassKind.VEHICLE)
    ],
    Case("lockdown lets a visitor leave", ALLOW, Reason.OK, OUT, LOCKDOWN,
         fields=kind(PassKind.VISITOR)),
    Case("screening lets a visitor in", ALLOW, Reason.OK, fields=kind(PassKind.VISITOR)),
    Case("in twice", DENY, Reason.ALREADY_INSIDE, history=last_allowed(IN, 2 * HOUR)),
    Case("out twice", DENY, Reason.ALREADY_OUTSIDE, OUT, history=last_allowed(OUT, 2 * HOUR)),
    Case("in after out", ALLOW, Reason.OK, history=last_allowed(OUT, 2 * HOUR)),
    Case("in twice, first long ago", ALLOW, Reason.OK, history=last_allowed(IN, 13 * HOUR)),
    Case("in twice, clock went back", ALLOW, Reason.OK, history=last_allowed(IN, -HOUR)),
    Case("open mode has no passback", ALLOW, Reason.OK, mode=OPEN,
         history=last_allowed(IN, MIN)),
    Case("quota used by another member", DENY, Reason.QUOTA_USED, OUT,
         history=exits(timedelta(days=1))),
    Case("quota free again after the period", ALLOW, Reason.OK, OUT,
         history=exits(timedelta(days=2, minutes=1))),
    Case("quota applies to exits only", ALLOW, Reason.OK, IN, history=exits(HOUR)),
    Case("no quota rule on the pass", ALLOW, Reason.OK, OUT, fields={"exit_quota": None},
         history=exits(*[HOUR] * 5)),
    Case("quota of two", ALLOW, Reason.OK, OUT, fields={"exit_quota": ExitQuota(2, 2)},
         history=exits(HOUR)),
    Case("no temperature", RECHECK, Reason.TEMPERATURE_MISSING, temperature=None),
    *[
        Case(f"sensor refuses: {r}", RECHECK, r, temperature=TemperatureRefusal(r))
        for r in (Reason.SENSOR_WARMING_UP, Reason.AMBIENT_OUT_OF_RANGE,
                  Reason.NO_PERSON_AT_SENSOR, Reason.SENSOR_FAULT)
    ],
    Case("implausibly cold reading", RECHECK, Reason.TEMPERATURE_IMPLAUSIBLE, temperature=33.9),
    Case("just below fever", ALLOW, Reason.OK, temperature=37.29),
    Case("first fever reading", RECHECK, Reason.RECHECK_TEMPERATURE, temperature=37.3),
    Case("second fever reading", DENY, Reason.FEVER, temperature=37.8, alert=True,
         history=first_fever(5 * MIN)),
    Case("fine on re-check", ALLOW, Reason.OK, temperature=36.9, history=first_fever(5 * MIN)),
    Case("second fever reading long after the first", RECHECK, Reason.RECHECK_TEMPERATURE,
         temperature=37.8, history=first_fever(16 * MIN)),
    Case("lockdown screens too", RECHECK, Reason.RECHECK_TEMPERATURE, mode=LOCKDOWN,
         temperature=38.0),
    Case("revoked beats everything else", DENY, Reason.REVOKED, OUT,
         lists=REVOKED_AND_ISOLATED, alert=True),
    Case("visitor of an isolated household comes in", DENY, Reason.HOST_IN_ISOLATION,
         lists=ISOLATED, fields=VISITOR),
    Case("visitor of an isolated household comes in, open mode", DENY, Reason.HOST_IN_ISOLATION,
         mode=OPEN, lists=ISOLATED, fields=VISITOR),
    Case("visitor of an isolated household leaves", ALLOW, Reason.OK, OUT, lists=ISOLATED,
         fields=VISITOR),
    Case("visitor of an isolated household leaves, lockdown", ALLOW, Reason.OK, OUT, LOCKDOWN,
         lists=ISOLATED, fields=VISITOR),
    Case("visitor after the isolation is over", ALLOW, Reason.OK, lists=ISOLATION_OVER,
         fields=VISITOR),
    Case("one-time pass, first entry", ALLOW, Reason.OK, fields=ONCE),
    Case("one-time pass used already", DENY, Reason.PASS_USED, fields=ONCE,
         history=used_in(3 * HOUR)),
    Case("one-time pass used, in open mode too", DENY, Reason.PASS_USED, mode=OPEN,
         fields=ONCE, history=used_in(3 * HOUR)),
    Case("one-time pass used long ago (past passback)", DENY, Reason.PASS_USED, fields=ONCE,
         history=used_in(30 * HOUR)),
    Case("one-time pass leaves after its entry", ALLOW, Reason.OK, OUT, fields=ONCE,
         history=PassHistory(last_allowed=prior(IN, ALLOW, Reason.OK, 2 * HOUR),
                             used_in_at=NOW - 2 * HOUR)),
    Case("one-time pass with only an exit before", ALLOW, Reason.OK, fields=ONCE,
         history=last_allowed(OUT, 2 * HOUR)),
    Case("a pass without the rule ignores an earlier entry", ALLOW, Reason.OK,
         fields=VISITOR, history=used_in(30 * HOUR)),
    Case("expired before used", DENY, Reason.EXPIRED, fields={**ONCE, "valid_until": NOW},
         history=used_in(HOUR)),
]
# fmt: on


def run(case: Case, settings_: PolicySettings | None = None) -> Decision:
    fields = replace(RESIDENT, **case.fields)  # type: ignore[arg-type]
    return decide(
        VerifiedPass(fields, VECTORS["key_id"]),
        case.direction,
        gate=GATE,
        lists=case.lists,
        mode=case.mode,
        temperature=(
            sensor_reading(case.temperature)
            if isinstance(case.temperature, float)
            else case.temperature
        ),
        history=case.history,
        now=NOW,
        settings=settings_ or PolicySettings(),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule_table(case: Case) -> None:
    decision = run(case)
    assert (decision.outcome, decision.reason, decision.alert) == (
        case.outcome,
        case.reason,
        case.alert,
    )


def test_every_policy_reason_is_reached_by_the_table() -> None:
    reached = {case.reason for case in CASES}
    # A manual release or override is the guard's act; registrations have their own table.
    by_guard = {Reason.MANUAL_RELEASE, Reason.GUARD_OVERRIDE}
    assert set(Reason) - PASS_TEXT_REASONS - by_guard <= reached


def test_screening_exits_when_configured() -> None:
    case = Case("fever going out", RECHECK, Reason.RECHECK_TEMPERATURE, OUT, temperature=38.2)
    assert run(case).outcome is ALLOW
    assert run(case, PolicySettings(screen_exits=True)).reason is Reason.RECHECK_TEMPERATURE


def test_thresholds_come_from_settings() -> None:
    case = Case("37.0", ALLOW, Reason.OK, temperature=37.0)
    assert run(case).outcome is ALLOW
    assert run(case, PolicySettings(fever_celsius=37.0)).reason is Reason.RECHECK_TEMPERATURE
    with pytest.raises(ValueError):
        PolicySettings(fever_celsius=33.0)


def test_next_steps_tell_the_guard_what_to_do() -> None:
    away = Case("away", RECHECK, Reason.NO_PERSON_AT_SENSOR,
                temperature=TemperatureRefusal(Reason.NO_PERSON_AT_SENSOR))  # fmt: skip
    assert run(away).next_step is NextStep.FACE_THE_SENSOR
    cold = replace(away, temperature=TemperatureRefusal(Reason.AMBIENT_OUT_OF_RANGE))
    assert run(cold).next_step is NextStep.MEASURE_WITH_HANDHELD
    assert run(CASES[0]).next_step is NextStep.LET_THROUGH
    fever = next(c for c in CASES if c.reason is Reason.FEVER)
    assert run(fever).next_step is NextStep.REFER_FEVER_CLINIC
    first = next(c for c in CASES if c.reason is Reason.RECHECK_TEMPERATURE)
    assert run(first).next_step is NextStep.REST_AND_REMEASURE


@pytest.mark.parametrize("mode", list(GateMode))
def test_a_refused_pass_is_denied_in_every_mode(mode: GateMode) -> None:
    for reason in (Reason.BAD_SIGNATURE, Reason.TRUNCATED, Reason.UNKNOWN_KEY):
        decision = decide(
            PassRefusal(reason),
            IN,
            gate=GATE,
            lists=GateLists(),
            mode=mode,
            temperature=sensor_reading(36.5),
            history=PassHistory(),
            now=NOW,
            settings=PolicySettings(),
        )
        assert (decision.outcome, decision.reason) == (DENY, reason)
        assert decision.alert is (reason is Reason.BAD_SIGNATURE)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            PassRefusal(Reason.MALFORMED),
            IN,
            gate=GATE,
            lists=GateLists(),
            mode=GateMode.OPEN,
            temperature=None,
            history=PassHistory(),
            now=datetime(2026, 3, 1),
            settings=PolicySettings(),
        )


# A pass valid at NOW at this gate, signed by the gate's trusted key.
_LIVE = sign(
    replace(RESIDENT, valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=30)),
    KEY,
)
_KEYRING = Keyring(
    [IssuerKey(KEY.public_key()), IssuerKey(Ed25519PrivateKey.generate().public_key())]
)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, len(_LIVE) - 1),
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF),
    st.sampled_from(["sub", "ins", "del", "cut"]),
    st.sampled_from(list(GateMode)),
    st.sampled_from(list(Direction)),
)
def test_no_mutation_of_a_valid_pass_is_ever_allowed(
    i: int, ch: str, op: str, mode: GateMode, direction: Direction
) -> None:
    if op == "sub":
        mutated = _LIVE[:i] + ch + _LIVE[i + 1 :]
    elif op == "ins":
        mutated = _LIVE[:i] + ch + _LIVE[i:]
    elif op == "del":
        mutated = _LIVE[:i] + _LIVE[i + 1 :]
    else:
        mutated = _LIVE[:i]
    if mutated == _LIVE:
        return
    decision = decide(
        verify(mutated, _KEYRING),
        direction,
        gate=GATE,
        lists=GateLists(),
        mode=mode,
        temperature=sensor_reading(36.5),
        history=PassHistory(),
        now=NOW,
        settings=PolicySettings(),
    )
    assert decision.outcome is DENY


def test_the_unmutated_pass_is_allowed_in_every_mode() -> None:
    for mode in GateMode:
        decision = decide(
            verify(_LIVE, _KEYRING),
            IN,
            gate=GATE,
            lists=GateLists(),
            mode=mode,
            temperature=sensor_reading(36.5),
            history=PassHistory(),
            now=NOW,
            settings=PolicySettings(),
        )
        assert decision.allowed


def register(
    visitor: bool = True,
    mode: GateMode = SCREENING,
    celsius: float | None = 36.6,
    lists: GateLists | None = None,
) -> Decision:
    return decide_registration(
        visitor=visitor,
        household_id="LGQ012-H0301",
        lists=lists or GateLists(),
        mode=mode,
        temperature=None if celsius is None else manual_reading(celsius),
        now=NOW,
        settings=PolicySettings(),
    )


@pytest.mark.parametrize(
    ("visitor", "mode", "celsius", "lists", "reason"),
    [
        (True, SCREENING, 36.6, None, Reason.OK),
        (True, LOCKDOWN, 36.6, None, Reason.LOCKDOWN_RESIDENTS_ONLY),
        (False, LOCKDOWN, 36.6, None, Reason.OK),
        (True, SCREENING, 36.6, ISOLATED, Reason.HOST_IN_ISOLATION),
        (False, SCREENING, 36.6, ISOLATED, Reason.OK),
        (True, SCREENING, 37.5, None, Reason.FEVER),
        (False, SCREENING, 37.3, None, Reason.FEVER),
        (True, SCREENING, None, None, Reason.TEMPERATURE_MISSING),
        (True, SCREENING, 33.0, None, Reason.TEMPERATURE_IMPLAUSIBLE),
        (True, OPEN, None, None, Reason.OK),
    ],
)
def test_registrations_at_the_gate(
    visitor: bool, mode: GateMode, celsius: float | None, lists: GateLists | None, reason: Reason
) -> None:
    assert register(visitor, mode, celsius, lists).reason is reason


# -- the compound's household exit quota (the exit_quota gate setting) -------------------

COMPOUND_1_PER_2 = PolicySettings(exit_quota=ExitQuota(1, 2))


@pytest.mark.parametrize(
    ("pass_kind", "counted"),
    [
        (PassKind.RESIDENT, True),
        (PassKind.TENANT, True),
        (PassKind.WORKER, False),
        (PassKind.DELIVERY, False),
        (PassKind.VEHICLE, False),
        (PassKind.VISITOR, False),
    ],
)
def test_the_compound_quota_holds_for_residents_and_tenants_only(
    pass_kind: PassKind, counted: bool
) -> None:
    case = Case("out again", DENY, Reason.QUOTA_USED, OUT, history=exits(timedelta(days=1)),
                fields={"exit_quota": None, **kind(pass_kind)})  # fmt: skip
    assert run(case).reason is Reason.OK  # no quota anywhere
    decision = run(case, COMPOUND_1_PER_2)
    expected = (DENY, Reason.QUOTA_USED) if counted else (ALLOW, Reason.OK)
    assert (decision.outcome, decision.reason) == expected


def test_the_compound_quota_and_the_pass_rule_both_hold() -> None:
    def decide_out(own: ExitQuota | None, compound: ExitQuota | None, *ago: timedelta) -> Reason:
        case = Case("out", ALLOW, Reason.OK, OUT, history=exits(*ago),
                    fields={"exit_quota": own})  # fmt: skip
        return run(case, PolicySettings(exit_quota=compound)).reason

    day = timedelta(days=1)
    # The pass allows 2 in 2 days, the compound 1 in 2 days: the stricter one decides.
    assert decide_out(ExitQuota(2, 2), ExitQuota(1, 2), day) is Reason.QUOTA_USED
    assert decide_out(ExitQuota(1, 2), ExitQuota(2, 2), day) is Reason.QUOTA_USED
    assert decide_out(ExitQuota(2, 2), ExitQuota(2, 2), day) is Reason.OK
    # A longer window in one of them still counts the exits it sees.
    assert decide_out(ExitQuota(3, 7), ExitQuota(1, 1), 3 * day) is Reason.OK
    assert decide_out(ExitQuota(1, 7), ExitQuota(1, 1), 3 * day) is Reason.QUOTA_USED
    assert decide_out(None, ExitQuota(1, 2), timedelta(days=2, minutes=1)) is Reason.OK
    # Exits recorded later than now (a clock that went back) do not count.
    assert decide_out(None, ExitQuota(1, 2), -HOUR) is Reason.OK


def test_the_compound_quota_is_checked_after_passback_and_before_screening() -> None:
    case = Case("out twice", DENY, Reason.ALREADY_OUTSIDE, OUT, fields={"exit_quota": None},
                history=PassHistory(last_allowed=prior(OUT, ALLOW, Reason.OK, HOUR),
                                    household_exits=(NOW - HOUR,)))  # fmt: skip
    assert run(case, COMPOUND_1_PER_2).reason is Reason.ALREADY_OUTSIDE
    quota_first = Case("fever, quota used", DENY, Reason.QUOTA_USED, OUT, temperature=38.5,
                       fields={"exit_quota": None}, history=exits(HOUR))  # fmt: skip
    settings_ = PolicySettings(screen_exits=True, exit_quota=ExitQuota(1, 2))
    assert run(quota_first, settings_).reason is Reason.QUOTA_USED
    open_gate = replace(quota_first, mode=OPEN)
    assert run(open_gate, settings_).reason is Reason.OK  # open mode logs only
