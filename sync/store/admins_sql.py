"""Admin accounts, their sessions and the admin audit trail: the SQL both central stores run.

Written with ``?`` marks (the PostgreSQL runner makes them ``%s``), each function runs
in the caller's transaction through ``run`` and ``when`` (see ``residents_sql``).
Sessions are rows, not process memory, so several ``gate-sync serve`` replicas on one
PostgreSQL database share them. Failed sign-ins are counted on the account: after
``lock_after`` in a row it is locked until ``locked_until``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sync.errors import Conflict, NotFound

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
When = Callable[[datetime], object]

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_accounts (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,        -- scrypt$N$r$p$salt$hash
    created_at TEXT NOT NULL,
    password_set_at TEXT NOT NULL,
    disabled_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    last_signin_at TEXT
);
CREATE TABLE IF NOT EXISTS admin_sessions (
    key TEXT PRIMARY KEY,               -- SHA-256 of the cookie's session id
    name TEXT NOT NULL REFERENCES admin_accounts(name),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    expires_at TEXT NOT NULL            -- the absolute end, however active it is
);
CREATE INDEX IF NOT EXISTS admin_sessions_name ON admin_sessions(name);
CREATE TABLE IF NOT EXISTS admin_audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    done_by TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

#: PostgreSQL central migration 6 (4 and 5 are the compounds' and the visitors').
POSTGRES_MIGRATION: tuple[str, ...] = (
    """CREATE TABLE admin_accounts (
        name text COLLATE "C" PRIMARY KEY,
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL,
        password_set_at timestamptz NOT NULL,
        disabled_at timestamptz,
        failures integer NOT NULL DEFAULT 0,
        locked_until timestamptz,
        last_signin_at timestamptz
    )""",
    """CREATE TABLE admin_sessions (
        key text COLLATE "C" PRIMARY KEY,
        name text COLLATE "C" NOT NULL REFERENCES admin_accounts(name),
        csrf text NOT NULL,
        created_at timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
    )""",
    "CREATE INDEX admin_sessions_name ON admin_sessions(name)",
    """CREATE TABLE admin_audit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL,
        done_by text NOT NULL,
        action text NOT NULL,
        subject text NOT NULL,
        detail text NOT NULL
    )""",
)


@dataclass(frozen=True)
class AdminAccount:
    """An admin account as recorded (the hash stays inside the server)."""

    name: str
    password_hash: str
    created_at: datetime
    password_set_at: datetime
    disabled_at: datetime | None
    failures: int
    locked_until: datetime | None
    last_signin_at: datetime | None


@dataclass(frozen=True)
class AdminSession:
    """A signed-in admin's session: who, the CSRF token of its page, when it ends."""

    name: str
    csrf: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AuditRow:
    """One thing an admin did through the page or the API."""

    at: datetime
    by: str
    action: str
    subject: str
    detail: str


_ACCOUNT = (
    "name, password_hash, created_at, password_set_at, disabled_at, failures,"
    " locked_until, last_signin_at"
)


def moment(value: object) -> datetime:
    """A time as either database returns it (text from SQLite, datetime from PostgreSQL)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _maybe(value: object) -> datetime | None:
    return None if value is None else moment(value)


def _account(row: tuple[object, ...]) -> AdminAccount:
    name, hashed, created, set_at, disabled, failures, locked, last = row
    return AdminAccount(
        str(name),
        str(hashed),
        moment(created),
        moment(set_at),
        _maybe(disabled),
        int(str(failures)),
        _maybe(locked),
        _maybe(last),
    )


def add_account(run: Run, when: When, name: str, password_hash: str, now: datetime) -> None:
    """Record a new account; ``Conflict`` when the name is taken (disabled ones too)."""
    if run("SELECT 1 FROM admin_accounts WHERE name = ?", (name,)):
        raise Conflict(f"admin {name} exists already")
    run(
        "INSERT INTO admin_accounts(name, password_hash, created_at, password_set_at)"
        " VALUES (?, ?, ?, ?)",
        (name, password_hash, when(now), when(now)),
    )


def accounts(run: Run) -> list[AdminAccount]:
    """Every account, by name."""
    return [
        _account(row)
        for row in run(f"SELECT {_ACCOUNT} FROM admin_accounts ORDER BY name", ())  # noqa: S608
    ]


def account(run: Run, name: str) -> AdminAccount | None:
    """One account, or None."""
    rows = run(f"SELECT {_ACCOUNT} FROM admin_accounts WHERE name = ?", (name,))  # noqa: S608
    return _account(rows[0]) if rows else None


def set_password(run: Run, when: When, name: str, password_hash: str, now: datetime) -> None:
    """Set a new password (and enable, unlock); the account's sessions end."""
    changed = run(
        "UPDATE admin_accounts SET password_hash = ?, password_set_at = ?, disabled_at = NULL,"
        " failures = 0, locked_until = NULL WHERE name = ? RETURNING name",
        (password_hash, when(now), name),
    )
    if not changed:
        raise NotFound(f"no admin {name}")
    run("DELETE FROM admin_sessions WHERE name = ?", (name,))


