"""Named admin accounts: password hashing (scrypt), names, sessions' secrets and timings.

Passwords are hashed with ``hashlib.scrypt`` under a random salt; the stored text
records the parameters (``scrypt$N$r$p$salt$hash``, base64), so they can be raised
later without locking anyone out. Session ids and CSRF tokens are random; only the
SHA-256 of a session id is stored, so a copy of the database opens no session.
The accounts and sessions live in the issuer store (``sync.store.admins_sql``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

#: scrypt cost: 2**15 × 8 × 128 bytes = 32 MiB and ~50 ms per sign-in on a laptop core.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
#: Generated passwords: 16 characters without look-alikes (0/O, 1/l/I), about 90 bits.
_PASSWORD_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
GENERATED_LENGTH = 16
MIN_PASSWORD = 10
MAX_PASSWORD = 200
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


@dataclass(frozen=True)
class Policy:
    """How long sessions live and how failed sign-ins are answered."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    #: Failed passwords in a row that lock the account, and for how long.
    lock_after: int = 5
    lock_for: timedelta = timedelta(minutes=15)
    #: Sign-in attempts one client address may make per minute (per server process).
    attempts_per_minute: int = 20


def check_name(name: str) -> str:
    """An account name as given, or ValueError: ASCII letters, digits, ``._-``, ≤ 40."""
    if not NAME.match(name):
        raise ValueError(
            f"not an admin name: {name!r} (letters, digits, . _ -; up to 40 characters)"
        )
    return name


def check_password(password: str) -> str:
    """A chosen password, or ValueError when too short or too long."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password has {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


def new_password() -> str:
    """A random password to hand to a new admin (shown once)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(GENERATED_LENGTH))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of a password: ``scrypt$N$r$p$salt$hash`` (base64, no padding)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n=n, r=r, p=p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant-time comparison)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n=n, r=r, p=p, size=len(expected)), expected)


#: Checked against when the account is unknown, so a wrong name costs what a wrong password does.
DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def new_session_id() -> str:
    """A session id for the cookie (256 bits)."""
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    """A session's CSRF token, sent back by the page in a header on every write."""
    return secrets.token_urlsafe(24)


def session_key(session_id: str) -> str:
    """The stored form of a session id (SHA-256 hex: random, so no salt needed)."""
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int, size: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
