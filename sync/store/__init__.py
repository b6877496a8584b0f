"""Central storage: SQLite by default (one file, nothing to set up).

Both of the centre's stores can be kept in PostgreSQL instead, one DSN for the whole
centre: the gates' streams (``sync.store.streams_postgres.PostgresStreamStore``) and
the issuer's keys, passes and lists (``sync.store.central_postgres.PostgresCentralStore``).
They are imported only when a DSN is given, since psycopg is the optional ``postgres``
extra.
"""

from sync.store.central import (
    DirectoryRow,
    IsolationRow,
    IssuerStore,
    KeyRow,
    PassRow,
    SettingRow,
)
from sync.store.sqlite import CentralStore, SqliteCentralStore
from sync.store.streams import (
    EntryQuery,
    EntryRecord,
    GateView,
    RecentQuery,
    StreamStore,
    StreamView,
    SyncLogRow,
)
from sync.store.streams_sqlite import SqliteStreamStore

__all__ = [
    "CentralStore",
    "DirectoryRow",
    "EntryQuery",
    "EntryRecord",
    "GateView",
    "IsolationRow",
    "IssuerStore",
    "KeyRow",
    "PassRow",
    "RecentQuery",
    "SettingRow",
    "SqliteCentralStore",
    "SqliteStreamStore",
    "StreamStore",
    "StreamView",
    "SyncLogRow",
]
