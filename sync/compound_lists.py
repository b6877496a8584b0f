"""What the gates of one compound learn from each other, derived from the stored entries.

Two downlink lists are made for a gate from the entries of every gate placed in its
compound (``StreamStore.compound_gates``), never copied anywhere:

- ``alerts``: refusals that concern an isolated household (``quarantined_exit``,
  ``host_in_isolation``) of the last 24 hours, newest first, at most 50;
- ``passages``: allowed passages the compound's rules count across gates: resident
  and tenant exits within the compound's quota window (when a quota is set), and
  visitor entries of the last 7 days.

Each list's version is the highest ``ingest_id`` among its items (0: no item, never
sent), so a new entry that belongs in it raises it, and the list goes as a snapshot
to a gate holding less. Items that only age out do not raise it: the gate applies
the same windows by time. Conflicts (``quota_conflicts``) are computed from the
entries as well, so a household let out too often by gates that were apart is
flagged whenever an admin asks, and never lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gate_agent.core.passes import mask_name
from sync import trace
from sync.lists import COMPOUND_LISTS, ListUpdate
from sync.store.central import IssuerStore
from sync.store.compounds_sql import check_quota
from sync.store.streams import EntryQuery, RecentEntry, RecentQuery, StreamStore

ALERT_REASONS = ("quarantined_exit", "host_in_isolation")
ALERT_WINDOW = timedelta(hours=24)
MAX_ALERTS = 50
#: Kinds whose exits a compound's quota counts (not workers, deliveries, vehicles, visitors).
QUOTA_KINDS = ("resident", "tenant")
VISITOR_WINDOW = timedelta(days=7)
#: The most passages one query returns (newest first); a compound's allowed exits within
#: a quota window stay far below it.
MAX_PASSAGES = 10_000


def placed(store: IssuerStore) -> None:
    """Raise the ``settings`` version after a gate moved compound: its settings changed."""
    store.raise_version("settings", store.list_version("settings") + 1)


def parse_quota(quota: str) -> tuple[int, int]:
    """``"N/D"`` as (exits, days)."""
    exits, days = check_quota(quota).split("/")
    return int(exits), int(days)


def derived_lists(
    streams: StreamStore,
    store: IssuerStore,
    *,
    compound: str,
    have: Mapping[str, int],
    now: datetime,
) -> list[ListUpdate]:
    """The compound lists newer than the gate holds, for a gate that asked for them."""
    wanted = [name for name in COMPOUND_LISTS if name in have]
    if not wanted:
        return []
    gates = tuple(streams.compound_gates(compound))
    updates = []
    for name in wanted:
        if name == "alerts":
            version, items = alerts(streams, store, gates, now)
        else:
            version, items = passages(streams, gates, store.compound_quota(compound), now)
        if version > max(0, int(have[name])):
            updates.append(ListUpdate(name=name, kind="snapshot", version=version, items=items))
    return updates


def alerts(
    streams: StreamStore, store: IssuerStore, gate_ids: Sequence[str], now: datetime
) -> tuple[int, tuple[dict[str, Any], ...]]:
    """(version, items) of the ``alerts`` list of a compound whose gates these are."""
    since = now - ALERT_WINDOW
    query = RecentQuery(gate_ids=tuple(gate_ids), since=since, reasons=ALERT_REASONS)
    found = streams.recent_entries(query, MAX_ALERTS * 2)
    records = [r for r in found if _within(r, since) and r.household_id][:MAX_ALERTS]
    labels = store.pass_labels([r.pass_id for r in records if r.pass_id])
    items = []
    for record in records:
        name, unit = labels.get(record.pass_id, ("", "")) if record.pass_id else ("", "")
        items.append(
            {
                "gate_id": record.gate_id,
                "stream_id": record.stream_id,
                "seq": record.seq,
                "at": _when(record).isoformat(),
                "reason": record.reason,
                "household_id": record.household_id,
                "unit": unit,
                "display_name": name or _masked_personal_name(record.personal),
                "pass_id": record.pass_id or None,
            }
        )
    return _version(records), tuple(items)


def passages(
    streams: StreamStore, gate_ids: Sequence[str], quota: str | None, now: datetime
) -> tuple[int, tuple[dict[str, Any], ...]]:
    """(version, items) of the ``passages`` list of a compound whose gates these are."""
    gates = tuple(gate_ids)
    queries = [
        RecentQuery(
            gates, now - VISITOR_WINDOW, pass_kinds=("visitor",), direction="in", outcome="allow"
        )
    ]
    if quota is not None:
        since = now - timedelta(days=parse_quota(quota)[1])
        queries.append(
            RecentQuery(gates, since, pass_kinds=QUOTA_KINDS, direction="out", outcome="allow")
        )
    records = [
        record
        for query in queries
        for record in streams.recent_entries(query, MAX_PASSAGES)
        if _within(record, query.since) and record.pass_id and record.household_id
    ]
    items = tuple(
        {
            "gate_id": r.gate_id,
            "stream_id": r.stream_id,
            "seq": r.seq,
            "pass_id": r.pass_id,
            "household_id": r.household_id,
            "kind": r.pass_kind,
            "direction": r.direction,
            "at": _when(r).isoformat(),
        }
        for r in records
    )
    return _version(records), items


@dataclass(frozen=True)
class QuotaConflict:
    """A household its compound's gates let out more often than the quota allows."""

    compound: str
    household_id: str
    quota: str
    exits: tuple[tuple[str, datetime], ...]  # every exit in the span looked at: (gate, time)
    over: tuple[tuple[str, datetime], ...]  # the exits beyond the quota


