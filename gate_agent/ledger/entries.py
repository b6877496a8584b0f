"""The Ledger: the gate's single writer of append-only, hash-chained entries."""

from __future__ import annotations

import logging
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from gate_agent.errors import LedgerError
from gate_agent.ledger.db import (
    Clock,
    Store,
    apply_migrations,
    connect_reader,
    connect_writer,
    ensure_meta,
    first_row,
    translate,
    utc_now,
)
from gate_agent.ledger.records import (
    SALT_BYTES,
    EntryDraft,
    StoredEntry,
    build_row,
    draft_columns,
    entry_from_row,
    genesis_hash,
    utc_iso,
)
from gate_agent.ledger.state import GateState
from gate_agent.ledger.summary import DaySummary, day_summary, people_inside_estimate
from gate_agent.ledger.sync_state import SyncState
from gate_agent.ledger.verify import LedgerReport, verify_connection

logger = logging.getLogger(__name__)

MAX_PAGE = 10_000
MAX_SEQ = 2**63 - 1


class Ledger:
    """An open ledger file: append entries, query them, verify the chain, hold the gate's lists.

    Use ``Ledger.open``. One instance is the one writer of its file; its methods may be
    called from several threads, which it serialises.
    """

    def __init__(self, store: Store, *, stream_id: str, gate_id: str) -> None:
        """Wrap an opened store; ``Ledger.open`` is the way in."""
        self._store = store
        self._stream_id = stream_id
        self._gate_id = gate_id
        self._state = GateState(store)
        self._sync = SyncState(store, stream_id)

    @classmethod
    def open(cls, path: Path, *, gate_id: str, clock: Clock = utc_now) -> Self:
        """Open or create the ledger at ``path`` for ``gate_id``, migrating it to this version.

        Raises ``LedgerMismatch`` if the file belongs to another gate and ``LedgerError``
        if it cannot be opened or is not a ledger.
        """
        if not isinstance(gate_id, str) or not gate_id:
            raise ValueError("gate_id must be a non-empty string")
        path = Path(path)
        db = connect_writer(path)
        try:
            apply_migrations(db, path)
            stream_id = ensure_meta(db, path, gate_id, clock)
        except sqlite3.Error as exc:
            db.close()
            raise translate(exc, path, "open") from exc
        except BaseException:
            db.close()
            raise
        logger.info("ledger %s open: gate %s, stream %s", path, gate_id, stream_id)
        return cls(Store(db, path, clock), stream_id=stream_id, gate_id=gate_id)

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._store.path

    @property
    def stream_id(self) -> str:
        """The stream's UUID, made with the file and never changed."""
        return self._stream_id

    @property
    def gate_id(self) -> str:
        """The gate this file belongs to."""
        return self._gate_id

    @property
    def state(self) -> GateState:
        """The gate's local lists (issuer keys, revocations, isolations, settings)."""
        return self._state

    @property
    def sync(self) -> SyncState:
        """The uploader's cursor at the centre, last success, last error and alarm."""
        return self._sync

    def pragmas(self) -> dict[str, object]:
        """The writer connection's journal mode, synchronous level, foreign keys, busy timeout."""
        pragmas: dict[str, object] = {}
        with self._store.read() as db:
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
                row = first_row(db, f"PRAGMA {name}") or {}
                pragmas[name] = next(iter(row.values()), None)
        return pragmas

    def close(self) -> None:
        """Close the file; safe to call twice."""
        self._store.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes the ledger."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the ledger."""
        self.close()

    def append(self, draft: EntryDraft) -> StoredEntry:
        """Write one entry in one committed transaction; durable when this returns.

        Raises ``ValueError`` (writing nothing) when the draft is malformed.
        """
        columns, personal_json = draft_columns(draft)
        salt = secrets.token_bytes(SALT_BYTES)
        with self._store.write() as db:
            # Under the write lock, and proof the table exists: insert() would create it.
            last = first_row(db, "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
            seq = 1 if last is None else last["seq"] + 1
            prev_hash = genesis_hash(self._stream_id) if last is None else last["hash"]
            row = build_row(
                columns,
                personal_json,
                seq=seq,
                stream_id=self._stream_id,
                gate_id=self._gate_id,
                prev_hash=prev_hash,
                salt=salt,
            )
            db.table("entries").insert(row)
        logger.debug("ledger %s: appended entry %d", self.path, seq)
        return entry_from_row(row)

    def get(self, seq: int) -> StoredEntry | None:
        """The entry numbered ``seq``, or None."""
        with self._store.read() as db:
            row = first_row(db, "SELECT * FROM entries WHERE seq = ?", (seq,))
        return None if row is None else entry_from_row(row)

    def entries(self, after_seq: int = 0, limit: int = 500) -> list[StoredEntry]:
        """Up to ``limit`` entries numbered above ``after_seq``, in ascending order."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        with self._store.read() as db:
            rows = db.query(
                "SELECT * FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
            return [entry_from_row(row) for row in rows]

    def last_seq(self) -> int:
        """The highest entry number, 0 when empty."""
        with self._store.read() as db:
            row = first_row(db, "SELECT COALESCE(MAX(seq), 0) AS seq FROM entries")
        return 0 if row is None else int(row["seq"])

    def count(self) -> int:
        """How many entries the ledger holds."""
        with self._store.read() as db:
            row = first_row(db, "SELECT COUNT(*) AS n FROM entries")
        return 0 if row is None else int(row["n"])

    def last_for_pass(self, pass_id: str) -> StoredEntry | None:
        """The newest entry for a pass, whatever its outcome."""
        with self._store.read() as db:
            row = first_row(
                db, "SELECT * FROM entries WHERE pass_id = ? ORDER BY seq DESC LIMIT 1", (pass_id,)
            )
        return None if row is None else entry_from_row(row)

    def last_allowed_for_pass(self, pass_id: str) -> StoredEntry | None:
        """The newest entry for a pass that let the person through."""
        with self._store.read() as db:
            row = first_row(
                db,
                "SELECT * FROM entries WHERE pass_id = ? AND outcome = 'allow'"
                " ORDER BY seq DESC LIMIT 1",
                (pass_id,),
            )
        return None if row is None else entry_from_row(row)

    def first_allowed_in(self, pass_id: str) -> datetime | None:
        """Wall time (UTC) of the first entry that let this pass in here, or None."""
        with self._store.read() as db:
            row = first_row(
                db,
                "SELECT wall_time FROM entries WHERE pass_id = ? AND direction = 'in'"
                " AND outcome = 'allow' ORDER BY seq LIMIT 1",
                (pass_id,),
            )
        return None if row is None else datetime.fromisoformat(row["wall_time"])

    def household_exits_since(self, household_id: str, since: datetime) -> list[datetime]:
        """Wall times (UTC) of the household's allowed exits at or after ``since``, oldest first."""
        since_text = _aware_iso(since, "since")
        with self._store.read() as db:
            rows = db.query(
                "SELECT wall_time FROM entries WHERE household_id = ? AND wall_time >= ?"
                " AND direction = 'out' AND outcome = 'allow' ORDER BY wall_time, seq",
                (household_id, since_text),
            )
            return [datetime.fromisoformat(row["wall_time"]) for row in rows]

    def household_exit_seqs_since(
        self, household_id: str, since: datetime
    ) -> list[tuple[int, datetime]]:
        """(seq, wall time in UTC) of the household's members' allowed exits (resident and
        tenant passes: not its visitors, workers or deliveries) at or after ``since``."""
        since_text = _aware_iso(since, "since")
        with self._store.read() as db:
            rows = db.query(
                "SELECT seq, wall_time FROM entries WHERE household_id = ? AND wall_time >= ?"
                " AND direction = 'out' AND outcome = 'allow'"
                " AND pass_kind IN ('resident', 'tenant') ORDER BY wall_time, seq",
                (household_id, since_text),
            )
            return [(row["seq"], datetime.fromisoformat(row["wall_time"])) for row in rows]

    def day_summary(self, since: datetime, until: datetime) -> DaySummary:
        """Counts of the entries with wall times from ``since`` up to (not including) ``until``.

        Passages in and out (allowed), refusals by reason, rechecks, fevers, alerts and
        entries a guard made; see ``DaySummary``.
        """
        with self._store.read() as db:
            return day_summary(db, since, until)

    def people_inside_estimate(self, since: datetime) -> int:
        """How many passes last went *in* here, counting allowed passages since ``since``.

        An estimate from this gate's ledger only: people who never scanned (or not since
        ``since``) are not counted, and passages through other gates are not seen.
        """
        with self._store.read() as db:
            return people_inside_estimate(db, since)

    def purge_personal(
        self, before: datetime, *, through_seq: int | None = None, dry_run: bool = False
    ) -> int:
        """Blank the personal data (and salt) of entries older than ``before``; return how many.

        With ``through_seq``, only entries numbered up to it (the centre's cursor: what it
        has stored). ``dry_run`` counts them and changes nothing. The chain keeps each
        entry's digest, so the ledger still verifies afterwards.
        """
        before_text = _aware_iso(before, "before")
        if through_seq is not None and (
            isinstance(through_seq, bool) or not isinstance(through_seq, int) or through_seq < 0
        ):
            raise ValueError(f"through_seq must be an int >= 0, got {through_seq!r}")
        where = "personal_salt IS NOT NULL AND wall_time < ? AND seq <= ?"
        params = (before_text, MAX_SEQ if through_seq is None else through_seq)
        if dry_run:
            with self._store.read() as db:
                row = first_row(db, f"SELECT COUNT(*) AS n FROM entries WHERE {where}", params)  # noqa: S608 - constant
            return 0 if row is None else int(row["n"])
        with self._store.write() as db:
            cursor = db.execute(
                f"UPDATE entries SET personal = NULL, personal_salt = NULL WHERE {where}",  # noqa: S608 - constant
                params,
            )
            purged = cursor.rowcount
        logger.info("ledger %s: purged personal data of %d entries", self.path, purged)
        return purged

    def verify(self) -> LedgerReport:
        """Check the file's integrity and the whole hash chain.

        Reads through its own read-only connection, so appends are not held up.
        """
        if self._store.closed:
            raise LedgerError(f"ledger {self.path} is closed")
        db = connect_reader(self.path)
        try:
            return verify_connection(db, self.path)
        finally:
            db.close()


def _aware_iso(moment: datetime, name: str) -> str:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return utc_iso(moment)
