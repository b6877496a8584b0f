"""Central stream storage on SQLite: one connection behind a lock, WAL, fsync at every commit.

Ingest runs in one ``BEGIN IMMEDIATE`` transaction per batch, so the stream's cursor,
its entries, the gate's health and the sync log move together or not at all.
``ingest_id`` is assigned under SQLite's single write lock and committed in that
order, so a reader paging by it never sees a later id before an earlier one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gate_agent.core.chain import genesis_hash
from sync.errors import StoreError
from sync.protocol import Ack, Batch, StreamConflict
from sync.store import stats_sqlite
from sync.store.checks import (
    PURGE_CHUNK,
    clock_offset_ms,
    judge_batch,
    new_entries,
    without_personal,
)
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
    check_place,
    recent_entry,
)

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
STATS_MMAP_BYTES = 256 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gates (
    gate_id TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE,
    enrolled_at TEXT,
    last_seen TEXT,
    last_clock_offset_ms INTEGER,
    last_backlog INTEGER,
    compound TEXT,
    community TEXT
);
CREATE TABLE IF NOT EXISTS enrol_codes (
    code_hash TEXT PRIMARY KEY,
    gate_id TEXT NOT NULL REFERENCES gates(gate_id),
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS streams (
    gate_id TEXT NOT NULL REFERENCES gates(gate_id),
    stream_id TEXT NOT NULL,
    stored_through INTEGER NOT NULL DEFAULT 0 CHECK (stored_through >= 0),
    PRIMARY KEY (gate_id, stream_id)
);
CREATE TABLE IF NOT EXISTS entries (
    ingest_id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    hash TEXT NOT NULL,
    prev_hash TEXT,
    content TEXT NOT NULL,
    flagged INTEGER NOT NULL CHECK (flagged IN (0, 1)),
    problem TEXT,
    wall_time TEXT,
    corrected_time TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (gate_id, stream_id, seq),
    FOREIGN KEY (gate_id, stream_id) REFERENCES streams(gate_id, stream_id)
);
CREATE TABLE IF NOT EXISTS sync_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_log_gate ON sync_log(gate_id, id);
-- Traces (sync/trace.py). Expression indexes, so ingest writes the same rows as ever
-- and a database made before them gains them when it is next opened. The time is
-- the entry's corrected time, else the gate's wall time (julianday reads both).
CREATE INDEX IF NOT EXISTS entries_gate_time
    ON entries(gate_id, julianday(COALESCE(corrected_time, wall_time)));
CREATE INDEX IF NOT EXISTS entries_time ON entries(julianday(COALESCE(corrected_time, wall_time)));
CREATE INDEX IF NOT EXISTS entries_pass ON entries(json_extract(content, '$.pass_id'));
CREATE INDEX IF NOT EXISTS entries_household ON entries(json_extract(content, '$.household_id'));
"""
# Made after the place columns are added to an older file (see ``_add_place``). The
# compound lists (sync/compound_lists.py) read a few gates' recent alerts and passages
# through these instead of every entry of those gates.
_COMPOUND_INDEXES = """
CREATE INDEX IF NOT EXISTS gates_compound ON gates(compound);
CREATE INDEX IF NOT EXISTS entries_gate_reason ON entries(
    gate_id, json_extract(content, '$.reason'), julianday(COALESCE(corrected_time, wall_time))
);
CREATE INDEX IF NOT EXISTS entries_gate_passage ON entries(
    gate_id, json_extract(content, '$.pass_kind'), json_extract(content, '$.direction'),
    julianday(COALESCE(corrected_time, wall_time))
);
-- The retention purge: entries still holding personal data, by time.
CREATE INDEX IF NOT EXISTS entries_personal_time
    ON entries(julianday(COALESCE(corrected_time, wall_time)))
    WHERE json_extract(content, '$.personal') IS NOT NULL;
"""
_PERSONAL_BEFORE = (
    "json_extract(content, '$.personal') IS NOT NULL"
    " AND julianday(COALESCE(corrected_time, wall_time)) < ?"
)
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


class _Job:
    """One batch waiting for the group commit, and what became of it."""

    __slots__ = ("done", "error", "reply", "run")

    def __init__(self, run: Callable[[sqlite3.Connection], Ack | StreamConflict]) -> None:
        self.run = run
        self.reply: Ack | StreamConflict | None = None
        self.error: BaseException | None = None
        self.done = False


