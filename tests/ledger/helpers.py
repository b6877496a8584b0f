"""Shared helpers of the ledger tests: drafts, fixed times and an attacker's raw access."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from gate_agent.ledger import EntryDraft

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
PLUS8 = timezone(timedelta(hours=8))


def draft(n: int = 0, **changes: object) -> EntryDraft:
    """A plausible draft, the n-th of a series one minute apart, with ``changes`` applied."""
    base = EntryDraft(
        direction="in",
        outcome="allow",
        reason="ok",
        wall_time=T0 + timedelta(minutes=n),
        monotonic_ns=1_000_000_000 + n,
        boot_id="boot-1",
        clock_synced=True,
        pass_id=f"pass-{n % 3}",
        pass_kind="resident",
        household_id=f"hh-{n % 2}",
        temperature_celsius=36.5 + n / 100,
        temperature_raw=(34.1, 34.2, 34.15),
        ambient_celsius=21.0,
        temperature_model="skin2body-v3",
        temperature_source="sensor",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def tamper(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    """Change a closed ledger file the way an attacker would: drop the guards, then write."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        triggers = conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'entries'"
        ).fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement, params if "?" in statement else ())
        conn.execute("COMMIT")
    finally:
        conn.close()


def raw_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read a ledger file with plain sqlite3 (no ledger code involved)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
