"""Compounds' exit quotas (with their history) and pass labels: the SQL both central stores run.

Like ``residents_sql``: statements with ``?`` marks (the PostgreSQL runner turns them
into ``%s``), run inside the caller's transaction through ``run``; ``when`` turns an
aware datetime into what the database takes; ``bump`` raises a list's version. A
compound's quota reaches its gates as the ``exit_quota`` gate setting, so setting or
clearing one raises the ``settings`` version in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from sync.store.central import QuotaRow
from sync.store.residents_sql import Bump, Run, SqlStore, When

#: "N/D": N exits per D days, as a pass's ``q=`` rule writes it.
QUOTA = re.compile(r"[1-9][0-9]?/[1-9][0-9]?")

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS compound_quotas (
    compound TEXT PRIMARY KEY,
    quota TEXT NOT NULL,            -- "N/D"
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS compound_quota_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    compound TEXT NOT NULL,
    quota TEXT,                     -- NULL: cleared
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS compound_quota_history_compound
    ON compound_quota_history(compound, id);
"""

#: PostgreSQL central migration 5: the same tables.
POSTGRES_MIGRATION: tuple[str, ...] = (
    """CREATE TABLE compound_quotas (
        compound text COLLATE "C" PRIMARY KEY,
        quota text NOT NULL,
        set_at timestamptz NOT NULL,
        set_by text NOT NULL
    )""",
    """CREATE TABLE compound_quota_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        compound text COLLATE "C" NOT NULL,
        quota text,
        set_at timestamptz NOT NULL,
        set_by text NOT NULL
    )""",
    "CREATE INDEX compound_quota_history_compound ON compound_quota_history(compound, id)",
)


def check_quota(quota: str) -> str:
    """``quota`` if it is "N/D" (1-99 exits per 1-99 days), else ``ValueError``."""
    if not isinstance(quota, str) or QUOTA.fullmatch(quota) is None:
        raise ValueError(f"an exit quota is EXITS/DAYS, each 1-99 (e.g. 1/2), got {quota!r}")
    return quota


def set_quota(  # noqa: PLR0917 -- the runner trio, then what to set
    run: Run, bump: Bump, when: When, compound: str, quota: str | None, by: str, now: datetime
) -> None:
    """Set (``quota`` "N/D") or clear (None) a compound's quota; kept in the history."""
    if quota is not None:
        check_quota(quota)
    if not compound or not by:
        raise ValueError("a quota needs a compound and who set it")
    moment = when(now)
    if quota is None:
        run("DELETE FROM compound_quotas WHERE compound = ?", (compound,))
    else:
        run(
            "INSERT INTO compound_quotas(compound, quota, set_at, set_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (compound) DO UPDATE SET quota = excluded.quota,"
            " set_at = excluded.set_at, set_by = excluded.set_by",
            (compound, quota, moment, by),
        )
    run(
        "INSERT INTO compound_quota_history(compound, quota, set_at, set_by) VALUES (?, ?, ?, ?)",
        (compound, quota, moment, by),
    )
    bump("settings")


def quotas(run: Run) -> list[QuotaRow]:
    """Every compound's quota in force, by compound."""
    rows = run("SELECT compound, quota, set_at, set_by FROM compound_quotas ORDER BY compound", ())
    return [QuotaRow(c, q, _text(at), by) for c, q, at, by in rows]


def quota_of(run: Run, compound: str) -> str | None:
    """One compound's quota in force, or None."""
    rows = run("SELECT quota FROM compound_quotas WHERE compound = ?", (compound,))
    return str(rows[0][0]) if rows else None


def history(run: Run, compound: str | None) -> list[QuotaRow]:
    """Every change of one compound's quota (or of all), oldest first."""
    sql = "SELECT compound, quota, set_at, set_by FROM compound_quota_history"
    rows = (
        run(sql + " ORDER BY id", ())
        if compound is None
        else run(sql + " WHERE compound = ? ORDER BY id", (compound,))
    )
    return [QuotaRow(c, q, _text(at), by) for c, q, at, by in rows]


def pass_labels(run: Run, pass_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The masked name and unit printed on each known pass: pass id -> (name, unit)."""
    labels: dict[str, tuple[str, str]] = {}
    wanted = sorted(set(pass_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for pid, name, unit in run(
            f"SELECT pass_id, display_name, unit FROM passes WHERE pass_id IN ({marks})",  # noqa: S608
            chunk,
        ):
            labels[str(pid)] = (str(name), str(unit or ""))
    return labels


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


class CompoundStoreMixin(SqlStore):
    """The compounds' exit quotas part of ``IssuerStore``, on a store's ``SqlStore`` hooks."""

    def set_compound_quota(
        self, compound: str, quota: str | None, *, by: str, now: datetime
    ) -> None:
        """Set a compound's exit quota ("N/D") or clear it (None); raises ``settings``."""
        with self._sql_write("set compound quota") as (run, bump, when):
            set_quota(run, bump, when, compound, quota, by, now)

    def compound_quotas(self) -> list[QuotaRow]:
        """Every compound's quota in force, by compound."""
        with self._sql_read("read compound quotas") as (run, _):
            return quotas(run)

    def compound_quota(self, compound: str) -> str | None:
        """One compound's quota in force ("N/D"), or None."""
        with self._sql_read("read compound quota") as (run, _):
            return quota_of(run, compound)

    def compound_quota_history(self, compound: str | None = None) -> list[QuotaRow]:
        """Every set and clear of one compound's quota (or all), oldest first."""
        with self._sql_read("read compound quota history") as (run, _):
            return history(run, compound)

    def pass_labels(self, pass_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(masked name, unit) as printed on each known pass of ``pass_ids``."""
        with self._sql_read("read pass labels") as (run, _):
            return pass_labels(run, pass_ids)
