"""What the PostgreSQL stream store reads: gates, places and tokens, entries by cursor or
filter, the compound lists' recent entries, the fleet view, the sync log, counts for charts.

A base of ``PostgresStreamStore`` (``streams_postgres.py``, which writes), on the same
pool: each read is one short transaction (``_tx``), so it sees committed rows only.
"""

from __future__ import annotations

import json
from typing import LiteralString

from sync.store import stats_postgres
from sync.store.postgres_base import PostgresDatabase, Row, aware
from sync.store.stats import EntryStats, StatsQuery
from sync.store.streams import (
    MAX_ENTRIES_PAGE,
    EntryQuery,
    EntryRecord,
    GateView,
    RecentEntry,
    RecentQuery,
    StreamView,
    SyncLogRow,
    SyncTotal,
    recent_entry,
)

_SELECT_ENTRIES: LiteralString = (
    "SELECT ingest_id, gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
    " problem, wall_time, corrected_time, received_at FROM entries"
)
#: What the compound lists read of an entry (``RecentEntry``), the content parsed once.
_SELECT_RECENT: LiteralString = (
    "SELECT ingest_id, gate_id, stream_id, seq, wall_time, corrected_time,"
    " j ->> 'reason', j ->> 'pass_id', j ->> 'pass_kind', j ->> 'household_id',"
    " j ->> 'direction', j ->> 'personal'"
    " FROM entries, LATERAL (SELECT gate_entry_json(content) AS j) AS parsed"
)