def disable(run: Run, when: When, name: str, now: datetime) -> bool:
    """Disable an account and end its sessions; False when it was disabled already."""
    found = account(run, name)
    if found is None:
        raise NotFound(f"no admin {name}")
    run("DELETE FROM admin_sessions WHERE name = ?", (name,))
    if found.disabled_at is not None:
        return False
    run("UPDATE admin_accounts SET disabled_at = ? WHERE name = ?", (when(now), name))
    return True


def signin_failed(
    run: Run, when: When, name: str, now: datetime, *, lock_after: int, lock_for: timedelta
) -> datetime | None:
    """Count a wrong password; the time the account is locked until when this locks it."""
    rows = run(
        "UPDATE admin_accounts SET failures = failures + 1 WHERE name = ? RETURNING failures",
        (name,),
    )
    if not rows or int(rows[0][0]) < lock_after:
        return None
    until = now + lock_for
    run(
        "UPDATE admin_accounts SET failures = 0, locked_until = ? WHERE name = ?",
        (when(until), name),
    )
    return until


def signed_in(run: Run, when: When, name: str, now: datetime) -> None:
    """A right password: the count of failures starts again."""
    run(
        "UPDATE admin_accounts SET failures = 0, locked_until = NULL, last_signin_at = ?"
        " WHERE name = ?",
        (when(now), name),
    )


def add_session(
    run: Run, when: When, key: str, *, name: str, csrf: str, now: datetime, expires_at: datetime
) -> None:
    """Record a new session (and drop the expired ones of every account)."""
    run("DELETE FROM admin_sessions WHERE expires_at <= ?", (when(now),))
    run(
        "INSERT INTO admin_sessions(key, name, csrf, created_at, last_seen, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key, name, csrf, when(now), when(now), when(expires_at)),
    )


def session(run: Run, when: When, key: str, now: datetime, idle: timedelta) -> AdminSession | None:
    """The live session of ``key`` (its idle clock restarted), or None when it is over.

    Over: unknown, signed out, idle longer than ``idle``, past its absolute end, or its
    account disabled since.
    """
    rows = run(
        "SELECT s.name, s.csrf, s.created_at, s.expires_at FROM admin_sessions s"
        " JOIN admin_accounts a ON a.name = s.name"
        " WHERE s.key = ? AND s.expires_at > ? AND s.last_seen > ? AND a.disabled_at IS NULL",
        (key, when(now), when(now - idle)),
    )
    if not rows:
        return None
    name, csrf, created, expires = rows[0]
    run("UPDATE admin_sessions SET last_seen = ? WHERE key = ?", (when(now), key))
    return AdminSession(str(name), str(csrf), moment(created), moment(expires))


def end_session(run: Run, key: str) -> None:
    """Sign out: the session is gone (nothing when it was gone already)."""
    run("DELETE FROM admin_sessions WHERE key = ?", (key,))


def audit(
    run: Run, when: When, now: datetime, *, by: str, action: str, subject: str, detail: str
) -> None:
    """Record what an admin did."""
    run(
        "INSERT INTO admin_audit(at, done_by, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (when(now), by, action, subject, detail),
    )


