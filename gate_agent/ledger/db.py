"""Opening the ledger file: connections, pragmas, transactions, migrations and the meta row."""

from __future__ import annotations

import ctypes
import functools
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gate_agent.errors import LedgerCorrupt, LedgerError, LedgerFull, LedgerMismatch
from gate_agent.ledger.migrations import MIGRATION_NAMES, MIGRATIONS
from gate_agent.ledger.records import utc_iso
from gate_agent.sqlite_wal import switch_to_wal

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BUSY_TIMEOUT_MS = 5000
_CORRUPT_ERRORS = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def translate(exc: sqlite3.Error, path: Path, action: str) -> LedgerError:
    """A library error as the ledger error callers catch, naming the file."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        return LedgerError(f"{path} is not a SQLite database (could not {action}: {exc})")
    if name in _CORRUPT_ERRORS:
        return LedgerCorrupt(f"{path} is damaged (could not {action}: {exc})")
    if name == "SQLITE_FULL":
        return LedgerFull(f"the disk of ledger {path} is full (could not {action}: {exc})")
    return LedgerError(f"could not {action} ledger {path}: {exc}")


def wrap(conn: sqlite3.Connection) -> Database:
    """A sqlite-utils view of a ledger connection that changes nothing about the connection."""
    # No recursive_triggers: the guard triggers are written for SQLite's default, which
    # every other tool opening the file also gets. No plugins: whatever else is installed
    # on the gate must not hook into the ledger's connection.
    return Database(conn, recursive_triggers=False, execute_plugins=False)


def connect_writer(path: Path) -> Database:
    """Open (creating if needed) the ledger file for writing, with the ledger's pragmas."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"could not create the directory of ledger {path}: {exc}") from exc
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves; the lock in
        # Store serialises threads, so the connection may move between them.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, path, "open") from exc
    try:
        db = wrap(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Before WAL: switching the journal mode would already change a foreign file.
        _refuse_foreign_database(db, path)
        switch_to_wal(conn, BUSY_TIMEOUT_MS / 1000)
        mode = db.journal_mode
        if mode != "wal":
            raise LedgerError(f"ledger {path} could not switch to WAL journaling (got {mode})")
        # FULL: in WAL mode this fsyncs at every commit, so a green light means on disk.
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, "open") from exc
    except BaseException:
        conn.close()
        raise
    return db


def connect_reader(path: Path) -> Database:
    """Open the ledger file read-only (``mode=ro``), so the caller can never write to it."""
    if not path.is_file():
        raise LedgerError(f"no ledger file at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate(exc, path, "open") from exc
    try:
        db = wrap(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Reads the header, so a file that is not SQLite fails here, not mid-check.
        db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, "open") from exc
    return db


def first_row(
    db: Database, sql: str, params: Sequence[object] | dict[str, Any] = ()
) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None; for queries of at most one row."""
    # Fetched in full, so no half-read statement keeps an old snapshot open.
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


def _refuse_foreign_database(db: Database, path: Path) -> None:
    # Never grow our tables into somebody else's database, sqlite-utils' included: its
    # migrations table alone is no sign of a ledger, rows of our set are.
    names = {row["name"] for row in db.query("SELECT name FROM sqlite_schema")}
    if not names:
        return
    if MIGRATIONS.migrations_table in names and MIGRATIONS.applied(db):
        return
    raise LedgerError(f"{path} is a SQLite database but not a gate ledger")


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error."""
    # IMMEDIATE takes the write lock up front, so reads inside see the final state and a
    # read-then-write waits for another writer instead of failing with BUSY_SNAPSHOT.
    # sqlite-utils' atomic() inside (insert, Migrations.apply) nests as a savepoint.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()  # a no-op when the error already ended the transaction
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def apply_migrations(db: Database, path: Path) -> list[str]:
    """Apply every migration the file lacks, each in its own transaction; return their names."""
    applied: list[str] = []
    while (name := _apply_next_migration(db, path)) is not None:
        logger.info("ledger %s: applied migration %s", path, name)
        applied.append(name)
    return applied


def _apply_next_migration(db: Database, path: Path) -> str | None:
    # Migrations.apply() alone would decide what is pending before its deferred BEGIN, so
    # two processes opening a new file at once could both apply a step. Under our write
    # lock the check is final; stop_before holds apply() to the first pending step, which
    # keeps each step and its record in a transaction of its own.
    with transaction(db):
        unknown = sorted({m.name for m in MIGRATIONS.applied(db)} - set(MIGRATION_NAMES))
        if unknown:
            raise LedgerError(
                f"ledger {path} has migration(s) {unknown} this version does not know;"
                " it was written by a newer gate agent"
            )
        pending = [migration.name for migration in MIGRATIONS.pending(db)]
        if not pending:
            return None
        MIGRATIONS.apply(db, stop_before=pending[1:])
    return pending[0]


def read_meta(db: Database) -> tuple[str, str] | None:
    """The (stream_id, gate_id) of a ledger, or None before its meta row exists."""
    row = first_row(db, "SELECT stream_id, gate_id FROM meta WHERE singleton = 1")
    return None if row is None else (row["stream_id"], row["gate_id"])


def ensure_meta(db: Database, path: Path, gate_id: str, clock: Clock) -> str:
    """Create the meta row on first open, or check the gate id; return the stream id."""
    with transaction(db):
        # Reading meta first also proves the table exists: insert() would create it.
        meta = read_meta(db)
        if meta is None:
            stream_id = str(uuid.uuid4())
            db.table("meta").insert(
                {
                    "singleton": 1,
                    "stream_id": stream_id,
                    "gate_id": gate_id,
                    "created_at": utc_iso(clock()),
                }
            )
            logger.info("ledger %s: created stream %s for gate %s", path, stream_id, gate_id)
            return stream_id
    stream_id, stored_gate_id = meta
    if stored_gate_id != gate_id:
        raise LedgerMismatch(
            f"ledger {path} belongs to gate {stored_gate_id!r}, not to gate {gate_id!r}"
        )
    return stream_id


class Store:
    """The single writing connection of a ledger file and the lock that serialises its users."""

    def __init__(self, db: Database, path: Path, clock: Clock) -> None:
        """Wrap an open writer (see ``connect_writer``)."""
        self.path = path
        self.clock = clock
        self._db: Database | None = db
        self._lock = threading.RLock()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has run."""
        return self._db is None

    @contextmanager
    def read(self) -> Iterator[Database]:
        """The database for reading, with library errors translated."""
        with self._lock:
            db = self._open_db()
            try:
                yield db
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "read") from exc

    @contextmanager
    def write(self) -> Iterator[Database]:
        """The database inside one committed-or-rolled-back transaction."""
        with self._lock:
            db = self._open_db()
            try:
                with transaction(db):
                    yield db
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "write") from exc

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _open_db(self) -> Database:
        if self._db is None:
            raise LedgerError(f"ledger {self.path} is closed")
        return self._db


def sqlite_memory_bytes() -> int | None:
    """Bytes SQLite's allocator holds in this process (page caches, schemas, statements).

    Read through ``sqlite3_memory_used`` of the library the ``sqlite3`` module is linked
    against; None where it cannot be reached. The soak follows it beside the resident
    size, to tell SQLite's bounded caches from memory that keeps growing.
    """
    function = _memory_used()
    return None if function is None else int(function())


@functools.cache
def _memory_used() -> Any:
    try:
        import _sqlite3  # noqa: PLC0415 - the C module, only for its library's handle

        function = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (OSError, AttributeError, ImportError):
        return None
    function.restype = ctypes.c_int64
    function.argtypes = []
    return function
