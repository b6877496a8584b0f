"""Assessing a scan: the gate's state from the ledger, then the decision core.

``Assessor.evaluate`` verifies a scanned text and decides against the keys,
lists, mode and the pass's history the ledger holds, writing nothing. The scan
loop (station.py) and `gate-agent check` both use it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gate_agent.clock import Clock
from gate_agent.config import GateConfig
from gate_agent.core.passes import ExitQuota, Keyring, PassRefusal, VerifiedPass, verify
from gate_agent.core.policy import (
    Decision,
    GateLists,
    Isolation,
    PassHistory,
    PolicySettings,
    PriorEntry,
    applicable_quotas,
    decide,
)
from gate_agent.core.reasons import Direction, GateMode, Outcome, Reason
from gate_agent.core.temperature import TemperatureReading, TemperatureRefusal
from gate_agent.ledger.entries import Ledger
from gate_agent.ledger.records import StoredEntry

logger = logging.getLogger(__name__)

_Cached = tuple[tuple[tuple[str, int], ...], Keyring, GateLists, PolicySettings]


@dataclass(frozen=True)
class Evaluation:
    """A scanned text, what verification made of it, and the decision.

    ``scan`` is None for people registered by a guard without any pass.
    """

    text: str
    scan: VerifiedPass | PassRefusal | None
    direction: Direction
    mode: GateMode
    temperature: TemperatureReading | TemperatureRefusal | None
    decision: Decision


class Assessor:
    """The gate's state in one place: its config, its ledger and the lists in it."""

    def __init__(self, config: GateConfig, ledger: Ledger, clock: Clock | None = None) -> None:
        """With a ``clock``, an earlier entry of this boot is dated by monotonic time
        (``prior_entry``), so a wall clock that jumps cannot open or close a window."""
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self._cached: _Cached | None = None

    @property
    def settings(self) -> PolicySettings:
        """The config's thresholds, with those the centre set in the gate settings."""
        return self._current()[3]

    def keyring(self) -> Keyring:
        """The issuer keys the gate holds, indexed by the id derived from each key."""
        return self._current()[1]

    def lists(self) -> GateLists:
        """Revocations and isolations as the decision core reads them."""
        return self._current()[2]

    def _current(self) -> _Cached:
        # A list only changes with a higher version, so one small query per scan tells
        # whether the keys and tens of thousands of revocations must be read again.
        state = self.ledger.state
        versions = tuple(sorted(state.list_versions().items()))
        if self._cached is None or self._cached[0] != versions:
            keys = state.issuer_keys()
            keyring = Keyring.from_raw((raw, retired) for _, raw, retired in keys)
            lists = GateLists(
                revoked=state.revoked_pass_ids(),
                isolations=tuple(Isolation(h, s, e) for h, s, e in state.isolations()),
            )
            policy = centre_policy(self.config.policy.settings(), state.settings())
            self._cached = (versions, keyring, lists, policy)
        return self._cached

    def mode(self) -> GateMode:
        """The gate mode: the latest instruction (an admin's switch here, or a change of the
        centre's setting, see ``GateState.local_mode``), else the centre's, else the config's.
        """
        state = self.ledger.state
        local = state.local_mode()
        value = local[0] if local is not None else state.settings().get("mode")
        if isinstance(value, str) and value in GateMode.__members__.values():
            return GateMode(value)
        return self.config.policy.mode

    def history(self, scan: VerifiedPass | PassRefusal, now: datetime) -> PassHistory:
        """What the ledger remembers of this pass and its household."""
        if isinstance(scan, PassRefusal):
            return PassHistory()
        fields = scan.fields
        exits: tuple[datetime, ...] = ()
        quotas = applicable_quotas(fields.kind, fields.exit_quota, self.settings)
        if quotas:
            since = now - timedelta(days=max(quota.days for quota in quotas))
            exits = self.household_exits(fields.household_id, since)
        return PassHistory(
            last_allowed=prior_entry(
                self.ledger.last_allowed_for_pass(fields.pass_id), now, self.clock
            ),
            last_entry=prior_entry(self.ledger.last_for_pass(fields.pass_id), now, self.clock),
            household_exits=exits,
            used_in_at=self.used_in_at(fields.pass_id, fields.valid_from) if fields.once else None,
        )

    def used_in_at(self, pass_id: str, since: datetime) -> datetime | None:
        """When a one-time pass (valid from ``since``) was first let in, as far as this gate
        knows: by its own entries, or by another gate's of the compound (``passages``)."""
        elsewhere = self.ledger.state.pass_passages(pass_id, "in", since)
        known = (
            self.ledger.first_allowed_in(pass_id),
            elsewhere[0][3] if elsewhere else None,
        )
        return min((at for at in known if at is not None), default=None)

    def household_exits(self, household_id: str, since: datetime) -> tuple[datetime, ...]:
        """Times of the household's allowed exits since ``since``, oldest first: from this
        gate's ledger and from the other gates of the compound (the ``passages`` list);
        an exit of this gate that comes back in that list counts once."""
        stream = self.ledger.stream_id
        seen = {
            (stream, seq): at
            for seq, at in self.ledger.household_exit_seqs_since(household_id, since)
        }
        for stream_id, seq, at in self.ledger.state.household_passages(household_id, "out", since):
            seen.setdefault((stream_id, seq), at)
        return tuple(sorted(seen.values()))

    def evaluate(
        self,
        text: str,
        direction: Direction,
        *,
        temperature: TemperatureReading | TemperatureRefusal | None,
        now: datetime,
    ) -> Evaluation:
        """Verify and decide for one scanned text; writes nothing."""
        return self.evaluate_scan(
            verify(text, self.keyring()), direction, temperature=temperature, now=now, text=text
        )

    def evaluate_scan(
        self,
        scan: VerifiedPass | PassRefusal,
        direction: Direction,
        *,
        temperature: TemperatureReading | TemperatureRefusal | None,
        now: datetime,
        text: str = "",
    ) -> Evaluation:
        """Decide for a pass already verified (or found in the directory); writes nothing."""
        mode = self.mode()
        decision = decide(
            scan,
            direction,
            gate=self.config.gate.identity(),
            lists=self.lists(),
            mode=mode,
            temperature=temperature,
            history=self.history(scan, now),
            now=now,
            settings=self.settings,
        )
        return Evaluation(text, scan, direction, mode, temperature, decision)


