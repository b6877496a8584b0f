"""Statistics of stored entries for the admin page's charts, counted by the database.

Both stream stores answer ``StatsQuery`` with two ``GROUP BY`` queries over the
time index (the same one traces use), so only counts cross into Python, never
entries. An entry's time is ``entry_time``'s: the centre's corrected time when the
gate's clock could not be trusted, else the gate's own wall time when it carries an
offset (an entry with neither is not counted).

Hours and days are those of the display time zone (``Asia/Shanghai`` unless told).
Databases know no IANA zones here (SQLite has none), so Python finds the zone's UTC
offsets over the window (``offset_segments``: one for China, a few where clocks
change) and each store adds the right offset to an entry's Unix milliseconds in SQL
before dividing by the hour or the day. An hour repeated when clocks go back is one
bucket; an hour skipped when they go forward is not on the axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from itertools import pairwise
from typing import Any

#: The longest window a stats query may ask about (a quarter of a year of hours).
MAX_STATS_DAYS = 92
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - local wall-clock arithmetic, no zone


class TooManyEntries(ValueError):
    """A stats query over more entries than its ``max_entries``: narrow the window or gates."""

    def __init__(self, count: int, limit: int) -> None:
        """Say how many entries the window holds, and how many may be counted."""
        super().__init__(f"the window holds {count} entries, more than {limit}")
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class StatsQuery:
    """A window ``[since, until)`` (aware), optionally some gates, and the zone to count in.

    With ``max_entries`` the store first counts the window's entries from its time
    index alone (cheap) and raises ``TooManyEntries`` rather than start a count that
    would take minutes.
    """

    since: datetime
    until: datetime
    tz: tzinfo
    gate_ids: tuple[str, ...] = ()
    max_entries: int | None = None

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until must be timezone-aware")
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.until - self.since > timedelta(days=MAX_STATS_DAYS):
            raise ValueError(f"the window is longer than {MAX_STATS_DAYS} days")


@dataclass(frozen=True)
class CountRow:
    """Entries of one gate in one local hour with the same direction, outcome and reason."""

    gate_id: str
    hour: int  # local hours since 1970-01-01 00:00 local
    direction: str | None
    outcome: str | None
    reason: str | None
    count: int


@dataclass(frozen=True)
class PeopleRow:
    """One gate on one local day: entries, distinct passes let through, desk registrations."""

    gate_id: str
    day: int  # local days since 1970-01-01
    entries: int
    passes: int
    registered: int


@dataclass(frozen=True)
class EntryStats:
    """What a stats query counted: fine-grained hourly counts, and people per gate per day."""

    query: StatsQuery
    counts: tuple[CountRow, ...]
    people: tuple[PeopleRow, ...]


def unix_ms(moment: datetime) -> int:
    """A moment as whole Unix milliseconds (rounded, as SQLite's julianday rounds)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta // timedelta(microseconds=1) + 500) // 1000


def _offset_ms(tz: tzinfo, unix_seconds: int) -> int:
    moment = datetime.fromtimestamp(unix_seconds, UTC).astimezone(tz)
    offset = moment.utcoffset()
    return 0 if offset is None else offset // timedelta(milliseconds=1)


def offset_segments(tz: tzinfo, since: datetime, until: datetime) -> list[tuple[int, int]]:
    """The zone's UTC offsets over ``[since, until)``: ``(from Unix ms, offset ms)``, first from 0.

    Walks the window an hour at a time and pins each change to its second (zones
    change offset at whole seconds, and never twice within an hour).
    """
    start = int(since.timestamp())
    end = int(until.timestamp()) + 1
    current = _offset_ms(tz, start)
    segments = [(0, current)]
    here = start
    while here < end:
        step = min(here + 3600, end)
        if _offset_ms(tz, step) != current:
            low, high = here, step  # low has the old offset, high the new one
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_ms(tz, middle) == current:
                    low = middle
                else:
                    high = middle
            current = _offset_ms(tz, high)
            segments.append((high * 1000, current))
        here = step
    return segments


def local_ms_sql(ms: str, segments: Sequence[tuple[int, int]], mark: str) -> tuple[str, list[int]]:
    """SQL for local wall-clock milliseconds from the Unix milliseconds ``ms``, and its params.

    ``mark`` is the driver's placeholder (``?`` or ``%s``).
    """
    if len(segments) == 1:
        return f"({ms} + {mark})", [segments[0][1]]
    cases = []
    params: list[int] = []
    for (_, offset), (following, _) in pairwise(segments):
        cases.append(f"WHEN {ms} < {mark} THEN {mark}")
        params.extend((following, offset))
    params.append(segments[-1][1])
    return f"({ms} + CASE {' '.join(cases)} ELSE {mark} END)", params


def local_ms(query: StatsQuery, moment: datetime) -> int:
    """A moment as local wall-clock milliseconds since 1970-01-01 00:00 in the query's zone."""
    offset = moment.astimezone(query.tz).utcoffset()
    return unix_ms(moment) + (0 if offset is None else offset // timedelta(milliseconds=1))


def hour_start(query: StatsQuery, hour: int) -> datetime:
    """The aware local start of a local hour number."""
    return (_EPOCH + timedelta(hours=hour)).replace(tzinfo=query.tz)


def day_of(day: int) -> date:
    """The date of a local day number."""
    return _EPOCH.date() + timedelta(days=day)


def hour_axis(query: StatsQuery) -> list[int]:
    """Every local hour the window touches, skipped ones left out."""
    first = local_ms(query, query.since) // MS_PER_HOUR
    last = (local_ms(query, query.until) - 1) // MS_PER_HOUR
    hours = []
    for hour in range(first, last + 1):
        start = hour_start(query, hour)
        if start.astimezone(UTC).astimezone(query.tz).replace(tzinfo=None) == start.replace(
            tzinfo=None
        ):
            hours.append(hour)
    return hours


def day_axis(query: StatsQuery) -> list[int]:
    """Every local day the window touches."""
    first = local_ms(query, query.since) // MS_PER_DAY
    last = (local_ms(query, query.until) - 1) // MS_PER_DAY
    return list(range(first, last + 1))


def count_rows(rows: Iterable[Sequence[object]]) -> tuple[CountRow, ...]:
    """Database rows ``(gate, hour, direction, outcome, reason, count)`` as ``CountRow``."""
    return tuple(
        CountRow(
            gate_id=str(gate),
            hour=_int(hour),
            direction=_text(direction),
            outcome=_text(outcome),
            reason=_text(reason),
            count=_int(count),
        )
        for gate, hour, direction, outcome, reason, count in rows
    )


def people_rows(rows: Iterable[Sequence[object]]) -> tuple[PeopleRow, ...]:
    """Database rows ``(gate, day, entries, passes, registered)`` as ``PeopleRow``."""
    return tuple(
        PeopleRow(str(gate), _int(day), _int(entries), _int(passes), _int(registered))
        for gate, day, entries, passes, registered in rows
    )


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float, str, Decimal)) else 0


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def summary(stats: EntryStats) -> dict[str, Any]:
    """The counts as the admin page's charts read them (``GET /v1/admin/stats``).

    ``hourly``: entries (allowed or not) per gate per local hour, in and out; only
    hours with entries. ``refusals``: entries not allowed, by reason and outcome,
    most first. ``fevers``: every day of the window, ``fever`` denials and
    ``recheck_temperature`` first readings. ``people``: per gate per day, distinct
    passes let through plus allowed desk registrations (no pass: each one a person).
    """
    query = stats.query
    hourly: dict[tuple[str, int], dict[str, int]] = {}
    refusals: dict[tuple[str, str], int] = {}
    fevers = {day: [0, 0] for day in day_axis(query)}
    total = 0
    for row in stats.counts:
        total += row.count
        if row.direction in ("in", "out"):
            cell = hourly.setdefault((row.gate_id, row.hour), {"in": 0, "out": 0})
            cell[row.direction] += row.count
        if row.outcome != "allow":
            key = (row.reason or "", row.outcome or "")
            refusals[key] = refusals.get(key, 0) + row.count
        day = fevers.setdefault(row.hour // 24, [0, 0])
        if row.reason == "fever" and row.outcome == "deny":
            day[0] += row.count
        elif row.reason == "recheck_temperature":
            day[1] += row.count
    gates = sorted({row.gate_id for row in stats.counts} | set(query.gate_ids))
    return {
        "since": query.since.astimezone(query.tz).isoformat(),
        "until": query.until.astimezone(query.tz).isoformat(),
        "tz": str(query.tz),
        "gates": gates,
        "total": total,
        "hours": [hour_start(query, hour).isoformat() for hour in hour_axis(query)],
        "days": [day_of(day).isoformat() for day in day_axis(query)],
        "hourly": [
            {"gate_id": gate, "hour": hour_start(query, hour).isoformat(), **cell}
            for (gate, hour), cell in sorted(hourly.items())
        ],
        "refusals": [
            {"reason": reason, "outcome": outcome, "count": count}
            for (reason, outcome), count in sorted(
                refusals.items(), key=lambda item: (-item[1], item[0])
            )
        ],
        "fevers": [
            {"day": day_of(day).isoformat(), "fever": fever, "recheck": recheck}
            for day, (fever, recheck) in sorted(fevers.items())
        ],
        "people": [
            {
                "gate_id": row.gate_id,
                "day": day_of(row.day).isoformat(),
                "people": row.passes + row.registered,
                "passes": row.passes,
                "registered": row.registered,
                "entries": row.entries,
            }
            for row in stats.people
        ],
    }