def quota_conflicts(
    streams: StreamStore,
    store: IssuerStore,
    *,
    compound: str | None,
    since: datetime,
    until: datetime,
) -> list[QuotaConflict]:
    """Households of compounds with a quota (or of ``compound``) let out beyond it.

    An exit is beyond the quota "N/D" when the household already went out N times,
    through any gate of its compound, in the D days before it. Each compound is judged
    by the quota it has now; exits before ``since`` count towards the first window.
    """
    quotas = {row.compound: row.quota for row in store.compound_quotas() if row.quota}
    if compound is not None:
        quotas = {compound: quotas[compound]} if compound in quotas else {}
    found: list[QuotaConflict] = []
    for name, quota in sorted(quotas.items()):
        exits_allowed, days = parse_quota(quota)
        gates = tuple(streams.compound_gates(name))
        if not gates:
            continue
        window = timedelta(days=days)
        query = EntryQuery(gate_ids=gates, since=since - window, until=until)
        by_household: dict[str, list[tuple[str, datetime]]] = {}
        for when, record in trace.matching(streams, query):
            content = record.content
            household = content.get("household_id")
            if (
                when is None
                or record.flagged
                or content.get("direction") != "out"
                or content.get("outcome") != "allow"
                or content.get("pass_kind") not in QUOTA_KINDS
                or not isinstance(household, str)
            ):
                continue
            by_household.setdefault(household, []).append((record.gate_id, when))
        for household, exits in sorted(by_household.items()):
            over = [
                (gate, at)
                for index, (gate, at) in enumerate(exits)
                if at >= since
                and sum(1 for _, before in exits[:index] if at - window < before <= at)
                >= exits_allowed
            ]
            if over:
                shown = tuple(e for e in exits if e[1] >= since or _counts(e[1], over, window))
                found.append(QuotaConflict(name, household, quota, shown, tuple(over)))
    return found


def conflict_json(conflict: QuotaConflict) -> dict[str, Any]:
    """A conflict as JSON primitives (the admin endpoint, ``--json``)."""
    return {
        "compound": conflict.compound,
        "household_id": conflict.household_id,
        "quota": conflict.quota,
        "exits": [{"gate_id": g, "at": at.isoformat()} for g, at in conflict.exits],
        "over_quota": [{"gate_id": g, "at": at.isoformat()} for g, at in conflict.over],
    }


def _counts(moment: datetime, over: Sequence[tuple[str, datetime]], window: timedelta) -> bool:
    """Whether an exit before the span falls in the window of an exit beyond the quota."""
    return any(at - window < moment <= at for _, at in over)


def _when(record: RecentEntry) -> datetime:
    if record.at is None:  # recent_entries only returns entries with a readable time
        raise ValueError(f"entry {record.ingest_id} has no readable time")
    return record.at


def _within(record: RecentEntry, since: datetime) -> bool:
    return record.at is not None and record.at >= since


def _version(records: Sequence[RecentEntry]) -> int:
    return max((r.ingest_id for r in records), default=0)


def _masked_personal_name(personal: str | None) -> str:
    """A registration's visitor name, masked as a pass prints it ("" when purged or none)."""
    if not personal:
        return ""
    try:
        data = json.loads(personal)
    except ValueError:
        return ""
    name = data.get("name") if isinstance(data, dict) else None
    return mask_name(name)[:16] if isinstance(name, str) and name.strip() else ""
