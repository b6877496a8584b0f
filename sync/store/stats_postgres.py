"""``StreamStore.entry_stats`` on PostgreSQL: two GROUP BY queries over the trace time index.

The time is ``gate_entry_time(corrected_time, wall_time)`` (indexed by
``entries_time`` and ``entries_gate_time``; NULL, so not counted, for a wall time
without an offset, as ``entry_time`` has it), read as whole Unix milliseconds. The
content is parsed once per entry (``jsonb_to_record``). PostgreSQL compares the
window exactly. Both counts are read in one repeatable-read transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, LiteralString

from sync.store.postgres_base import aware
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

if TYPE_CHECKING:
    import psycopg

    from sync.store.postgres_base import Row

_WHEN: LiteralString = "gate_entry_time(corrected_time, wall_time)"
#: The same time for a row the window kept: gate_entry_time was not NULL for it, so its
#: wall time (when it has no corrected time) is an ISO time with an offset that casts.
#: Casting here spares a PL/pgSQL call, and its subtransaction, per counted entry.
_FAST_WHEN: LiteralString = "COALESCE(corrected_time, wall_time::timestamptz)"


def entry_stats(conn: psycopg.Connection[Row], query: StatsQuery) -> EntryStats:
    """Count the window's entries on a connection in a transaction not yet used."""
    local, local_params = local_ms_sql(
        "e.ms", offset_segments(query.tz, query.since, query.until), "%s::bigint"
    )
    where = f"{_WHEN} >= %s AND {_WHEN} < %s"
    params: list[Any] = [aware(query.since), aware(query.until)]
    if query.gate_ids:
        where += " AND gate_id = ANY(%s)"
        params.append(list(query.gate_ids))
    rows = (
        f"SELECT e.gate_id, {local} AS local_ms, c.direction, c.outcome, c.reason, c.pass_id"  # noqa: S608 - literals and marks only
        f" FROM (SELECT gate_id, content,"
        f" round(extract(epoch FROM {_FAST_WHEN}) * 1000)::bigint AS ms"
        f" FROM entries WHERE {where}) AS e"
        " LEFT JOIN LATERAL jsonb_to_record(gate_entry_json(e.content))"
        " AS c(direction text, outcome text, reason text, pass_id text) ON true"
    )
    every = (*local_params, *params)
    counts_sql = (
        f"SELECT gate_id, local_ms / {MS_PER_HOUR}, direction, outcome, reason, count(*)"  # noqa: S608 - literals and marks only
        f" FROM ({rows}) AS r GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2"
    )
    people_sql = (
        f"SELECT gate_id, local_ms / {MS_PER_DAY}, count(*),"  # noqa: S608 - literals and marks only
        " count(DISTINCT CASE WHEN outcome = 'allow' AND pass_id <> '' THEN pass_id END),"
        " count(*) FILTER (WHERE outcome = 'allow' AND coalesce(pass_id, '') = '')"
        f" FROM ({rows}) AS r GROUP BY 1, 2 ORDER BY 1, 2"
    )
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    # gate_entry_time enters an exception block, a subtransaction, which a parallel worker
    # may not start: stream migration 4 declares it PARALLEL RESTRICTED (leader only).
    if query.max_entries is not None:
        found = conn.execute(f"SELECT count(*) FROM entries WHERE {where}", params).fetchone()  # noqa: S608 - literals and marks only
        held = 0 if found is None else int(found[0])
        if held > query.max_entries:
            raise TooManyEntries(held, query.max_entries)
    # Built from this module's literals and integer constants; every value is a parameter.
    counts = conn.execute(counts_sql, every).fetchall()
    people = conn.execute(people_sql, every).fetchall()
    return EntryStats(query, count_rows(counts), people_rows(people))
