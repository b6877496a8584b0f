"""Who is at the console: guards' shift PINs, the admin token, sessions, attempt limits.

A guard's PIN is issued for a shift (`gate-agent guards add NAME`) and kept only
as a scrypt hash in ``guards.json`` (mode 0600) beside the ledger. Sessions live
in memory: a restart signs everyone out, which is what a restart should do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from gate_agent.errors import ConfigError

Role = Literal["guard", "admin"]
PIN_DIGITS = 6
MAX_NAME_FAILURES = 5
NAME_LOCK = timedelta(minutes=15)
CLIENT_WINDOW = timedelta(minutes=5)
MAX_CLIENT_ATTEMPTS = 20
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class SignInRefused(Exception):
    """A sign-in that did not succeed, with a stable code for the page."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Guard:
    """A guard on the roster, with the end of the shift their PIN is good for."""

    name: str
    pin_hash: str
    salt: str
    until: datetime


@dataclass(frozen=True)
class Session:
    """A signed-in browser."""

    token: str
    role: Role
    name: str
    csrf: str
    expires: datetime


def _hash(pin: str, salt: str) -> str:
    return hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


class Roster:
    """The guards who may sign in, kept in a JSON file only this service reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, name: str, *, until: datetime) -> str:
        """Put a guard on the roster for a shift; returns the new PIN (shown once)."""
        name = " ".join(name.split())
        if not 1 <= len(name) <= 20:
            raise ValueError("a guard's name is 1-20 characters")
        pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
        salt = secrets.token_hex(16)
        with self._lock:
            guards = {g.name: g for g in self._load()}
            guards[name] = Guard(name, _hash(pin, salt), salt, until)
            self._save(list(guards.values()))
        return pin

    def remove(self, name: str) -> bool:
        """Take a guard off the roster; False when they were not on it."""
        with self._lock:
            before = self._load()
            guards = [g for g in before if g.name != name]
            self._save(guards)
        return len(guards) != len(before)

    def on_shift(self, now: datetime) -> list[Guard]:
        """Guards whose PIN is still good."""
        return [g for g in self._load() if g.until > now]

    def check(self, name: str, pin: str, now: datetime) -> bool:
        """Whether the PIN is this guard's, for a shift not yet over."""
        return self.verify(name, pin, now) is not None

    def verify(self, name: str, pin: str, now: datetime) -> Guard | None:
        """The guard whose PIN this is, for a shift not yet over; None otherwise."""
        for guard in self.on_shift(now):
            if guard.name == name:
                good = hmac.compare_digest(guard.pin_hash, _hash(pin, guard.salt))
                return guard if good else None
        _hash(pin, secrets.token_hex(16))  # same time whether or not the name exists
        return None

    def _load(self) -> list[Guard]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: unreadable guard roster: {exc}") from exc
        return [
            Guard(g["name"], g["pin_hash"], g["salt"], datetime.fromisoformat(g["until"]))
            for g in raw.get("guards", [])
        ]

    def _save(self, guards: list[Guard]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "guards": [
                {"name": g.name, "pin_hash": g.pin_hash, "salt": g.salt,
                 "until": g.until.isoformat()}
                for g in guards
            ]
        }  # fmt: skip
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)


class Sessions:
    """Signed-in browsers, and the limits on trying PINs and tokens."""

    def __init__(self, roster: Roster, admin_token: str | None, lifetime: timedelta) -> None:
        self.roster = roster
        self._admin_token = admin_token
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, tuple[int, datetime]] = {}
        self._attempts: dict[str, deque[datetime]] = {}

    def sign_in_guard(self, name: str, pin: str, client: str, now: datetime) -> Session:
        """A guard's session, or SignInRefused (bad_pin, locked, too_many_attempts)."""
        self._count_attempt(client, now)
        with self._lock:
            failures, since = self._failures.get(name, (0, now))
            if failures >= MAX_NAME_FAILURES and now - since < NAME_LOCK:
                raise SignInRefused("locked", f"{name} is locked for a while", 429)
        guard = self.roster.verify(name, pin, now)
        if guard is None:
            with self._lock:
                failures, _ = self._failures.get(name, (0, now))
                self._failures[name] = (failures + 1, now)
            raise SignInRefused("bad_pin", "wrong name or PIN", 401)
        with self._lock:
            self._failures.pop(name, None)
        # The PIN is for a shift: the session ends with it, however long a sign-in lasts.
        return self._open("guard", name, now, until=guard.until)

    def sign_in_admin(self, token: str, client: str, now: datetime) -> Session:
        """An admin's session, or SignInRefused (bad_token, too_many_attempts)."""
        self._count_attempt(client, now)
        expected = self._admin_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise SignInRefused("bad_token", "wrong admin token", 401)
        return self._open("admin", "admin", now)

    def get(self, token: str | None, now: datetime) -> Session | None:
        """The live session for a cookie, if any."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires <= now:
                del self._sessions[token]
                return None
            return session

    def end(self, token: str) -> None:
        """Sign a session out."""
        with self._lock:
            self._sessions.pop(token, None)

    def _open(
        self, role: Role, name: str, now: datetime, *, until: datetime | None = None
    ) -> Session:
        expires = now + self._lifetime if until is None else min(now + self._lifetime, until)
        session = Session(secrets.token_urlsafe(32), role, name, secrets.token_urlsafe(24), expires)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def _count_attempt(self, client: str, now: datetime) -> None:
        with self._lock:
            recent = self._attempts.setdefault(client, deque())
            while recent and now - recent[0] > CLIENT_WINDOW:
                recent.popleft()
            if len(recent) >= MAX_CLIENT_ATTEMPTS:
                raise SignInRefused("too_many_attempts", "too many sign-in attempts", 429)
            recent.append(now)