class SqliteStreamStore:
    """``StreamStore`` on one SQLite file (it may be the same file as ``CentralStore``)."""

    def __init__(self, path: Path) -> None:
        """Open or create the stream tables in ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection shared by the server's worker threads, serialised by the lock.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the central database: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode every commit is fsynced before the Ack leaves.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            _add_place(self._db)
            self._db.executescript(_COMPOUND_INDEXES)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{path}: cannot use as the central database: {exc}") from exc
        try:
            # Reads go through a connection of their own: in WAL mode they see the last
            # commit and never wait for the writer, so a gate's token check is not held
            # up behind other gates' batches.
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{path}: cannot open the central database: {exc}") from exc
        self.path = path
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Job] = []

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes the store."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            try:
                yield self._reader
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    # -- gates and enrolment ------------------------------------------------------------

    def add_enrol_code(self, gate_id: str, code_hash: str, expires_at: datetime) -> None:
        """Record a one-time enrolment code (its hash) for a gate, creating the gate."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO gates(gate_id) VALUES (?)", (gate_id,))
            db.execute(
                "INSERT INTO enrol_codes(code_hash, gate_id, expires_at) VALUES (?, ?, ?)",
                (code_hash, gate_id, _iso(expires_at)),
            )

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

        A place the centre does not hold yet is recorded; another than the one it holds
        raises ``WrongPlace`` and the transaction (the code's use too) is rolled back.
        """
        with self._tx() as db:
            used = db.execute(
                "UPDATE enrol_codes SET used_at = ? WHERE code_hash = ? AND gate_id = ?"
                " AND used_at IS NULL AND expires_at > ?",
                (_iso(now), code_hash, gate_id, _iso(now)),
            ).rowcount
            if not used:
                return False
            held = db.execute(
                "SELECT compound, community FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
            place = check_place(gate_id, (held[0], held[1]), compound, community)
            # A new enrolment replaces the gate's token: the old one stops working.
            db.execute(
                "UPDATE gates SET token_hash = ?, enrolled_at = ?, compound = ?, community = ?"
                " WHERE gate_id = ?",
                (token_hash, _iso(now), place[0], place[1], gate_id),
            )
        logger.info("gate %s enrolled", gate_id)
        return True

    def set_place(self, gate_id: str, compound: str, community: str | None) -> None:
        """Record where a gate is (creating the gate); ``community`` None keeps the held one."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO gates(gate_id) VALUES (?)", (gate_id,))
            db.execute(
                "UPDATE gates SET compound = ?, community = COALESCE(?, community)"
                " WHERE gate_id = ?",
                (compound, community, gate_id),
            )

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
        params.append(_julian(query.since - TIME_SLACK))
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

    # -- ingest -------------------------------------------------------------------------

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

        ``reference_time`` stands for the batch's ``sent_monotonic_ns`` in the clock
        correction (None: ``now``); ``correct_clock=False`` corrects no entry. With a
        ``reference_time`` the batch did not arrive live, so gate health is left alone.
        """
        job = _Job(
            partial(
                self._ingest_in,
                gate_id=gate_id,
                stream_id=stream_id,
                batch=batch,
                now=now,
                list_versions=list_versions,
                reference_time=reference_time,
                correct_clock=correct_clock,
            )
        )
        with self._pending_lock:
            self._pending.append(job)
        # Group commit: whoever holds the write lock next runs every batch waiting by
        # then in one transaction, each in its own savepoint, and pays one fsync for all.
        # A batch whose job another thread already committed just takes its reply.
        with self._lock:
            if not job.done:
                self._commit_pending()
        if job.error is not None:
            raise job.error
        assert job.reply is not None  # noqa: S101 - done without error means a reply
        return job.reply

    def _commit_pending(self) -> None:
        with self._pending_lock:
            jobs, self._pending = self._pending, []
        if not jobs:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for job in jobs:
                    db.execute("SAVEPOINT batch")
                    try:
                        job.reply = job.run(db)
                    except Exception as exc:  # noqa: BLE001 - one batch's failure is its own
                        # Undoes this batch only; if even that fails, the outer handler
                        # rolls everything back and fails every batch of the group.
                        db.execute("ROLLBACK TO batch")
                        job.error = (
                            StoreError(f"{self.path}: write failed: {exc}")
                            if isinstance(exc, sqlite3.Error)
                            else exc
                        )
                    db.execute("RELEASE batch")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            failed = StoreError(f"{self.path}: write failed: {exc}")
            for job in jobs:
                job.reply, job.error = None, failed
        except BaseException as exc:
            for job in jobs:
                job.reply, job.error = None, StoreError(f"{self.path}: ingest failed: {exc}")
            raise
        finally:
            for job in jobs:
                job.done = True

    def _ingest_in(
        self,
        db: sqlite3.Connection,
        *,
        gate_id: str,
        stream_id: str,
        batch: Batch,
        now: datetime,
        list_versions: Mapping[str, int],
        reference_time: datetime | None,
        correct_clock: bool,
    ) -> Ack | StreamConflict:
        reference = (reference_time or now) if correct_clock else None
        first = batch.first_seq
        last = first + len(batch.entries) - 1
        db.execute(
            "INSERT OR IGNORE INTO streams(gate_id, stream_id) VALUES (?, ?)",
            (gate_id, stream_id),
        )
        stored = _stored_through(db, gate_id, stream_id)
        if reference_time is None:
            db.execute(
                "UPDATE gates SET last_seen = ?, last_clock_offset_ms = ?, last_backlog = ?"
                " WHERE gate_id = ?",
                (_iso(now), clock_offset_ms(batch, now), batch.backlog, gate_id),
            )
        reply, result, count = self._apply(
            db, gate_id, stream_id, batch, stored=stored, now=now, reference=reference
        )
        db.execute(
            "INSERT INTO sync_log(gate_id, stream_id, first_seq, last_seq, count, result, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (gate_id, stream_id, first, last, count, result, _iso(now)),
        )
        if isinstance(reply, StreamConflict):
            return reply
        flagged = tuple(
            int(seq)
            for (seq,) in db.execute(
                "SELECT seq FROM entries WHERE gate_id = ? AND stream_id = ?"
                " AND seq BETWEEN ? AND ? AND flagged = 1 ORDER BY seq",
                (gate_id, stream_id, first, last),
            )
        )
        return Ack(
            stored_through=reply,
            flagged=flagged,
            server_time=now,
            list_versions=dict(list_versions),
        )

    def _apply(
        self,
        db: sqlite3.Connection,
        gate_id: str,
        stream_id: str,
        batch: Batch,
        *,
        stored: int,
        now: datetime,
        reference: datetime | None,
    ) -> tuple[int | StreamConflict, str, int]:
        first = batch.first_seq
        held = {
            int(seq): str(digest)
            for seq, digest in db.execute(
                "SELECT seq, hash FROM entries WHERE gate_id = ? AND stream_id = ?"
                " AND seq BETWEEN ? AND ?",
                (gate_id, stream_id, first, stored),
            )
        }
        conflict, skip = judge_batch(batch, stored, held)
        if conflict is not None:
            return conflict, conflict.error, 0
        if skip == len(batch.entries):
            return stored, "repeat", 0
        new = new_entries(
            batch,
            skip,
            gate_id=gate_id,
            stream_id=stream_id,
            prev_hash=_prev_hash(db, gate_id, stream_id, stored),
            reference=reference,
        )
        received = _iso(now)
        rows = [
            (
                gate_id,
                stream_id,
                e.seq,
                e.hash,
                e.prev_hash,
                e.content,
                int(bool(e.problems)),
                "; ".join(e.problems) or None,
                e.wall_time,
                None if e.corrected_time is None else _iso(e.corrected_time),
                received,
            )
            for e in new
        ]
        # One statement for the batch: ingest_id still rises in seq order.
        db.executemany(
            "INSERT INTO entries(gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
            " problem, wall_time, corrected_time, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        through = new[-1].seq
        db.execute(
            "UPDATE streams SET stored_through = ? WHERE gate_id = ? AND stream_id = ?",
            (through, gate_id, stream_id),
        )
        return through, "stored", len(new)

    # -- reads --------------------------------------------------------------------------

    def stored_through(self, gate_id: str, stream_id: str) -> int:
        """How far the centre holds a stream; 0 for a stream it never saw."""
        with self._read() as db:
            return _stored_through(db, gate_id, stream_id)

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
            params.append(_julian(query.since - TIME_SLACK))
        if query.until is not None:
            where.append(f"{_WHEN} < ?")
            params.append(_julian(query.until + TIME_SLACK))
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

    def purge_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the personal data of entries older than ``before``, a chunk per transaction."""
        cut = _julian(before)
        if dry_run:
            with self._read() as db:
                row = db.execute(
                    f"SELECT COUNT(*) FROM entries WHERE {_PERSONAL_BEFORE}",  # noqa: S608 - constant
                    (cut,),
                ).fetchone()
            return int(row[0])
        purged = 0
        while True:
            with self._tx() as db:
                rows = db.execute(
                    f"SELECT ingest_id, content FROM entries WHERE {_PERSONAL_BEFORE} LIMIT ?",  # noqa: S608 - constant
                    (cut, PURGE_CHUNK),
                ).fetchall()
                db.executemany(
                    "UPDATE entries SET content = ? WHERE ingest_id = ?",
                    [(without_personal(content), ingest_id) for ingest_id, content in rows],
                )
            purged += len(rows)
            if len(rows) < PURGE_CHUNK:
                return purged


def _add_place(db: sqlite3.Connection) -> None:
    """Give a file made before gates had a place its ``compound`` and ``community``."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(gates)")}
    for column in ("compound", "community"):
        if column not in columns:
            db.execute(f"ALTER TABLE gates ADD COLUMN {column} TEXT")


def _stored_through(db: sqlite3.Connection, gate_id: str, stream_id: str) -> int:
    row = db.execute(
        "SELECT stored_through FROM streams WHERE gate_id = ? AND stream_id = ?",
        (gate_id, stream_id),
    ).fetchone()
    return 0 if row is None else int(row[0])


def _prev_hash(db: sqlite3.Connection, gate_id: str, stream_id: str, stored: int) -> str:
    if stored == 0:
        return genesis_hash(stream_id)
    row = db.execute(
        "SELECT hash FROM entries WHERE gate_id = ? AND stream_id = ? AND seq = ?",
        (gate_id, stream_id, stored),
    ).fetchone()
    return str(row[0])


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


def _julian(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.timestamp() / 86400 + _UNIX_EPOCH_JD


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds, so stored times compare correctly as text."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
