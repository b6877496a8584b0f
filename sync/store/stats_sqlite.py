"""``StreamStore.entry_stats`` on SQLite: two GROUP BY queries over the trace time index.

The time is the trace indexes' ``julianday(COALESCE(corrected_time, wall_time))``
(so ``entries_time`` and ``entries_gate_time`` find the window), read as whole Unix
milliseconds; a wall time without an offset is left out, as ``entry_time`` leaves it.
SQLite compares the window to the millisecond.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from sync.store.stats import (
    MS_PER_DAY,
    MS_PER_HOUR,
    EntryStats,
    StatsQuery,
    TooManyEntries,
    count_rows,
    local_ms_sql,
    offset_segments,
    people_rows,
)

_WHEN = "julianday(COALESCE(corrected_time, wall_time))"  # as the trace indexes spell it
#: The Unix milliseconds of ``_WHEN``: julianday keeps whole milliseconds, so this is exact.
_MS = f"(CAST(round({_WHEN} * 86400000.0) AS INTEGER) - 210866760000000)"
#: ``entry_time`` reads a wall time only with its offset; julianday would take it as UTC.
_READABLE = (
    "(corrected_time IS NOT NULL OR wall_time GLOB '*[+-][0-9][0-9]:[0-9][0-9]'"
    " OR wall_time GLOB '*Z')"
)


def entry_stats(db: sqlite3.Connection, query: StatsQuery) -> EntryStats:
    """Count the window's entries (one read transaction, so both counts agree)."""
    local, local_params = local_ms_sql(
        "ms", offset_segments(query.tz, query.since, query.until), "?"
    )
    indexed = [f"{_WHEN} >= julianday(?)", f"{_WHEN} < julianday(?)"]
    params: list[Any] = [_iso(query.since), _iso(query.until)]
    if query.gate_ids:
        indexed.append(f"gate_id IN ({', '.join('?' * len(query.gate_ids))})")
        params.extend(query.gate_ids)
    where = [*indexed, _READABLE]
    rows = (
        f"SELECT gate_id, {local} AS local_ms, direction, outcome, reason, pass_id FROM ("  # noqa: S608 - literals and marks only
        f"SELECT gate_id, {_MS} AS ms,"
        " json_extract(content, '$.direction') AS direction,"
        " json_extract(content, '$.outcome') AS outcome,"
        " json_extract(content, '$.reason') AS reason,"
        " json_extract(content, '$.pass_id') AS pass_id"
        f" FROM entries WHERE {' AND '.join(where)})"
    )
    every = (*local_params, *params)
    db.execute("BEGIN")
    try:
        if query.max_entries is not None:
            # From the time index alone (the offset check needs the row): an upper bound.
            held = db.execute(
                f"SELECT count(*) FROM entries WHERE {' AND '.join(indexed)}",  # noqa: S608 - literals and marks only
                params,
            ).fetchone()[0]
            if held > query.max_entries:
                raise TooManyEntries(int(held), query.max_entries)
        counts = db.execute(
            f"SELECT gate_id, local_ms / {MS_PER_HOUR}, direction, outcome, reason, count(*)"  # noqa: S608 - literals and marks only
            f" FROM ({rows}) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2",
            every,
        ).fetchall()
        people = db.execute(
            f"SELECT gate_id, local_ms / {MS_PER_DAY}, count(*),"  # noqa: S608 - literals and marks only
            " count(DISTINCT CASE WHEN outcome = 'allow' AND pass_id <> '' THEN pass_id END),"
            " sum(CASE WHEN outcome = 'allow' AND coalesce(pass_id, '') = '' THEN 1 ELSE 0 END)"
            f" FROM ({rows}) GROUP BY 1, 2 ORDER BY 1, 2",
            every,
        ).fetchall()
    finally:
        db.execute("COMMIT")
    return EntryStats(query, count_rows(counts), people_rows(people))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
