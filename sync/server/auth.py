"""Secrets of the sync server: gate tokens, one-time enrolment codes, the admin token.

Only SHA-256 hashes of tokens and codes are stored; a stolen database lets no one in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sync.store.streams import StreamStore

#: Codes avoid 0/O and 1/I so an installer can read one out over the phone.
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_CODE_GROUPS = 3
_CODE_GROUP_CHARS = 4
DEFAULT_CODE_HOURS = 24


def secret_hash(secret: str) -> str:
    """The stored form of a token or code (SHA-256 hex; they are random, so no salt)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    """An enrolment code as typed (any case, with or without dashes) in its one form."""
    return code.strip().upper().replace("-", "").replace(" ", "")


def new_enrol_code(
    store: StreamStore, gate_id: str, now: datetime, hours: int = DEFAULT_CODE_HOURS
) -> str:
    """Make a one-time code for ``gate_id``, valid for ``hours``; returns it (shown once)."""
    if hours < 1:
        raise ValueError("an enrolment code must be valid for at least one hour")
    chars = [secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUPS * _CODE_GROUP_CHARS)]
    groups = [
        "".join(chars[i : i + _CODE_GROUP_CHARS]) for i in range(0, len(chars), _CODE_GROUP_CHARS)
    ]
    code = "-".join(groups)
    store.add_enrol_code(gate_id, secret_hash(normalise_code(code)), now + timedelta(hours=hours))
    return code


def new_token() -> str:
    """A gate's bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def same_secret(given: str, expected: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
