"""The interface of central stream storage: gates, enrolment codes, streams, entries, sync log.

``StreamStore`` is what the sync server needs; ``SqliteStreamStore`` and
``PostgresStreamStore`` implement it and pass the same tests. Times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sync.errors import WrongPlace
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
    compound: str | None = None  # where the gate is (see ``set_place``); None: not known
    community: str | None = None


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
    return entry_time_of(record.wall_time, record.corrected_time)


def entry_time_of(wall: str | None, corrected: datetime | None) -> datetime | None:
    """An entry's time from its two time columns (see ``entry_time``)."""
    if corrected is not None:
        return corrected
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
class RecentQuery:
    """Unflagged entries of some gates since a time, as the gates of a compound share them.

    Every field given must match: the entry's ``reason`` one of ``reasons``, its
    ``pass_kind`` one of ``pass_kinds``, its ``direction`` and ``outcome``. Served by
    the indexes ``entries_gate_reason`` and ``entries_gate_passage``.
    """

    gate_ids: tuple[str, ...]
    since: datetime
    reasons: tuple[str, ...] = ()
    pass_kinds: tuple[str, ...] = ()
    direction: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class RecentEntry:
    """What the compound lists need of a stored entry, read without its whole content."""

    ingest_id: int
    gate_id: str
    stream_id: str
    seq: int
    at: datetime | None  # its corrected time, else the gate's own (None: unreadable)
    reason: str | None
    pass_id: str | None
    pass_kind: str | None
    household_id: str | None
    direction: str | None
    personal: str | None  # the personal data's JSON text (a registration's), if kept


#: The fields of ``RecentEntry`` read from an entry's content, in order.
RECENT_FIELDS = ("reason", "pass_id", "pass_kind", "household_id", "direction", "personal")


def recent_entry(row: Sequence[Any]) -> RecentEntry:
    """A ``RecentEntry`` from ingest id, gate, stream, seq, wall time, corrected time (a
    datetime or ISO text), then the ``RECENT_FIELDS``."""
    ingest_id, gate_id, stream_id, seq, wall, corrected, *fields = row
    if isinstance(corrected, str):
        corrected = datetime.fromisoformat(corrected)
    when = entry_time_of(wall, corrected)
    reason, pass_id, kind, household, direction, personal = (
        None if value is None else str(value) for value in fields
    )
    return RecentEntry(
        int(ingest_id), gate_id, stream_id, int(seq), when, reason, pass_id, kind, household,
        direction, personal,
    )  # fmt: skip


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


@dataclass(frozen=True)
class SyncTotal:
    """Every batch of the sync log with one result, summed (the metrics' counters)."""

    result: str  # stored | repeat | gap | content_conflict
    batches: int
    entries_sent: int  # entries the batches carried
    entries_stored: int  # of them, newly stored


class StreamStore(Protocol):
    """Central storage of gates and their streams."""

    def add_enrol_code(self, gate_id: str, code_hash: str, expires_at: datetime) -> None:
        """Record a one-time enrolment code (its hash) for a gate, creating the gate."""

    def enrol(
        self,
        gate_id: str,
        code_hash: str,
        token_hash: str,
        now: datetime,
        *,
        compound: str | None = None,
        community: str | None = None,
    ) -> bool:
        """Consume a valid code and set the gate's token; False when the code is not good.

        ``compound``/``community`` are where the gate says it is: recorded when the
        centre has none; ``WrongPlace`` (nothing changes, the code stays unused) when
        the centre holds another.
        """

    def set_place(self, gate_id: str, compound: str, community: str | None) -> None:
        """Record where a gate is (creating the gate); ``community`` None keeps the held one."""

    def compound_gates(self, compound: str) -> list[str]:
        """The ids of the gates placed in ``compound``, sorted."""

    def gate_place(self, gate_id: str) -> tuple[str | None, str | None]:
        """(compound, community) of a gate; None for what is not known."""

    def recent_entries(self, query: RecentQuery, limit: int) -> list[RecentEntry]:
        """Up to ``limit`` unflagged entries matching ``query``, newest first, by index.

        The window may be widened by ``TIME_SLACK``; callers keep rows by ``entry_time``.
        """

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

    def sync_totals(self) -> list[SyncTotal]:
        """The whole sync log summed by result, by result (for ``/metrics``)."""

    def ping(self) -> None:
        """Answer a trivial query, or raise ``StoreError`` (for ``/healthz``)."""

    def entry_stats(self, query: StatsQuery) -> EntryStats:
        """Entries of a window counted in the database, for charts (``sync/store/stats.py``)."""

    def purge_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the personal data of entries whose time (corrected, else wall) is before
        ``before``; how many (``dry_run``: would be, changing nothing)."""
        ...

    def close(self) -> None:
        """Release the database."""


def check_place(
    gate_id: str,
    held: tuple[str | None, str | None],
    compound: str | None,
    community: str | None,
) -> tuple[str | None, str | None]:
    """The place to record when a gate enrols saying it is at ``compound``/``community``.

    What the centre holds wins where the gate says nothing; a different value is the
    installer's config gone wrong: ``WrongPlace``.
    """
    for name, have, said in (("compound", held[0], compound), ("community", held[1], community)):
        if have is not None and said is not None and have != said:
            raise WrongPlace(
                f"gate {gate_id} is in {name} {have} at the centre, not {said}:"
                " fix the gate's config or `gate-sync gates place` it"
            )
    return (held[0] or compound, held[1] or community)
