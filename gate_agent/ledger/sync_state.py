"""The uploader's state in the ledger: the centre's cursor, last success, last error, alarm.

Kept in the ledger file so an upload survives restarts: after a restart the uploader
starts again after ``acked_through``, and whatever the centre had already stored is
acknowledged again without being stored twice (sequence numbers are the idempotency key).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gate_agent.ledger.db import Store, first_row
from gate_agent.ledger.records import utc_iso

logger = logging.getLogger(__name__)

MAX_UNACKED = 10_000


@dataclass(frozen=True)
class SyncStatus:
    """The stream's upload state as the ledger holds it; times are aware UTC or None."""

    stream_id: str
    acked_through: int
    last_seq: int
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error_code: str | None
    last_error_text: str | None
    last_error_at: datetime | None
    alarm_code: str | None
    alarm_text: str | None
    alarm_at: datetime | None
    centre_list_versions: dict[str, int]
    lists_checked_at: datetime | None = None

    @property
    def backlog(self) -> int:
        """Entries the gate holds that the centre has not acknowledged."""
        return max(0, self.last_seq - self.acked_through)


class SyncState:
    """Reads and updates of the stream's sync row, through the ledger's one writer."""

    def __init__(self, store: Store, stream_id: str) -> None:
        """Bind to the ledger's store; get one from ``Ledger.sync``."""
        self._store = store
        self._stream_id = stream_id

    def status(self) -> SyncStatus:
        """The stream's sync state (a stream never synced has cursor 0 and no times)."""
        with self._store.read() as db:
            row = first_row(
                db, "SELECT * FROM sync_state WHERE stream_id = ?", (self._stream_id,)
            ) or {"centre_list_versions": "{}"}
            last = first_row(db, "SELECT COALESCE(MAX(seq), 0) AS seq FROM entries")
        return SyncStatus(
            stream_id=self._stream_id,
            acked_through=int(row.get("acked_through") or 0),
            last_seq=0 if last is None else int(last["seq"]),
            last_attempt_at=_time(row.get("last_attempt_at")),
            last_success_at=_time(row.get("last_success_at")),
            last_error_code=row.get("last_error_code"),
            last_error_text=row.get("last_error_text"),
            last_error_at=_time(row.get("last_error_at")),
            alarm_code=row.get("alarm_code"),
            alarm_text=row.get("alarm_text"),
            alarm_at=_time(row.get("alarm_at")),
            centre_list_versions=json.loads(row["centre_list_versions"]),
            lists_checked_at=_time(row.get("lists_checked_at")),
        )

    def acked_through(self) -> int:
        """The centre's cursor as last acknowledged (0 before the first acknowledgement)."""
        with self._store.read() as db:
            row = first_row(
                db, "SELECT acked_through FROM sync_state WHERE stream_id = ?", (self._stream_id,)
            )
        return 0 if row is None else int(row["acked_through"])

    def unacked(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` stored rows (every column) numbered after ``acked_through``, in order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_UNACKED:
            raise ValueError(f"limit must be an int between 1 and {MAX_UNACKED}, got {limit!r}")
        with self._store.read() as db:
            rows = db.query(
                "SELECT * FROM entries WHERE seq > COALESCE("
                " (SELECT acked_through FROM sync_state WHERE stream_id = ?), 0)"
                " ORDER BY seq LIMIT ?",
                (self._stream_id, limit),
            )
            return list(rows)

    def rows_from(self, first_seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` stored rows (every column) numbered from ``first_seq``, in order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_UNACKED:
            raise ValueError(f"limit must be an int between 1 and {MAX_UNACKED}, got {limit!r}")
        with self._store.read() as db:
            rows = db.query(
                "SELECT * FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?", (first_seq, limit)
            )
            return list(rows)

    def record_lists_check(self, at: datetime) -> None:
        """The centre confirmed at ``at`` that the gate's lists are current."""
        self._update({"lists_checked_at": utc_iso(at)})

    def record_attempt(self, at: datetime) -> None:
        """Note that an upload was tried at ``at``."""
        self._update({"last_attempt_at": utc_iso(at)})

    def record_ack(
        self, stored_through: int, at: datetime, centre_list_versions: dict[str, int]
    ) -> None:
        """The centre stored everything through ``stored_through``: a success, error cleared."""
        self._update(
            {
                "acked_through": _cursor(stored_through),
                "last_success_at": utc_iso(at),
                "last_error_code": None,
                "last_error_text": None,
                "last_error_at": None,
                "centre_list_versions": json.dumps(centre_list_versions, sort_keys=True),
            }
        )

    def set_cursor(self, cursor: int) -> None:
        """Take the centre's cursor as told in a conflict, even when it went back."""
        self._update({"acked_through": _cursor(cursor)})

    def record_error(self, code: str, text: str, at: datetime) -> None:
        """Keep the last upload error (a stable code and a text for people)."""
        self._update(
            {"last_error_code": code, "last_error_text": text, "last_error_at": utc_iso(at)}
        )

    def raise_alarm(self, code: str, text: str, at: datetime) -> None:
        """Stop uploads until an operator clears the alarm; also the last error."""
        logger.error("sync alarm %s: %s", code, text)
        self._update(
            {
                "alarm_code": code,
                "alarm_text": text,
                "alarm_at": utc_iso(at),
                "last_error_code": code,
                "last_error_text": text,
                "last_error_at": utc_iso(at),
            }
        )

    def clear_alarm(self) -> None:
        """Let uploads resume (after the gate is enrolled again, or the conflict resolved)."""
        self._update({"alarm_code": None, "alarm_text": None, "alarm_at": None})
        logger.info("sync alarm cleared for stream %s", self._stream_id)

    def _update(self, values: dict[str, object]) -> None:
        # Column names come from this module only, never from callers' data.
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        sets = ", ".join(f"{name} = excluded.{name}" for name in values)
        sql = (
            f"INSERT INTO sync_state (stream_id, {names}) VALUES (:stream_id, {marks})"  # noqa: S608
            f" ON CONFLICT (stream_id) DO UPDATE SET {sets}"
        )
        with self._store.write() as db:
            db.execute(sql, {"stream_id": self._stream_id, **values})


def _time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _cursor(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a cursor is an int >= 0, got {value!r}")
    return value