def centre_policy(base: PolicySettings, centre: dict[str, object]) -> PolicySettings:
    """``base`` with the thresholds the centre's gate settings carry.

    The centre checks each value when an admin sets it; a combination the decision
    core still refuses (a fever threshold below the config's plausible minimum) is
    logged and the config's settings stay in force.
    """
    changes: dict[str, object] = {}
    number = (int, float)
    fever = centre.get("fever_celsius")
    if isinstance(fever, number) and not isinstance(fever, bool):
        changes["fever_celsius"] = float(fever)
    recheck = centre.get("recheck_window_minutes")
    if isinstance(recheck, number) and not isinstance(recheck, bool):
        changes["recheck_window"] = timedelta(minutes=recheck)
    passback = centre.get("passback_window_hours")
    if isinstance(passback, number) and not isinstance(passback, bool):
        changes["passback_window"] = timedelta(hours=passback)
    screen_exits = centre.get("screen_exits")
    if isinstance(screen_exits, bool):
        changes["screen_exits"] = screen_exits
    quota = centre.get("exit_quota")
    if isinstance(quota, str) and re.fullmatch(r"[1-9][0-9]?/[1-9][0-9]?", quota):
        exits, days = quota.split("/")
        changes["exit_quota"] = ExitQuota(int(exits), int(days))
    try:
        return replace(base, **changes)  # type: ignore[arg-type]
    except ValueError as exc:
        logger.error("the centre's gate settings %s do not fit: %s", changes, exc)
        return base


def prior_entry(
    entry: StoredEntry | None, now: datetime, clock: Clock | None = None
) -> PriorEntry | None:
    """An earlier entry as the policy sees it, dated so that windows stay true.

    An entry made in this boot (its boot id is the clock's) is dated ``now`` minus the
    monotonic time elapsed since it: the anti-passback and re-check windows are measured
    on monotonic time, and a wall clock jumping back or forward by hours neither lets a
    passback through nor ends a re-check early. An entry of an earlier boot has only its
    wall time to go by (monotonic time restarts at boot).
    """
    if entry is None:
        return None
    at = entry.wall_time
    if clock is not None and entry.boot_id == clock.boot_id:
        elapsed_ns = clock.monotonic_ns() - entry.monotonic_ns
        if elapsed_ns >= 0:
            at = now - timedelta(microseconds=elapsed_ns // 1000)
    try:
        reason = Reason(entry.reason)
    except ValueError:
        reason = Reason.OK  # a code from a newer release: only its direction and time matter
    return PriorEntry(Direction(entry.direction), Outcome(entry.outcome), reason, at)