class PostgresStreamReads(PostgresDatabase):
    """The read half of ``PostgresStreamStore``."""

    def compound_gates(self, compound: str) -> list[str]:
        """The ids of the gates placed in ``compound``, sorted."""
        with self._tx("read compound gates") as conn:
            rows = conn.execute(
                "SELECT gate_id FROM gates WHERE compound = %s ORDER BY gate_id", (compound,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def gate_place(self, gate_id: str) -> tuple[str | None, str | None]:
        """(compound, community) of a gate; None for what is not known."""
        with self._tx("read gate place") as conn:
            row = conn.execute(
                "SELECT compound, community FROM gates WHERE gate_id = %s", (gate_id,)
            ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def recent_entries(self, query: RecentQuery, limit: int) -> list[RecentEntry]:
        """Up to ``limit`` unflagged entries matching ``query``, newest first, by index.

        Only the fields the compound lists use are read, from the content parsed once
        per row (a lateral ``gate_entry_json``).
        """
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_ENTRIES_PAGE}, got {limit}")
        if not query.gate_ids:
            return []
        where: list[LiteralString] = ["gate_id = ANY(%s)"]
        params: list[object] = [list(query.gate_ids)]
        if query.reasons:
            where.append("(gate_entry_json(content) ->> 'reason') = ANY(%s)")
            params.append(list(query.reasons))
        if query.pass_kinds:
            where.append("(gate_entry_json(content) ->> 'pass_kind') = ANY(%s)")
            params.append(list(query.pass_kinds))
        if query.direction is not None:
            where.append("(gate_entry_json(content) ->> 'direction') = %s")
            params.append(query.direction)
        if query.outcome is not None:
            where.append("(gate_entry_json(content) ->> 'outcome') = %s")
            params.append(query.outcome)
        where.append("gate_entry_time(corrected_time, wall_time) >= %s")
        params.append(aware(query.since))
        where.append("NOT flagged")
        conditions: LiteralString = " AND ".join(where)
        sql: LiteralString = (
            _SELECT_RECENT
            + " WHERE "
            + conditions
            + " ORDER BY gate_entry_time(corrected_time, wall_time) DESC, ingest_id DESC LIMIT %s"
        )
        with self._tx("read recent entries") as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [recent_entry(row) for row in rows]

    def gate_for_token(self, token_hash: str) -> str | None:
        """The gate whose token has this hash, or None."""
        with self._tx("find token") as conn:
            found = conn.execute(
                "SELECT gate_id FROM gates WHERE token_hash = %s", (token_hash,)
            ).fetchone()
        return None if found is None else str(found[0])

    def token_hash(self, gate_id: str) -> str | None:
        """The hash of a gate's current token; None for an unknown or never enrolled gate."""
        with self._tx("read token") as conn:
            found = conn.execute(
                "SELECT token_hash FROM gates WHERE gate_id = %s", (gate_id,)
            ).fetchone()
        return None if found is None or found[0] is None else str(found[0])

    def gates(self) -> list[GateView]:
        """Every known gate with its streams, by gate id."""
        with self._tx("read gates") as conn:
            gates = conn.execute(
                "SELECT gate_id, enrolled_at, last_seen, last_clock_offset_ms, last_backlog,"
                " compound, community FROM gates ORDER BY gate_id"
            ).fetchall()
            streams: dict[str, list[StreamView]] = {}
            for gate, stream, through in conn.execute(
                "SELECT gate_id, stream_id, stored_through FROM streams ORDER BY gate_id, stream_id"
            ):
                streams.setdefault(gate, []).append(StreamView(stream, int(through)))
        return [
            GateView(
                gate_id=gate,
                enrolled_at=enrolled,
                last_seen=seen,
                last_clock_offset_ms=None if offset is None else int(offset),
                last_backlog=None if backlog is None else int(backlog),
                streams=tuple(streams.get(gate, ())),
                compound=compound,
                community=community,
            )
            for gate, enrolled, seen, offset, backlog, compound, community in gates
        ]

    def entries_after(self, after: int, limit: int) -> list[EntryRecord]:
        """Up to ``limit`` entries with ``ingest_id`` above ``after``, in ingest order."""
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_ENTRIES_PAGE}, got {limit}")
        with self._tx("read entries") as conn:
            rows = conn.execute(
                "SELECT ingest_id, gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
                " problem, wall_time, corrected_time, received_at FROM entries"
                " WHERE ingest_id > %s ORDER BY ingest_id LIMIT %s",
                (after, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def entries_matching(self, query: EntryQuery, after: int, limit: int) -> list[EntryRecord]:
        """Up to ``limit`` entries after ``after`` that match, in ingest order, by index.

        PostgreSQL compares times exactly; entries without a readable time are left
        out of a windowed query, as in the SQLite store.
        """
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_ENTRIES_PAGE}, got {limit}")
        where: list[LiteralString] = ["ingest_id > %s"]
        params: list[object] = [after]
        if query.gate_ids:
            where.append("gate_id = ANY(%s)")
            params.append(list(query.gate_ids))
        subjects: list[LiteralString] = []
        if query.pass_ids:
            subjects.append("(gate_entry_json(content) ->> 'pass_id') = ANY(%s)")
            params.append(list(query.pass_ids))
        if query.household_id is not None:
            subjects.append("(gate_entry_json(content) ->> 'household_id') = %s")
            params.append(query.household_id)
        if subjects:
            where.append("(" + " OR ".join(subjects) + ")")
        if query.since is not None:
            where.append("gate_entry_time(corrected_time, wall_time) >= %s")
            params.append(aware(query.since))
        if query.until is not None:
            where.append("gate_entry_time(corrected_time, wall_time) < %s")
            params.append(aware(query.until))
        conditions: LiteralString = " AND ".join(where)
        sql: LiteralString = (
            _SELECT_ENTRIES + " WHERE " + conditions + " ORDER BY ingest_id LIMIT %s"
        )
        with self._tx("read matching entries") as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [_record(row) for row in rows]

    def sync_log(self, gate_id: str, limit: int) -> list[SyncLogRow]:
        """A gate's most recent batches, newest first."""
        with self._tx("read sync log") as conn:
            rows = conn.execute(
                "SELECT gate_id, stream_id, first_seq, last_seq, count, result, at FROM sync_log"
                " WHERE gate_id = %s ORDER BY id DESC LIMIT %s",
                (gate_id, limit),
            ).fetchall()
        return [
            SyncLogRow(
                gate_id=row[0],
                stream_id=row[1],
                first_seq=int(row[2]),
                last_seq=int(row[3]),
                count=int(row[4]),
                result=row[5],
                at=row[6],
            )
            for row in rows
        ]

    def sync_totals(self) -> list[SyncTotal]:
        """The whole sync log summed by result, by result (for ``/metrics``)."""
        with self._tx("sum the sync log") as conn:
            rows = conn.execute(
                "SELECT result, count(*), COALESCE(sum(last_seq - first_seq + 1), 0),"
                " COALESCE(sum(count), 0) FROM sync_log GROUP BY result ORDER BY result"
            ).fetchall()
        return [SyncTotal(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows]

    def ping(self) -> None:
        """Answer a trivial query, or raise ``StoreError`` (for ``/healthz``)."""
        with self._tx("answer a trivial query") as conn:
            conn.execute("SELECT 1").fetchone()

    def entry_stats(self, query: StatsQuery) -> EntryStats:
        """Entries of a window counted in the database, for charts (``sync/store/stats.py``)."""
        with self._tx("count entries") as conn:
            return stats_postgres.entry_stats(conn, query)


def _record(row: Row) -> EntryRecord:
    return EntryRecord(
        ingest_id=int(row[0]),
        gate_id=row[1],
        stream_id=row[2],
        seq=int(row[3]),
        hash=row[4],
        prev_hash=row[5],
        content=json.loads(row[6]),
        flagged=bool(row[7]),
        problem=row[8],
        wall_time=row[9],
        corrected_time=row[10],
        received_at=row[11],
    )
