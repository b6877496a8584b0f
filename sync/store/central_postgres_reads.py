"""What the PostgreSQL central store reads: list versions and changes, issuer keys,
passes, isolations, revocations, gate settings, the directory, residents and holders.

A base of ``PostgresCentralStore`` (``central_postgres.py``, which writes), on the
same pool: each read is one short transaction (``_tx``). Times come back as the
SQLite store gives them, UTC ISO 8601 text, so callers see one shape from both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
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
from sync.store.postgres_base import (
    PostgresDatabase,
    Row,
    aware,
    psycopg,
)

#: A smaller pool than the streams': issuing is rare, list reads are cached per version.
PASS_COLUMNS = "pass_id, kind, household_id, text, valid_until, revoked_at, revoke_reason"


class PostgresCentralReads(PostgresDatabase):
    """The read half of ``PostgresCentralStore``."""

    def compound_quota(self, compound: str) -> str | None:
        raise NotImplementedError  # given by compounds_sql.CompoundStoreMixin

    def changed_keys(self, name: str, since: int) -> set[str] | None:
        """Item keys of ``name`` changed after version ``since``; None when not recorded.

        The change log starts with the first change; a gate older than what it holds
        (or a list whose versions were raised without keys) is sent a snapshot.
        """
        with self._tx("read list changes") as conn:
            first = first_value(
                conn.execute("SELECT min(version) FROM list_changes WHERE name = %s", (name,))
            )
            if first is None or since < int(first) - 1:
                return None
            rows = conn.execute(
                "SELECT DISTINCT item_key FROM list_changes WHERE name = %s AND version > %s",
                (name, since),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def list_version(self, name: str) -> int:
        """The current version of a downlink list; 0 when it never changed."""
        with self._tx("read list version") as conn:
            found = conn.execute(
                "SELECT version FROM list_versions WHERE name = %s", (name,)
            ).fetchone()
        return int(found[0]) if found else 0

    def issuer_keys(self) -> list[KeyRow]:
        """All issuer keys, oldest first."""
        with self._tx("read issuer keys") as conn:
            rows = conn.execute(
                "SELECT kid, public_key, created_at, retired_at, retire_at FROM issuer_keys"
                " ORDER BY created_at, added"
            ).fetchall()
        return [
            KeyRow(kid, bytes(raw), _iso(created), _iso_or_none(retired), _iso_or_none(planned))
            for kid, raw, created, retired, planned in rows
        ]

    def live_passes(self, kid: str, now: datetime) -> int:
        """How many passes signed with ``kid`` are unrevoked and valid after ``now``."""
        with self._tx("count live passes") as conn:
            count = first_value(
                conn.execute(
                    "SELECT count(*) FROM passes"
                    " WHERE key_id = %s AND revoked_at IS NULL AND valid_until > %s",
                    (kid, aware(now)),
                )
            )
        return int(count)

    def get_pass(self, pass_id: str) -> PassRow:
        """One issued pass; NotFound when there is none."""
        with self._tx("read pass") as conn:
            row = conn.execute(
                f"SELECT {PASS_COLUMNS} FROM passes WHERE pass_id = %s",  # noqa: S608 - constant
                (pass_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no pass {pass_id}")
        return _pass_row(row)

    def household_passes(self, household_ids: Sequence[str]) -> list[PassRow]:
        """Every pass ever issued to these households, by household id, then pass id."""
        wanted = sorted(set(household_ids))
        if not wanted:
            return []
        with self._tx("read household passes") as conn:
            rows = conn.execute(
                f"SELECT {PASS_COLUMNS} FROM passes WHERE household_id = ANY(%s)"  # noqa: S608 - constant
                " ORDER BY household_id, pass_id",
                (wanted,),
            ).fetchall()
        return [_pass_row(row) for row in rows]

    def active_passes(self, now: datetime) -> list[PassRow]:
        """Passes of every kind not revoked and valid until after ``now``, by household, id."""
        with self._tx("read active passes") as conn:
            rows = conn.execute(
                f"SELECT {PASS_COLUMNS} FROM passes"  # noqa: S608 - a constant column list
                " WHERE revoked_at IS NULL AND valid_until > %s ORDER BY household_id, pass_id",
                (aware(now),),
            ).fetchall()
        return [_pass_row(row) for row in rows]

    def isolations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Isolations in force or to come: (household id, start, end)."""
        with self._tx("read isolations") as conn:
            rows = conn.execute(
                "SELECT household_id, starts_at, ends_at FROM isolations"
                " WHERE lifted_at IS NULL AND ends_at > %s ORDER BY household_id, starts_at",
                (aware(now),),
            ).fetchall()
        return [(household, _iso(start), _iso(end)) for household, start, end in rows]

    def isolation_history(
        self, since: datetime | None, until: datetime | None
    ) -> list[IsolationRow]:
        """Every isolation overlapping ``[since, until)``, lifted ones too, by start."""
        start = None if since is None else aware(since)
        end = None if until is None else aware(until)
        with self._tx("read isolation history") as conn:
            rows = conn.execute(
                "SELECT household_id, starts_at, ends_at, note, created_at, lifted_at"
                " FROM isolations WHERE (%s::timestamptz IS NULL OR ends_at > %s)"
                " AND (%s::timestamptz IS NULL OR starts_at < %s) ORDER BY starts_at, id",
                (start, start, end, end),
            ).fetchall()
        return [
            IsolationRow(household, _iso(start), _iso(end), note, _iso(made), _iso_or_none(lifted))
            for household, start, end, note, made, lifted in rows
        ]

    def revocations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Revoked passes still worth sending: (pass id, revoked at, reason).

        A pass past its validity is refused as expired anyway, so gates need not
        carry its revocation for ever.
        """
        with self._tx("read revocations") as conn:
            rows = conn.execute(
                "SELECT pass_id, revoked_at, revoke_reason FROM passes"
                " WHERE revoked_at IS NOT NULL AND valid_until > %s ORDER BY pass_id",
                (aware(now),),
            ).fetchall()
        return [(pid, _iso(at), why or "") for pid, at, why in rows]

    def settings_rows(self) -> list[SettingRow]:
        """Every setting as (gate_id, key, value, set_at, set_by); gate '' is every gate."""
        with self._tx("read gate settings") as conn:
            rows = conn.execute(
                "SELECT gate_id, key, value, set_at, set_by FROM gate_settings"
                " ORDER BY gate_id, key"
            ).fetchall()
        return [(g, k, json.loads(v), _iso(at), by) for g, k, v, at, by in rows]

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
        with self._tx("read directory") as conn:
            rows = conn.execute(
                "SELECT pass_id, kind, household_id, scope, valid_from, valid_until,"
                " display_name, unit, exit_quota FROM passes"
                " WHERE revoked_at IS NULL AND valid_until > %s AND kind <> 'vehicle'"
                " AND once = FALSE"
                " ORDER BY pass_id",
                (aware(now),),
            ).fetchall()
        return [
            DirectoryRow(
                pass_id=pid,
                kind=kind,
                household_id=household,
                scope=scope,
                valid_from=_iso(start),
                valid_until=_iso(until),
                display_name=name,
                unit=unit,
                exit_quota=quota,
            )
            for pid, kind, household, scope, start, until, name, unit, quota in rows
        ]

    def residents(self, compound: str | None = None) -> list[Resident]:
        """Recorded persons (of one compound, or all), by household id, then person id."""
        with self._tx("read residents") as conn:
            return residents_sql.residents(runner(conn), compound)

    def live_holders(self, kind: str, now: datetime) -> set[int]:
        """Ids of persons holding an unrevoked pass of ``kind`` valid after ``now``."""
        with self._tx("read pass holders") as conn:
            return residents_sql.live_holders(runner(conn), aware, kind, now)


def runner(conn: psycopg.Connection[Row]) -> residents_sql.Run:
    """Run a statement of the shared SQL modules (``?`` marks) on ``conn``; its rows."""

    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = conn.execute(sql.replace("?", "%s"), tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    return run


def _pass_row(row: Sequence[Any]) -> PassRow:
    """A ``PassRow`` from the ``PASS_COLUMNS`` of a row, times as the SQLite store gives them."""
    pid, kind, household, text, until, revoked, reason = row
    return PassRow(pid, kind, household, text, _iso(until), _iso_or_none(revoked), reason)


def first_value(cursor: psycopg.Cursor[Row]) -> Any:
    """The first column of the first row, or None when there is no row or it is NULL."""
    row = cursor.fetchone()
    return None if row is None else row[0]


def _iso(moment: datetime) -> str:
    """A time from the database as the SQLite store returns it: UTC ISO 8601 text."""
    return moment.astimezone(UTC).isoformat()


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)
