"""The issuer-side central store on SQLite: keys, passes, revocations, lists (one file).

See ``sync.store.central`` for what every implementation offers and how list versions
and the change log move. Times are kept as UTC ISO 8601 text, which compares in order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gate_agent.core.passes import PassFields, key_id
from gate_agent.sqlite_wal import switch_to_wal
from sync.errors import Conflict, NotFound, StoreError
from sync.store import admins_sql, compounds_sql, residents_sql, visitors_sql
from sync.store.central import (
    DirectoryRow,
    Household,
    ImportSummary,
    IssuedPass,
    KeyRow,
    PassRow,
    Person,
)
from sync.store.central import iso as _iso
from sync.store.central_sqlite_reads import SqliteCentralReads, runner

__all__ = ["CentralStore", "DirectoryRow", "KeyRow", "PassRow", "SqliteCentralStore"]

BUSY_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issuer_keys (
    kid TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT,
    retire_at TEXT                  -- planned retirement (a rotation's overlap ends)
);
CREATE TABLE IF NOT EXISTS passes (
    pass_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    household_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    display_name TEXT NOT NULL,
    unit TEXT NOT NULL,
    exit_quota TEXT,
    key_id TEXT NOT NULL REFERENCES issuer_keys(kid),
    text TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS passes_household ON passes(household_id);
CREATE TABLE IF NOT EXISTS isolations (
    id INTEGER PRIMARY KEY,
    household_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL,
    lifted_at TEXT
);
CREATE INDEX IF NOT EXISTS isolations_household ON isolations(household_id);
CREATE TABLE IF NOT EXISTS list_versions (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS list_changes (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    item_key TEXT NOT NULL,
    PRIMARY KEY (name, version, item_key)
);
CREATE TABLE IF NOT EXISTS gate_settings (
    gate_id TEXT NOT NULL,          -- '' for every gate; a gate's own value wins
    key TEXT NOT NULL,
    value TEXT NOT NULL,            -- JSON
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL,
    PRIMARY KEY (gate_id, key)
);
CREATE TABLE IF NOT EXISTS gate_settings_history (
    id INTEGER PRIMARY KEY,
    gate_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,                     -- JSON; NULL when the setting was cleared
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
"""
#: The columns of a ``PassRow``, in its order.


