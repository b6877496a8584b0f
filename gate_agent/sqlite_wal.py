"""Switching a SQLite file to WAL when several connections open it new at once.

Switching needs the exclusive lock. Two connections switching a new file at once each
hold a shared lock and want it, and SQLite answers one of them "database is locked"
at once, without waiting through the busy timeout (waiting would deadlock). That one
waits a moment and asks again; by then the file is in WAL and nothing is left to
switch. The gate's ledger (an agent and an operator's command opening a fresh file)
and the central SQLite stores (server workers opening a fresh data dir) both meet it.
Standard library only: the central side imports it too.
"""

from __future__ import annotations

import sqlite3
import time

#: How long a connection that lost the race waits before it asks again.
RETRY_S = 0.01


def switch_to_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Put ``db``'s file in WAL mode (a no-op once it is); retry a lost race ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(RETRY_S)
