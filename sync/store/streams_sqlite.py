"""Central stream storage on SQLite: one connection behind a lock, WAL, fsync at every commit.

Ingest runs in one ``BEGIN IMMEDIATE`` transaction per batch, so the stream's cursor,
its entries, the gate's health and the sync log move together or not at all.
``ingest_id`` is assigned under SQLite's single write lock and committed in that
order, so a reader paging by it never sees a later id before an earlier one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Self

from gate_agent.core.chain import genesis_hash
from gate_agent.sqlite_wal import switch_to_wal
from sync.errors import StoreError
from sync.protocol import Ack, Batch, StreamConflict
from sync.store.checks import (
    PURGE_CHUNK,
    clock_offset_ms,
    judge_batch,
    new_entries,
    without_personal,
)
from sync.store.streams import (
    check_place,
)
from sync.store.streams_sqlite_reads import BUSY_TIMEOUT_MS, SqliteStreamReads, julian_day
from sync.store.streams_sqlite_schema import create_schema

logger = logging.getLogger(__name__)


_PERSONAL_BEFORE = (
    "json_extract(content, '$.personal') IS NOT NULL"
    " AND julianday(COALESCE(corrected_time, wall_time)) < ?"
)


class _Job:
    """One batch waiting for the group commit, and what became of it."""

    __slots__ = ("done", "error", "reply", "run")

    def __init__(self, run: Callable[[sqlite3.Connection], Ack | StreamConflict]) -> None:
        self.run = run
        self.reply: Ack | StreamConflict | None = None
        self.error: BaseException | None = None
        self.done = False


class SqliteStreamStore(SqliteStreamReads):
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
            switch_to_wal(self._db, BUSY_TIMEOUT_MS / 1000)
            # FULL: in WAL mode every commit is fsynced before the Ack leaves.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            create_schema(self._db)
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

    def purge_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the personal data of entries older than ``before``, a chunk per transaction."""
        cut = julian_day(before)
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


def _iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds, so stored times compare correctly as text."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