class SqliteCentralStore(
    admins_sql.AdminStoreMixin,
    visitors_sql.VisitorStoreMixin,
    compounds_sql.CompoundStoreMixin,
    SqliteCentralReads,  # last: its placeholder for compound_quota must not win
):
    """The issuer-side central store in one SQLite file, nothing to set up."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The sync server reads list versions from its worker threads; the lock
            # serialises transactions and those reads on the one connection.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            switch_to_wal(self._db, BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._db.executescript(residents_sql.SQLITE_SCHEMA)
            self._db.executescript(admins_sql.SQLITE_SCHEMA)
            self._db.executescript(compounds_sql.SQLITE_SCHEMA)
            _upgrade(self._db)
            self._db.executescript(visitors_sql.SQLITE_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot use as the central database: {exc}") from exc
        self.path = path
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> SqliteCentralStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _sql_write(
        self, what: str
    ) -> Iterator[tuple[residents_sql.Run, residents_sql.Bump, residents_sql.When]]:
        """A write transaction for the shared SQL modules (``visitors_sql``, ``compounds_sql``)."""
        with self._tx() as db:
            yield runner(db), partial(self._bump, db), _iso

    @contextmanager
    def _sql_read(self, what: str) -> Iterator[tuple[residents_sql.Run, residents_sql.When]]:
        """A read for the shared SQL modules: the connection, no one writing meanwhile."""
        with self._lock:
            yield runner(self._db), _iso

    @contextmanager
    def _admin_tx(self, what: str) -> Iterator[tuple[admins_sql.Run, admins_sql.When]]:
        """A write transaction for the admin accounts' SQL (``admins_sql``)."""
        with self._tx() as db:
            yield runner(db), _iso

    def _bump(self, db: sqlite3.Connection, name: str, *changed: str) -> int:
        """Raise a list's version; record the item keys that changed with it."""
        (version,) = db.execute(
            "INSERT INTO list_versions(name, version) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET version = version + 1 RETURNING version",
            (name,),
        ).fetchone()
        db.executemany(
            "INSERT OR IGNORE INTO list_changes(name, version, item_key) VALUES (?, ?, ?)",
            [(name, version, key) for key in changed],
        )
        return int(version)

    def raise_version(self, name: str, above: int) -> None:
        """Raise a list's stored version so the next one sent is above ``above``.

        A gate can hold a version the centre does not know only after the centre was
        restored from an older backup; sending it a lower version would be ignored.
        """
        with self._tx() as db:
            db.execute(
                "INSERT INTO list_versions(name, version) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET version = MAX(version, excluded.version)",
                (name, above),
            )
            # Older change records cannot describe a delta across the jump.
            db.execute("DELETE FROM list_changes WHERE name = ?", (name,))

    def add_key(self, public_key: bytes, now: datetime) -> str:
        """Record a new issuer public key; returns its key id."""
        kid = key_id(Ed25519PublicKey.from_public_bytes(public_key))
        with self._tx() as db:
            db.execute(
                "INSERT INTO issuer_keys(kid, public_key, created_at) VALUES (?, ?, ?)",
                (kid, public_key, _iso(now)),
            )
            self._bump(db, "keys")
        return kid

    def rotate_key(self, public_key: bytes, retire_at: datetime, now: datetime) -> list[str]:
        """Record a new key and plan every other active key's retirement at ``retire_at``."""
        kid = key_id(Ed25519PublicKey.from_public_bytes(public_key))
        at = _iso(retire_at)
        with self._tx() as db:
            db.execute(
                "INSERT INTO issuer_keys(kid, public_key, created_at) VALUES (?, ?, ?)",
                (kid, public_key, _iso(now)),
            )
            rotating = [
                row[0]
                for row in db.execute(
                    "UPDATE issuer_keys SET retire_at = ?"
                    " WHERE kid <> ? AND retired_at IS NULL"
                    " AND (retire_at IS NULL OR retire_at > ?) RETURNING kid",
                    (at, kid, at),
                ).fetchall()
            ]
            self._bump(db, "keys")
        return sorted(rotating)

    def retire_key(self, kid: str, at: datetime, now: datetime) -> bool:
        """Retire a key at ``at``: recorded at once when ``at <= now``, else planned."""
        with self._tx() as db:
            found = db.execute("SELECT retired_at FROM issuer_keys WHERE kid = ?", (kid,))
            row = found.fetchone()
            if row is None:
                raise NotFound(f"no issuer key {kid}")
            if row[0] is not None:
                return False
            if at <= now:
                db.execute("UPDATE issuer_keys SET retired_at = ? WHERE kid = ?", (_iso(at), kid))
            else:
                db.execute("UPDATE issuer_keys SET retire_at = ? WHERE kid = ?", (_iso(at), kid))
            self._bump(db, "keys")
        return True

    def retire_due_keys(self, now: datetime) -> list[str]:
        """Record as retired (at their planned time) the keys whose ``retire_at`` has come."""
        with self._lock:
            # A read first: most calls find nothing, and take no write lock for it.
            if not self._db.execute(
                "SELECT 1 FROM issuer_keys WHERE retired_at IS NULL AND retire_at <= ?",
                (_iso(now),),
            ).fetchone():
                return []
            with self._tx() as db:
                rows = db.execute(
                    "UPDATE issuer_keys SET retired_at = retire_at"
                    " WHERE retired_at IS NULL AND retire_at <= ? RETURNING kid",
                    (_iso(now),),
                ).fetchall()
                if rows:
                    self._bump(db, "keys")
        return sorted(row[0] for row in rows)

    def add_pass(self, fields: PassFields, text: str, kid: str, now: datetime) -> None:
        """Record an issued pass."""
        quota = fields.exit_quota
        with self._tx() as db:
            # Checked under the write lock, so two issuers cannot both pass the check.
            if db.execute("SELECT 1 FROM passes WHERE pass_id = ?", (fields.pass_id,)).fetchone():
                raise Conflict(
                    f"pass {fields.pass_id} was issued already: reissue it under a new id"
                )
            db.execute(
                "INSERT INTO passes(pass_id, kind, household_id, scope, valid_from, valid_until,"
                " display_name, unit, exit_quota, key_id, text, issued_at, once)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fields.pass_id,
                    fields.kind.value,
                    fields.household_id,
                    str(fields.scope),
                    _iso(fields.valid_from),
                    _iso(fields.valid_until),
                    fields.display_name,
                    fields.unit,
                    f"{quota.exits}/{quota.days}" if quota else None,
                    kid,
                    text,
                    _iso(now),
                    fields.once,
                ),
            )
            self._bump(db, "directory", fields.pass_id)

    def revoke(self, pass_id: str, reason: str, now: datetime) -> bool:
        """Revoke a pass; False when it was already revoked. NotFound when unknown."""
        self.get_pass(pass_id)
        with self._tx() as db:
            changed = db.execute(
                "UPDATE passes SET revoked_at = ?, revoke_reason = ?"
                " WHERE pass_id = ? AND revoked_at IS NULL",
                (_iso(now), reason, pass_id),
            ).rowcount
            if changed:
                self._bump(db, "revocations", pass_id)
                self._bump(db, "directory", pass_id)
        return bool(changed)

    def isolate(
        self, household_id: str, start: datetime, end: datetime, note: str, now: datetime
    ) -> int:
        """Put a household in home isolation from ``start`` until ``end``; returns its id."""
        if end <= start:
            raise ValueError("the isolation must end after it starts")
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO isolations(household_id, starts_at, ends_at, note, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (household_id, _iso(start), _iso(end), note, _iso(now)),
            )
            self._bump(db, "isolations")
        return int(cursor.lastrowid or 0)

    def lift_isolation(self, household_id: str, now: datetime) -> int:
        """End a household's current and future isolations now; the history stays."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE isolations SET lifted_at = ? WHERE household_id = ?"
                " AND lifted_at IS NULL AND ends_at > ?",
                (_iso(now), household_id, _iso(now)),
            ).rowcount
            if changed:
                self._bump(db, "isolations")
        if not changed:
            raise NotFound(f"household {household_id} is not in isolation")
        return int(changed)

    # -- gate settings ----------------------------------------------------------------------

    def set_setting(self, gate_id: str, key: str, value: object, *, by: str, now: datetime) -> None:
        """Set a gate setting (``gate_id`` '' for every gate); ``value`` None clears it."""
        text = None if value is None else json.dumps(value)
        with self._tx() as db:
            if text is None:
                db.execute(
                    "DELETE FROM gate_settings WHERE gate_id = ? AND key = ?", (gate_id, key)
                )
            else:
                db.execute(
                    "INSERT INTO gate_settings(gate_id, key, value, set_at, set_by)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(gate_id, key) DO UPDATE"
                    " SET value = excluded.value, set_at = excluded.set_at,"
                    " set_by = excluded.set_by",
                    (gate_id, key, text, _iso(now), by),
                )
            db.execute(
                "INSERT INTO gate_settings_history(gate_id, key, value, set_at, set_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (gate_id, key, text, _iso(now), by),
            )
            self._bump(db, "settings")

    # -- residents and bulk passes (the SQL is in ``residents_sql``) -------------------------

    def import_residents(
        self,
        households: Sequence[Household],
        persons: Sequence[Person],
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> ImportSummary:
        """Add or update households and persons in one transaction (none on a dry run)."""
        try:
            with self._tx() as db:
                summary = residents_sql.import_residents(runner(db), households, persons, _iso(now))
                if dry_run:
                    raise _Rollback(summary)
        except _Rollback as rollback:
            return rollback.summary
        return summary

    def add_passes(
        self, issued: Sequence[IssuedPass], kid: str, now: datetime, *, skip_held: bool = False
    ) -> list[str]:
        """Record several issued passes and their holders in one transaction, one version."""
        with self._tx() as db:
            return residents_sql.add_passes(
                runner(db),
                partial(self._bump, db),
                _iso,
                issued=issued,
                kid=kid,
                now=now,
                skip_held=skip_held,
            )

    def replace_pass(
        self,
        old_id: str,
        fields: PassFields,
        text: str,
        kid: str,
        *,
        reason: str,
        now: datetime,
    ) -> None:
        """Record ``fields`` as the successor of ``old_id`` and revoke the old one, at once."""
        with self._tx() as db:
            residents_sql.replace_pass(
                runner(db),
                partial(self._bump, db),
                _iso,
                old_id=old_id,
                new=(fields, text, None),
                kid=kid,
                reason=reason,
                now=now,
            )


class _Rollback(Exception):
    """Ends a dry run's transaction, carrying what it would have done."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__("dry run")
        self.summary = summary


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a file made by an older version up to the schema above (columns added since).

    Under the write lock: server workers open the file at the same moment, and a column
    checked missing by two of them must be added by one.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(issuer_keys)")}
        if "retire_at" not in columns:
            db.execute("ALTER TABLE issuer_keys ADD COLUMN retire_at TEXT")
        if "once" not in {row[1] for row in db.execute("PRAGMA table_info(passes)")}:
            # A file from before one-time passes: every pass it holds is not one.
            db.execute("ALTER TABLE passes ADD COLUMN once INTEGER NOT NULL DEFAULT 0")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


#: The name this store had before PostgreSQL could hold the same data.
CentralStore = SqliteCentralStore
