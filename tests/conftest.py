"""Fixtures shared across the test packages: a real PostgreSQL (see tests/pg.py)."""

from tests.pg import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]
