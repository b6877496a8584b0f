"""Stable reason codes and the outcome, direction and mode enums every decision speaks in.

Codes are for machines and tests; ``messages`` maps each to Chinese and English
text for people. A code, once shipped, keeps its meaning: gates, the central
server and exported ledgers all store it.
"""

from enum import StrEnum


class Outcome(StrEnum):
    """What the gate does with the person in front of it."""

    ALLOW = "allow"
    DENY = "deny"
    RECHECK = "recheck"


class Direction(StrEnum):
    """Which way the person is going through the gate."""

    IN = "in"
    OUT = "out"


class GateMode(StrEnum):
    """The gate's posture, set by an admin."""

    OPEN = "open"  # log only: genuine passes go through, no screening
    SCREENING = "screening"  # pass and temperature
    LOCKDOWN = "lockdown"  # residents only, screening, strict isolation


class Reason(StrEnum):
    """Why a decision came out as it did; refusals of a pass text included."""

    OK = "ok"

    # The pass text itself (``passes.verify``).
    NOT_A_PASS = "not_a_pass"
    TOO_LONG = "too_long"
    NOT_ASCII = "not_ascii"
    UNKNOWN_VERSION = "unknown_version"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    KEY_RETIRED = "key_retired"
    BAD_SIGNATURE = "bad_signature"

    # The pass against this gate, its lists and its mode (``policy.decide``).
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    OUT_OF_SCOPE = "out_of_scope"
    QUARANTINED_EXIT = "quarantined_exit"
    LOCKDOWN_RESIDENTS_ONLY = "lockdown_residents_only"
    ALREADY_INSIDE = "already_inside"
    ALREADY_OUTSIDE = "already_outside"
    QUOTA_USED = "quota_used"
    PASS_USED = "pass_used"  # a one-time pass that already let its holder in

    # Temperature screening.
    TEMPERATURE_MISSING = "temperature_missing"
    SENSOR_WARMING_UP = "sensor_warming_up"
    AMBIENT_OUT_OF_RANGE = "ambient_out_of_range"
    NO_PERSON_AT_SENSOR = "no_person_at_sensor"
    SENSOR_FAULT = "sensor_fault"
    TEMPERATURE_IMPLAUSIBLE = "temperature_implausible"
    RECHECK_TEMPERATURE = "recheck_temperature"
    FEVER = "fever"

    # A visitor (registered at the gate, or with a visitor pass) of an isolated household.
    HOST_IN_ISOLATION = "host_in_isolation"

    # A guard opened the gate by hand (the release button, or an override on the console).
    MANUAL_RELEASE = "manual_release"
    GUARD_OVERRIDE = "guard_override"


#: Reasons that come from the pass text alone, before any gate state is consulted.
PASS_TEXT_REASONS = frozenset(
    {
        Reason.NOT_A_PASS,
        Reason.TOO_LONG,
        Reason.NOT_ASCII,
        Reason.UNKNOWN_VERSION,
        Reason.TRUNCATED,
        Reason.MALFORMED,
        Reason.UNKNOWN_KEY,
        Reason.KEY_RETIRED,
        Reason.BAD_SIGNATURE,
    }
)


class NextStep(StrEnum):
    """What the guard should do next."""

    LET_THROUGH = "let_through"
    ASK_FOR_VALID_PASS = "ask_for_valid_pass"
    MANUAL_LOOKUP = "manual_lookup"
    CALL_COMMUNITY_WORKER = "call_community_worker"
    MEASURE_WITH_HANDHELD = "measure_with_handheld"
    FACE_THE_SENSOR = "face_the_sensor"
    REST_AND_REMEASURE = "rest_and_remeasure"
    REFER_FEVER_CLINIC = "refer_fever_clinic"
    STAY_HOME = "stay_home"
    TURN_AWAY = "turn_away"
