"""What the SQLite stream store reads: gates, places and tokens, entries by cursor or filter,
the compound lists' recent entries, the fleet view, the sync log, and counts for charts.

A mixin of ``SqliteStreamStore`` (``streams_sqlite.py``, which writes): every read but the
charts' goes through the store's reader connection (``_read``), which in WAL mode sees
the last commit and never waits for the writer; the charts count on a read-only
connection of their own.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.errors import StoreError
from sync.store import stats_sqlite
from sync.store.stats import EntryStats, StatsQuery
from sync.store.streams import (
    MAX_ENTRIES_PAGE,
    RECENT_FIELDS,
    TIME_SLACK,
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

BUSY_TIMEOUT_MS = 5000
STATS_MMAP_BYTES = 256 * 1024 * 1024

_SELECT_ENTRIES = (
    "SELECT ingest_id, gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
    " problem, wall_time, corrected_time, received_at FROM entries"
)
#: What the compound lists read of an entry (``RecentEntry``), without the whole content.
_SELECT_RECENT = (
    "SELECT ingest_id, gate_id, stream_id, seq, wall_time, corrected_time, "  # noqa: S608 -- fixed names
    + ", ".join(f"json_extract(content, '$.{name}')" for name in RECENT_FIELDS)
    + " FROM entries"
)
#: The indexed time of an entry, as the trace indexes spell it (the index needs it exact).
_WHEN = "julianday(COALESCE(corrected_time, wall_time))"
#: The Julian day of the Unix epoch, to turn a time into what ``_WHEN`` compares.
_UNIX_EPOCH_JD = 2440587.5


class SqliteStreamReads:
    """The read half of ``SqliteStreamStore``; the store gives ``path`` and ``_read``."""

    path: Path

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def compound_gates(self, compound: str) -> list[str]:
        """The ids of the gates placed in ``compound``, sorted."""
        with self._read() as db:
            rows = db.execute(
                "SELECT gate_id FROM gates WHERE compound = ? ORDER BY gate_id", (compound,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def gate_place(self, gate_id: str) -> tuple[str | None, str | None]:
        """(compound, community) of a gate; None for what is not known."""
        with self._read() as db:
            row = db.execute(
                "SELECT compound, community FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def recent_entries(self, query: RecentQuery, limit: int) -> list[RecentEntry]:
        """Up to ``limit`` unflagged entries matching ``query``, newest first, by index.

        Only the fields the compound lists use are read (by ``json_extract``, not by
        parsing each entry's whole content in Python: several times faster).
        """
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_ENTRIES_PAGE}, got {limit}")
        if not query.gate_ids:
            return []
        where = [f"gate_id IN ({', '.join('?' * len(query.gate_ids))})"]
        params: list[Any] = list(query.gate_ids)
        for field, values in (("reason", query.reasons), ("pass_kind", query.pass_kinds)):
            if values:
                marks = ", ".join("?" * len(values))
                where.append(f"json_extract(content, '$.{field}') IN ({marks})")
                params.extend(values)
        for field, value in (("direction", query.direction), ("outcome", query.outcome)):
            if value is not None:
                where.append(f"json_extract(content, '$.{field}') = ?")
                params.append(value)
        where.append(f"{_WHEN} >= ?")
        params.append(julian_day(query.since - TIME_SLACK))
        where.append("flagged = 0")
        sql = (
            f"{_SELECT_RECENT} WHERE {' AND '.join(where)}"
            f" ORDER BY {_WHEN} DESC, ingest_id DESC LIMIT ?"
        )
        with self._read() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [recent_entry(row) for row in rows]

    def gate_for_token(self, token_hash: str) -> str | None:
        """The gate whose token has this hash, or None."""
        with self._read() as db:
            row = db.execute("SELECT gate_id FROM gates WHERE token_hash = ?", (token_hash,))
            found = row.fetchone()
        return None if found is None else str(found[0])

    def token_hash(self, gate_id: str) -> str | None:
        """The hash of a gate's current token; None for an unknown or never enrolled gate."""
        with self._read() as db:
            found = db.execute(
                "SELECT token_hash FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
        return None if found is None or found[0] is None else str(found[0])

    def gates(self) -> list[GateView]:
        """Every known gate with its streams, by gate id."""
        with self._read() as db:
            gates = db.execute(
                "SELECT gate_id, enrolled_at, last_seen, last_clock_offset_ms, last_backlog,"
                " compound, community FROM gates ORDER BY gate_id"
            ).fetchall()
            streams: dict[str, list[StreamView]] = {}
            for gate, stream, through in db.execute(
                "SELECT gate_id, stream_id, stored_through FROM streams ORDER BY gate_id, stream_id"
            ):
                streams.setdefault(gate, []).append(StreamView(stream, int(through)))
        return [
            GateView(
                gate_id=gate,
                enrolled_at=_time(enrolled),
                last_seen=_time(seen),
                last_clock_offset_ms=offset,
                last_backlog=backlog,
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
        with self._read() as db:
            rows = db.execute(
                "SELECT ingest_id, gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
                " problem, wall_time, corrected_time, received_at FROM entries"
                " WHERE ingest_id > ? ORDER BY ingest_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def entries_matching(self, query: EntryQuery, after: int, limit: int) -> list[EntryRecord]:
        """Up to ``limit`` entries after ``after`` that may match, in ingest order, by index.

        The window is widened by ``TIME_SLACK``: callers keep rows by ``entry_time``.
        """
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_ENTRIES_PAGE}, got {limit}")
        where = ["ingest_id > ?"]
        params: list[Any] = [after]
        if query.gate_ids:
            where.append(f"gate_id IN ({', '.join('?' * len(query.gate_ids))})")
            params.extend(query.gate_ids)
        subjects = []
        if query.pass_ids:
            marks = ", ".join("?" * len(query.pass_ids))
            subjects.append(f"json_extract(content, '$.pass_id') IN ({marks})")
            params.extend(query.pass_ids)
        if query.household_id is not None:
            subjects.append("json_extract(content, '$.household_id') = ?")
            params.append(query.household_id)
        if subjects:
            where.append("(" + " OR ".join(subjects) + ")")
        if query.since is not None:
            where.append(f"{_WHEN} >= ?")
            params.append(julian_day(query.since - TIME_SLACK))
        if query.until is not None:
            where.append(f"{_WHEN} < ?")
            params.append(julian_day(query.until + TIME_SLACK))
        with self._read() as db:
            sql = f"{_SELECT_ENTRIES} WHERE {' AND '.join(where)} ORDER BY ingest_id LIMIT ?"
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [_record(row) for row in rows]

    def sync_log(self, gate_id: str, limit: int) -> list[SyncLogRow]:
        """A gate's most recent batches, newest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT gate_id, stream_id, first_seq, last_seq, count, result, at FROM sync_log"
                " WHERE gate_id = ? ORDER BY id DESC LIMIT ?",
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
                at=datetime.fromisoformat(row[6]),
            )
            for row in rows
        ]

    def sync_totals(self) -> list[SyncTotal]:
        """The whole sync log summed by result, by result (for ``/metrics``)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT result, count(*), COALESCE(sum(last_seq - first_seq + 1), 0),"
                " COALESCE(sum(count), 0) FROM sync_log GROUP BY result ORDER BY result"
            ).fetchall()
        return [SyncTotal(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows]

    def ping(self) -> None:
        """Answer a trivial query, or raise ``StoreError`` (for ``/healthz``)."""
        with self._read() as db:
            db.execute("SELECT count(*) FROM sqlite_schema").fetchone()

    def entry_stats(self, query: StatsQuery) -> EntryStats:
        """Entries of a window counted in the database, for charts (``sync/store/stats.py``).

        On a read-only connection of its own: counting a month of entries takes
        seconds, and the shared reader must stay free for the gates' token checks.
        """
        try:
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the central database: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # The count reads a large part of the file once: map it rather than copy it
            # page by page through the small page cache.
            db.execute(f"PRAGMA mmap_size = {STATS_MMAP_BYTES}")
            return stats_sqlite.entry_stats(db, query)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        finally:
            db.close()


def _record(row: tuple[Any, ...]) -> EntryRecord:
    return EntryRecord(
        ingest_id=int(row[0]),
        gate_id=row[1],
        stream_id=row[2],
        seq=int(row[3]),
        hash=row[4],
        prev_hash=row[5],
        content=json.loads(row[6]),
        flagged=row[7] == 1,
        problem=row[8],
        wall_time=row[9],
        corrected_time=_time(row[10]),
        received_at=datetime.fromisoformat(row[11]),
    )


def julian_day(moment: datetime) -> float:
    """An aware time as SQLite's julianday() gives it: what the time indexes hold."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.timestamp() / 86400 + _UNIX_EPOCH_JD


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
