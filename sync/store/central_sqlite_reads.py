"""What the SQLite central store reads: list versions and changes, issuer keys, passes,
isolations, revocations, gate settings, the directory, residents and pass holders.

A mixin of ``SqliteCentralStore`` (``sqlite.py``, which writes): reads run on the
store's one connection under its lock, so none sees a transaction half done.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sync.errors import NotFound
from sync.store import residents_sql
from sync.store.central import (
    DirectoryRow,
    IsolationRow,
    KeyRow,
    PassRow,
    Resident,
    SettingRow,
    merged_settings,
)
from sync.store.central import iso as _iso

PASS_COLUMNS = "pass_id, kind, household_id, text, valid_until, revoked_at, revoke_reason"


class SqliteCentralReads:
    """The read half of ``SqliteCentralStore``; the store gives ``_db`` and ``_lock``."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def compound_quota(self, compound: str) -> str | None:
        raise NotImplementedError  # given by compounds_sql.CompoundStoreMixin

    def changed_keys(self, name: str, since: int) -> set[str] | None:
        """Item keys of ``name`` changed after version ``since``; None when not recorded.

        The change log starts with the first change; a gate older than what it holds
        (or a list whose versions were raised without keys) is sent a snapshot.
        """
        with self._lock:
            first = self._db.execute(
                "SELECT MIN(version) FROM list_changes WHERE name = ?", (name,)
            ).fetchone()[0]
            if first is None or since < first - 1:
                return None
            rows = self._db.execute(
                "SELECT DISTINCT item_key FROM list_changes WHERE name = ? AND version > ?",
                (name, since),
            )
            return {row[0] for row in rows}

    def list_version(self, name: str) -> int:
        """The current version of a downlink list; 0 when it never changed."""
        with self._lock:
            row = self._db.execute("SELECT version FROM list_versions WHERE name = ?", (name,))
            found = row.fetchone()
        return int(found[0]) if found else 0

    def issuer_keys(self) -> list[KeyRow]:
        """All issuer keys, oldest first."""
        rows = self._db.execute(
            "SELECT kid, public_key, created_at, retired_at, retire_at FROM issuer_keys"
            " ORDER BY created_at"
        )
        return [KeyRow(*row) for row in rows]

    def live_passes(self, kid: str, now: datetime) -> int:
        """How many passes signed with ``kid`` are unrevoked and valid after ``now``."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM passes"
                " WHERE key_id = ? AND revoked_at IS NULL AND valid_until > ?",
                (kid, _iso(now)),
            ).fetchone()
        return int(count)

    def get_pass(self, pass_id: str) -> PassRow:
        """One issued pass; NotFound when there is none."""
        row = self._db.execute(
            f"SELECT {PASS_COLUMNS} FROM passes WHERE pass_id = ?",  # noqa: S608 - constant
            (pass_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no pass {pass_id}")
        return PassRow(*row)

    def household_passes(self, household_ids: Sequence[str]) -> list[PassRow]:
        """Every pass ever issued to these households, by household id, then pass id."""
        wanted = sorted(set(household_ids))
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {PASS_COLUMNS} FROM passes WHERE household_id IN ({marks})"  # noqa: S608 - only "?" marks
                " ORDER BY household_id, pass_id",
                wanted,
            ).fetchall()
        return [PassRow(*row) for row in rows]

    def active_passes(self, now: datetime) -> list[PassRow]:
        """Passes of every kind not revoked and valid until after ``now``, by household, id."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {PASS_COLUMNS} FROM passes"  # noqa: S608 - a constant column list
                " WHERE revoked_at IS NULL AND valid_until > ? ORDER BY household_id, pass_id",
                (_iso(now),),
            ).fetchall()
        return [PassRow(*row) for row in rows]

    def isolations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Isolations in force or to come: (household id, start, end)."""
        rows = self._db.execute(
            "SELECT household_id, starts_at, ends_at FROM isolations"
            " WHERE lifted_at IS NULL AND ends_at > ? ORDER BY household_id, starts_at",
            (_iso(now),),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def isolation_history(
        self, since: datetime | None, until: datetime | None
    ) -> list[IsolationRow]:
        """Every isolation overlapping ``[since, until)``, lifted ones too, by start."""
        where, params = ["1 = 1"], []
        if since is not None:
            where.append("ends_at > ?")
            params.append(_iso(since))
        if until is not None:
            where.append("starts_at < ?")
            params.append(_iso(until))
        columns = "household_id, starts_at, ends_at, note, created_at, lifted_at"
        sql = f"SELECT {columns} FROM isolations WHERE {' AND '.join(where)} ORDER BY starts_at, id"  # noqa: S608 - only "?" marks
        rows = self._db.execute(sql, params).fetchall()
        return [IsolationRow(*row) for row in rows]

    def revocations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Revoked passes still worth sending: (pass id, revoked at, reason).

        A pass past its validity is refused as expired anyway, so gates need not
        carry its revocation for ever.
        """
        rows = self._db.execute(
            "SELECT pass_id, revoked_at, revoke_reason FROM passes"
            " WHERE revoked_at IS NOT NULL AND valid_until > ? ORDER BY pass_id",
            (_iso(now),),
        )
        return [(r[0], r[1], r[2] or "") for r in rows]

    def settings_rows(self) -> list[SettingRow]:
        """Every setting as (gate_id, key, value, set_at, set_by); gate '' is every gate."""
        with self._lock:
            rows = self._db.execute(
                "SELECT gate_id, key, value, set_at, set_by FROM gate_settings"
                " ORDER BY gate_id, key"
            ).fetchall()
        return [(g, k, json.loads(v), at, by) for g, k, v, at, by in rows]

    def settings_for(self, gate_id: str, compound: str | None = None) -> dict[str, object]:
        """The settings a gate gets: every gate's, its compound's, then its own."""
        quota = None if compound is None else self.compound_quota(compound)
        return merged_settings(self.settings_rows(), gate_id, quota)

    def directory(self, now: datetime) -> list[DirectoryRow]:
        """People passes in force or to come: issued, not revoked, valid until after ``now``.

        A pass that expires drops out without a new version: gates refuse it as expired
        anyway, and the next change sends the list without it.
        """
        # Vehicles have no one to look up; every other kind is a person. A one-time
        # pass is left out: a guard's lookup cannot tell whether it was used.
        rows = self._db.execute(
            "SELECT pass_id, kind, household_id, scope, valid_from, valid_until,"
            " display_name, unit, exit_quota FROM passes"
            " WHERE revoked_at IS NULL AND valid_until > ? AND kind <> 'vehicle'"
            " AND once = FALSE"
            " ORDER BY pass_id",
            (_iso(now),),
        )
        return [DirectoryRow(*row) for row in rows]

    def residents(self, compound: str | None = None) -> list[Resident]:
        """Recorded persons (of one compound, or all), by household id, then person id."""
        with self._lock:
            return residents_sql.residents(runner(self._db), compound)

    def live_holders(self, kind: str, now: datetime) -> set[int]:
        """Ids of persons holding an unrevoked pass of ``kind`` valid after ``now``."""
        with self._lock:
            return residents_sql.live_holders(runner(self._db), _iso, kind, now)


def runner(db: sqlite3.Connection) -> residents_sql.Run:
    """Run a statement of the shared SQL modules on ``db``; its rows."""

    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in db.execute(sql, tuple(params)).fetchall()]

    return run
