"""What the centre's PostgreSQL stores share: connecting, the pool, migrations, errors, times.

A store subclasses ``PostgresDatabase`` and names its migrations and the table that
records them. Both of the centre's stores (streams, and the issuer's keys, passes and
lists) can live in one database under one DSN: each keeps its own version table, and
migrations run under one advisory lock so that replicas starting together do not race.
Every database error becomes ``StoreError`` (the server answers 503 with Retry-After).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, LiteralString, Self

from sync.errors import StoreError

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - the postgres extra is not installed
    raise StoreError(
        "the PostgreSQL store needs psycopg and psycopg_pool: pip install 'gate-station[postgres]'"
    ) from exc

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "POOL_SIZE",
    "Migrations",
    "PostgresDatabase",
    "Row",
    "aware",
    "configure",
    "one",
    "psycopg",
    "text",
    "where",
]

logger = logging.getLogger(__name__)

POOL_SIZE = 8
CONNECT_TIMEOUT_SECONDS = 10.0
# Key of the advisory lock that serialises migrations (any constant of our own).
_MIGRATION_LOCK = 0x6761_7465_7379_6E63  # "gatesync"

Row = tuple[Any, ...]
Migrations = tuple[tuple[LiteralString, ...], ...]


class PostgresDatabase:
    """A pooled PostgreSQL database given by a libpq DSN, its tables created or migrated.

    Subclasses set ``MIGRATIONS`` (each a list of statements applied in one
    transaction; never edit one that has shipped, add the next), ``VERSION_TABLE``
    (where the applied ones are recorded), ``SUBJECT`` (for log lines and the pool) and
    ``DEFAULT_POOL_SIZE``.
    """

    MIGRATIONS: ClassVar[Migrations] = ()
    VERSION_TABLE: ClassVar[LiteralString] = "schema_version"
    SUBJECT: ClassVar[str] = "stream"
    DEFAULT_POOL_SIZE: ClassVar[int] = POOL_SIZE

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        """Connect, and create or migrate the tables."""
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"not a PostgreSQL connection string: {exc}") from exc
        self.where = where(params)
        try:
            # One plain connection first: its failure says why (refused, no such database,
            # authentication), where a pool would only time out.
            with psycopg.connect(
                dsn, autocommit=True, connect_timeout=max(2, round(connect_timeout))
            ) as conn:
                configure(conn)
                self._migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot use as the central database: {exc}") from exc
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max(1, self.DEFAULT_POOL_SIZE if pool_size is None else pool_size),
            kwargs={"autocommit": True, "application_name": "gate-sync"},
            configure=configure,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout,
            name=f"gate-sync-{self.SUBJECT}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"{self.where}: cannot use as the central database: {exc}") from exc

    def close(self) -> None:
        """Close the pool; safe to call twice."""
        self._pool.close()

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

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        query = sql.SQL("SELECT max(version) FROM {}").format(sql.Identifier(self.VERSION_TABLE))
        with self._tx("read schema version") as conn:
            return int(one(conn.execute(query)))

    def _migrate(self, conn: psycopg.Connection[Row]) -> None:
        table = sql.Identifier(self.VERSION_TABLE)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(table)
            )
            current = int(
                one(conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(table)))
            )
            known = len(self.MIGRATIONS)
            if current > known:
                raise StoreError(
                    f"{self.where}: the {self.SUBJECT} schema is at version {current}, newer"
                    f" than this gate-sync knows ({known}): upgrade gate-sync"
                )
            for version, statements in enumerate(self.MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    sql.SQL("INSERT INTO {}(version) VALUES (%s)").format(table), (version,)
                )
                logger.info(
                    "%s: %s schema migrated to version %d", self.where, self.SUBJECT, version
                )

    @contextmanager
    def _tx(self, what: str) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection in one transaction; database errors become ``StoreError``."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {what} failed: {exc}") from exc


def configure(conn: psycopg.Connection[Any]) -> None:
    """Each new connection reads and writes times in UTC."""
    conn.execute("SET TIME ZONE 'UTC'")


def one(cursor: psycopg.Cursor[Row]) -> Any:
    """The first column of the one row a query returns; StoreError when there is none."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("the database returned no row where one was expected")
    return row[0]


def where(params: Mapping[str, Any]) -> str:
    """The database as messages name it: host, port and name, never the password."""
    host = params.get("host") or params.get("hostaddr") or "local socket"
    port = params.get("port") or "5432"
    return f"PostgreSQL {host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def aware(moment: datetime) -> datetime:
    """The moment in UTC; naive datetimes are refused, as the SQLite stores do."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC)


def text(value: str) -> str:
    """Text PostgreSQL can hold: it refuses NUL characters (written as JSON's escape)."""
    return value.replace("\x00", "\\u0000")