def audit_rows(run: Run, limit: int) -> list[AuditRow]:
    """The latest ``limit`` audit rows, newest first."""
    rows = run(
        "SELECT at, done_by, action, subject, detail FROM admin_audit ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [AuditRow(moment(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


class AdminStore(Protocol):
    """What the issuer stores offer for admin accounts, sessions and the audit trail."""

    def add_admin(self, name: str, password_hash: str, now: datetime) -> None:
        """Record a new account; ``Conflict`` when the name is taken."""

    def admin_accounts(self) -> list[AdminAccount]:
        """Every account, by name."""

    def admin_account(self, name: str) -> AdminAccount | None:
        """One account, or None."""

    def set_admin_password(self, name: str, password_hash: str, now: datetime) -> None:
        """A new password (the account enabled and unlocked, its sessions ended)."""

    def disable_admin(self, name: str, now: datetime) -> bool:
        """Disable an account, ending its sessions; False when disabled already."""

    def admin_signin_failed(
        self, name: str, now: datetime, lock_after: int, lock_for: timedelta
    ) -> datetime | None:
        """Count a wrong password; when it locks the account, until when."""

    def admin_signed_in(self, name: str, now: datetime) -> None:
        """A right password: reset the failures, note the time."""

    def add_admin_session(
        self, key: str, name: str, csrf: str, now: datetime, expires_at: datetime
    ) -> None:
        """Record a session under the hash of its id."""

    def admin_session(self, key: str, now: datetime, idle: timedelta) -> AdminSession | None:
        """The live session of ``key`` (its idle clock restarted), or None."""

    def end_admin_session(self, key: str) -> None:
        """Sign a session out."""

    def add_audit(self, now: datetime, by: str, action: str, subject: str, detail: str) -> None:
        """Record what an admin did."""

    def audit_rows(self, limit: int = 100) -> list[AuditRow]:
        """The latest audit rows, newest first."""


class AdminStoreMixin:
    """``AdminStore`` for a store that gives ``_admin_tx``: a transaction's runner and
    the form its database takes times in."""

    def _admin_tx(self, what: str) -> AbstractContextManager[tuple[Run, When]]:
        raise NotImplementedError

    def add_admin(self, name: str, password_hash: str, now: datetime) -> None:
        """Record a new account; ``Conflict`` when the name is taken."""
        with self._admin_tx("add admin") as (run, when):
            add_account(run, when, name, password_hash, now)

    def admin_accounts(self) -> list[AdminAccount]:
        """Every account, by name."""
        with self._admin_tx("read admins") as (run, _):
            return accounts(run)

    def admin_account(self, name: str) -> AdminAccount | None:
        """One account, or None."""
        with self._admin_tx("read admin") as (run, _):
            return account(run, name)

    def set_admin_password(self, name: str, password_hash: str, now: datetime) -> None:
        """A new password (the account enabled and unlocked, its sessions ended)."""
        with self._admin_tx("set admin password") as (run, when):
            set_password(run, when, name, password_hash, now)

    def disable_admin(self, name: str, now: datetime) -> bool:
        """Disable an account, ending its sessions; False when disabled already."""
        with self._admin_tx("disable admin") as (run, when):
            return disable(run, when, name, now)

    def admin_signin_failed(
        self, name: str, now: datetime, lock_after: int, lock_for: timedelta
    ) -> datetime | None:
        """Count a wrong password; when it locks the account, until when."""
        with self._admin_tx("count failed sign-in") as (run, when):
            return signin_failed(run, when, name, now, lock_after=lock_after, lock_for=lock_for)

    def admin_signed_in(self, name: str, now: datetime) -> None:
        """A right password: reset the failures, note the time."""
        with self._admin_tx("sign in") as (run, when):
            signed_in(run, when, name, now)

    def add_admin_session(
        self, key: str, name: str, csrf: str, now: datetime, expires_at: datetime
    ) -> None:
        """Record a session under the hash of its id."""
        with self._admin_tx("add session") as (run, when):
            add_session(run, when, key, name=name, csrf=csrf, now=now, expires_at=expires_at)

    def admin_session(self, key: str, now: datetime, idle: timedelta) -> AdminSession | None:
        """The live session of ``key`` (its idle clock restarted), or None."""
        with self._admin_tx("read session") as (run, when):
            return session(run, when, key, now, idle)

    def end_admin_session(self, key: str) -> None:
        """Sign a session out."""
        with self._admin_tx("end session") as (run, _):
            end_session(run, key)

    def add_audit(self, now: datetime, by: str, action: str, subject: str, detail: str) -> None:
        """Record what an admin did."""
        with self._admin_tx("record audit") as (run, when):
            audit(run, when, now, by=by, action=action, subject=subject, detail=detail)

    def audit_rows(self, limit: int = 100) -> list[AuditRow]:
        """The latest audit rows, newest first."""
        with self._admin_tx("read audit") as (run, _):
            return audit_rows(run, limit)
