"""Central storage: SQLite by default (one file, nothing to set up).

The gates' streams can be kept in PostgreSQL instead: ``sync.store.streams_postgres``
(``PostgresStreamStore``), imported only when a DSN is given, since psycopg is the
optional ``postgres`` extra.
"""

from sync.store.sqlite import CentralStore, DirectoryRow, KeyRow, PassRow
from sync.store.streams import EntryRecord, GateView, StreamStore, StreamView, SyncLogRow
from sync.store.streams_sqlite import SqliteStreamStore

__all__ = [
    "CentralStore",
    "DirectoryRow",
    "EntryRecord",
    "GateView",
    "KeyRow",
    "PassRow",
    "SqliteStreamStore",
    "StreamStore",
    "StreamView",
    "SyncLogRow",
]
