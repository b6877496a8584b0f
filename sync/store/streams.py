"""The interface of central stream storage: gates, enrolment codes, streams, entries, sync log.

``StreamStore`` is what the sync server needs; ``SqliteStreamStore`` and
``PostgresStreamStore`` implement it and pass the same tests. Times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sync.protocol import Ack, Batch, StreamConflict
from sync.store.stats import EntryStats, StatsQuery

MAX_ENTRIES_PAGE = 10_000
#: How far a store may widen a query's time window: its index compares times with
#: sub-millisecond rounding, so callers keep rows by ``entry_time`` exactly.
TIME_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class StreamView:
    """One stream of a gate and how far the centre holds it."""

    stream_id: str
    stored_through: int


@dataclass(frozen=True)
class GateView:
    """A gate as the fleet view shows it."""

    gate_id: str
    enrolled_at: datetime | None
    last_seen: datetime | None
    last_clock_offset_ms: int | None
    last_backlog: int | None
    streams: tuple[StreamView, ...]


@dataclass(frozen=True)
class EntryRecord:
    """One stored entry, with its place in the ingest order (``ingest_id``)."""

    ingest_id: int
    gate_id: str
    stream_id: str
    seq: int
    hash: str
    prev_hash: str | None
    content: dict[str, Any]
    flagged: bool
    problem: str | None
    wall_time: str | None
    corrected_time: datetime | None
    received_at: datetime


def entry_time(record: EntryRecord) -> datetime | None:
    """When an entry happened: its corrected time, else the gate's own (None if unreadable)."""
    if record.corrected_time is not None:
        return record.corrected_time
    wall = record.wall_time
    try:
        moment = datetime.fromisoformat(wall) if wall else None
    except ValueError:
        return None
    return moment if moment is not None and moment.utcoffset() is not None else None


@dataclass(frozen=True)
class EntryQuery:
    """Which stored entries a trace wants; empty fields do not filter.

    ``gate_ids`` keeps entries of those gates; ``pass_ids`` and ``household_id``
    together name whom to follow (an entry of any of the passes, or naming the
    household); ``since``/``until`` bound ``entry_time`` (``until`` excluded).
    """

    gate_ids: tuple[str, ...] = ()
    pass_ids: tuple[str, ...] = ()
    household_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SyncLogRow:
    """One batch as the centre answered it."""

    gate_id: str
    stream_id: str
    first_seq: int
    last_seq: int
    count: int  # entries newly stored by this batch
    result: str  # stored | repeat | gap | content_conflict
    at: datetime


class StreamStore(Protocol):
    """Central storage of gates and their streams."""

    def add_enrol_code(self, gate_id: str, code_hash: str, expires_at: datetime) -> None:
        """Record a one-time enrolment code (its hash) for a gate, creating the gate."""

    def enrol(self, gate_id: str, code_hash: str, token_hash: str, now: datetime) -> bool:
        """Consume a valid code and set the gate's token; False when the code is not good."""

    def gate_for_token(self, token_hash: str) -> str | None:
        """The gate whose token has this hash, or None."""

    def token_hash(self, gate_id: str) -> str | None:
        """The hash of a gate's current token; None for an unknown or never enrolled gate."""

    def ingest(
        self,
        gate_id: str,
        stream_id: str,
        batch: Batch,
        *,
        now: datetime,
        list_versions: Mapping[str, int],
        reference_time: datetime | None = None,
        correct_clock: bool = True,
    ) -> Ack | StreamConflict:
        """Store a batch in one transaction (see docs/sync-protocol.md); the reply to send.

        ``reference_time`` is the centre's time standing for the batch's
        ``sent_monotonic_ns`` in the clock correction (None: ``now``, a live upload);
        ``correct_clock=False`` corrects no entry. A batch given a ``reference_time``
        did not arrive live (an imported bundle), so the gate's ``last_seen``, clock
        offset and backlog are left as they are.
        """

    def stored_through(self, gate_id: str, stream_id: str) -> int:
        """How far the centre holds a stream; 0 for a stream it never saw."""

    def gates(self) -> list[GateView]:
        """Every known gate with its streams, by gate id."""

    def entries_after(self, after: int, limit: int) -> list[EntryRecord]:
        """Up to ``limit`` entries with ``ingest_id`` above ``after``, in ingest order."""

    def entries_matching(self, query: EntryQuery, after: int, limit: int) -> list[EntryRecord]:
        """Up to ``limit`` entries after ``after`` that may match, in ingest order, by index.

        Gates, passes and household match exactly; the time window may be widened by
        ``TIME_SLACK`` each side, and with a window entries without a readable time are
        left out; callers keep the rows whose ``entry_time`` is within the window.
        """

    def sync_log(self, gate_id: str, limit: int) -> list[SyncLogRow]:
        """A gate's most recent batches, newest first."""

    def entry_stats(self, query: StatsQuery) -> EntryStats:
        """Entries of a window counted in the database, for charts (``sync/store/stats.py``)."""

    def close(self) -> None:
        """Release the database."""
