"""A durable PostgreSQL for the benchmarks, started from the installed binaries.

The tests' throwaway cluster (``tests/pg.py``) with durability back on: fsync,
synchronous commit and full-page writes, as a plain PostgreSQL 15 runs in
production, so rows per second are what a real deployment would see.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.pg import PostgresServer, find_binaries

DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def unavailable() -> str | None:
    """Why PostgreSQL cannot be measured here, or None when it can."""
    if find_binaries() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    for module in ("psycopg", "psycopg_pool"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install .[postgres]"
    return None


@contextlib.contextmanager
def server(root: Path) -> Iterator[Callable[[str], str]]:
    """A running durable cluster; yields: database name -> DSN of a new database."""
    del root  # the cluster makes its own temporary folder, removed when it stops
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed")
    running = PostgresServer.start(bin_dir, **DURABLE)
    try:

        def database(name: str) -> str:
            running.admin(f"CREATE DATABASE bench_{name} TEMPLATE template0")
            return running.dsn(f"bench_{name}")

        yield database
    finally:
        running.stop()
