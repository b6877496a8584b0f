"""The pass format: parse and verify on the gate, sign on the central server.

A pass is one line of plain ASCII (see docs/pass-format.md)::

    GP1:<key id>:<payload, base32>:<Ed25519 signature, base32>

Everything is in the QR alphanumeric alphabet, so a full pass fits a QR code
of version 10 at error level M. The signature covers the ASCII text before the
last colon, binding the version and key id as well as the payload.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gate_agent.core.reasons import Reason

VERSION = 1
PREFIX = f"GP{VERSION}"
SIGNATURE_CHARS = 103  # 64 bytes in unpadded base32
KEY_ID_CHARS = 8  # 40 bits of the public key's SHA-256
MAX_PAYLOAD_BYTES = 120  # keeps the longest pass within QR version 10-M (311 alphanumerics)
MAX_TEXT_CHARS = len(PREFIX) + 1 + KEY_ID_CHARS + 1 + 192 + 1 + SIGNATURE_CHARS
FIELD_SEP = "|"

_B32 = re.compile(r"[A-Z2-7]*")
_B32_TO_BASE32_DIGITS = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv"
)
_PASS_ID = re.compile(r"[0-9A-Z]{6,16}")
_IDENT = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,23}")
_UNIT = re.compile(r"[0-9A-Za-z]{1,6}(-[0-9A-Za-z]{1,6}){0,2}")
_VERSION_PREFIX = re.compile(r"GP([0-9]+)(?::|$)")
_QUOTA = re.compile(r"q=([1-9][0-9]?)/([1-9][0-9]?)")
#: Separates the rules in the rules field: ``q=1/2``, ``once``, ``q=1/2;once``.
RULE_SEP = ";"
ONCE_RULE = "once"
_MAX_NAME_CHARS = 16


class PassFieldError(ValueError):
    """A pass's fields do not satisfy the format; raised when building or signing."""


class PassKind(StrEnum):
    """Who the pass is for; each kind has a one-letter wire code."""

    RESIDENT = "resident"
    TENANT = "tenant"
    VISITOR = "visitor"
    WORKER = "worker"
    DELIVERY = "delivery"
    VEHICLE = "vehicle"

    @property
    def code(self) -> str:
        """The one-letter code used inside the payload."""
        return _KIND_CODES[self]


_KIND_CODES = {
    PassKind.RESIDENT: "R",
    PassKind.TENANT: "T",
    PassKind.VISITOR: "V",
    PassKind.WORKER: "W",
    PassKind.DELIVERY: "D",
    PassKind.VEHICLE: "C",
}
_KINDS_BY_CODE = {code: kind for kind, code in _KIND_CODES.items()}


class ScopeKind(StrEnum):
    """Where a pass is good: a whole community, one compound, or listed gates."""

    COMMUNITY = "community"
    COMPOUND = "compound"
    GATES = "gates"


_SCOPE_CODES = {ScopeKind.COMMUNITY: "c", ScopeKind.COMPOUND: "p", ScopeKind.GATES: "g"}
_SCOPES_BY_CODE = {code: kind for kind, code in _SCOPE_CODES.items()}


@dataclass(frozen=True)
class Scope:
    """The places a pass opens: one community or compound id, or a list of gate ids."""

    kind: ScopeKind
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.ids or (self.kind is not ScopeKind.GATES and len(self.ids) != 1):
            raise PassFieldError(f"a {self.kind} scope needs exactly one id, got {self.ids!r}")
        for ident in self.ids:
            _check(_IDENT, ident, "scope id")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Read ``community:ID``, ``compound:ID`` or ``gates:ID,ID`` (the admin CLI form)."""
        kind, sep, ids = text.partition(":")
        if not sep or kind not in ScopeKind.__members__.values():
            raise PassFieldError(f"scope must be community:ID, compound:ID, gates:ID,ID: {text!r}")
        return cls(ScopeKind(kind), tuple(ids.split(",")))

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(self.ids)}"


@dataclass(frozen=True)
class ExitQuota:
    """A household may go out ``exits`` times per ``days`` days (the 2020 supply rule)."""

    exits: int
    days: int

    def __post_init__(self) -> None:
        if not (1 <= self.exits <= 99 and 1 <= self.days <= 99):
            raise PassFieldError(f"exit quota must be 1-99 exits per 1-99 days: {self}")


@dataclass(frozen=True)
class PassFields:
    """What a pass says. Built and validated on the central side, read back on the gate."""

    pass_id: str
    kind: PassKind
    household_id: str
    scope: Scope
    valid_from: datetime
    valid_until: datetime
    display_name: str
    unit: str = ""
    exit_quota: ExitQuota | None = None
    #: One-time: one allowed entry (and its exit); a second entry is refused ``pass_used``.
    once: bool = False

    def __post_init__(self) -> None:
        _check(_PASS_ID, self.pass_id, "pass id")
        _check(_IDENT, self.household_id, "household id")
        if self.unit:
            _check(_UNIT, self.unit, "unit (building-unit-room)")
        for name, when in (("valid_from", self.valid_from), ("valid_until", self.valid_until)):
            if when.tzinfo is None:
                raise PassFieldError(f"{name} must be timezone-aware")
            if when.microsecond or when.timestamp() < 0:
                raise PassFieldError(f"{name} must be a whole second after 1970: {when}")
        if self.valid_until <= self.valid_from:
            raise PassFieldError("valid_until must be after valid_from")
        name = self.display_name
        if not 1 <= len(name) <= _MAX_NAME_CHARS or "*" not in name:
            raise PassFieldError(f"display name must be masked (contain '*'), 1-16 chars: {name!r}")
        if FIELD_SEP in name or any(not ch.isprintable() for ch in name):
            raise PassFieldError(f"display name has a control character or '|': {name!r}")

    def payload(self) -> bytes:
        """The payload bytes that are base32-encoded into the pass."""
        scope = f"{_SCOPE_CODES[self.scope.kind]}:{','.join(self.scope.ids)}"
        parts = [
            self.pass_id,
            self.kind.code,
            self.household_id,
            scope,
            str(int(self.valid_from.timestamp())),
            str(int(self.valid_until.timestamp())),
            self.display_name,
            self.unit,
            self.rules(),
        ]
        return FIELD_SEP.join(parts).encode("utf-8")

    def rules(self) -> str:
        """The rules field: each rule this pass has, in the fixed order ``q=N/D;once``."""
        quota = self.exit_quota
        rules = [f"q={quota.exits}/{quota.days}"] if quota else []
        if self.once:
            rules.append(ONCE_RULE)
        return RULE_SEP.join(rules)


@dataclass(frozen=True)
class VerifiedPass:
    """A pass whose signature checked out under a known issuer key."""

    fields: PassFields
    key_id: str


@dataclass(frozen=True)
class PassRefusal:
    """Why a text is not a usable pass: a stable reason code and a detail for logs."""

    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class IssuerKey:
    """An issuer's public key as the gate holds it."""

    public_key: Ed25519PublicKey
    retired: bool = False
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id(self.public_key))


class Keyring:
    """The issuer public keys a gate trusts, by key id."""

    def __init__(self, keys: Iterable[IssuerKey] = ()) -> None:
        self._keys: dict[str, IssuerKey] = {k.key_id: k for k in keys}

    @classmethod
    def from_raw(cls, items: Iterable[tuple[bytes, bool]]) -> Keyring:
        """Build from raw 32-byte Ed25519 public keys and their retired flags."""
        keys = []
        for raw, retired in items:
            try:
                public = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError as exc:
                raise PassFieldError(f"not an Ed25519 public key: {exc}") from exc
            keys.append(IssuerKey(public, retired))
        return cls(keys)

    def get(self, kid: str) -> IssuerKey | None:
        """The key with this id, or None."""
        return self._keys.get(kid)

    def __len__(self) -> int:
        return len(self._keys)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The 8-character id of a public key: base32 of the first 40 bits of its SHA-256."""
    return _b32(hashlib.sha256(_raw(public_key)).digest()[:5])


def sign(fields: PassFields, private_key: Ed25519PrivateKey) -> str:
    """Make the pass text for ``fields`` signed with ``private_key`` (central side)."""
    payload = fields.payload()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PassFieldError(
            f"pass payload is {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES} fit "
            "QR version 10-M; shorten the ids, the name or the gate list"
        )
    signed = f"{PREFIX}:{key_id(private_key.public_key())}:{_b32(payload)}"
    return f"{signed}:{_b32(private_key.sign(signed.encode('ascii')))}"


def verify(text: str, keyring: Keyring) -> VerifiedPass | PassRefusal:
    """Check a scanned text's form and signature; never raises on any input string."""
    try:
        return _verify(text, keyring)
    except Exception as exc:  # noqa: BLE001 - a scan must become a refusal, never a crash
        return PassRefusal(Reason.MALFORMED, f"unexpected {type(exc).__name__}: {exc}")


def _verify(text: str, keyring: Keyring) -> VerifiedPass | PassRefusal:
    if len(text) > MAX_TEXT_CHARS:
        return PassRefusal(Reason.TOO_LONG, f"{len(text)} characters, at most {MAX_TEXT_CHARS}")
    if not text.isascii():
        return PassRefusal(Reason.NOT_ASCII, "the text has non-ASCII characters")
    version = _VERSION_PREFIX.match(text)
    if version is None:
        if text and PREFIX.startswith(text):
            return PassRefusal(Reason.TRUNCATED, "the text stops inside the prefix")
        return PassRefusal(Reason.NOT_A_PASS, "no gate pass prefix")
    if version.group(1) != str(VERSION):
        return PassRefusal(Reason.UNKNOWN_VERSION, f"format version {version.group(1)}")
    parts = text.split(":")
    if len(parts) < 4:
        return PassRefusal(Reason.TRUNCATED, f"{len(parts)} of 4 parts")
    if len(parts) > 4:
        return PassRefusal(Reason.MALFORMED, f"{len(parts)} parts, expected 4")
    _, kid, payload_b32, sig_b32 = parts
    if len(kid) != KEY_ID_CHARS or not _B32.fullmatch(kid):
        return PassRefusal(Reason.MALFORMED, "bad key id")
    if not _B32.fullmatch(sig_b32) or len(sig_b32) > SIGNATURE_CHARS:
        return PassRefusal(Reason.MALFORMED, "bad signature encoding")
    if len(sig_b32) < SIGNATURE_CHARS:
        return PassRefusal(Reason.TRUNCATED, f"signature has {len(sig_b32)} characters")
    signature = _unb32(sig_b32)
    payload = _unb32(payload_b32) if payload_b32 else None
    if signature is None or not payload:
        return PassRefusal(Reason.MALFORMED, "bad base32 in payload or signature")
    key = keyring.get(kid)
    if key is None:
        return PassRefusal(Reason.UNKNOWN_KEY, f"key {kid} is not known to this gate")
    try:
        key.public_key.verify(signature, text[: -SIGNATURE_CHARS - 1].encode("ascii"))
    except InvalidSignature:
        return PassRefusal(Reason.BAD_SIGNATURE, "signature does not match")
    if key.retired:
        return PassRefusal(Reason.KEY_RETIRED, f"key {kid} has been retired")
    try:
        fields = _parse_payload(payload)
    except (PassFieldError, UnicodeDecodeError) as exc:
        # Signed but unreadable: an issuer bug, never a forgery.
        return PassRefusal(Reason.MALFORMED, f"payload: {exc}")
    return VerifiedPass(fields, kid)


def _parse_payload(payload: bytes) -> PassFields:
    parts = payload.decode("utf-8").split(FIELD_SEP)
    if len(parts) != 9:
        raise PassFieldError(f"{len(parts)} fields, expected 9")
    pass_id, kind, household, scope, start, end, name, unit, rules = parts
    if kind not in _KINDS_BY_CODE:
        raise PassFieldError(f"unknown pass kind {kind!r}")
    scope_code, sep, scope_ids = scope.partition(":")
    if not sep or scope_code not in _SCOPES_BY_CODE:
        raise PassFieldError(f"bad scope {scope!r}")
    quota, once = _parse_rules(rules)
    fields = PassFields(
        pass_id=pass_id,
        kind=_KINDS_BY_CODE[kind],
        household_id=household,
        scope=Scope(_SCOPES_BY_CODE[scope_code], tuple(scope_ids.split(","))),
        valid_from=_timestamp(start),
        valid_until=_timestamp(end),
        display_name=name,
        unit=unit,
        exit_quota=quota,
        once=once,
    )
    if fields.rules() != rules:
        # One text per pass: rules repeated, reordered or empty between separators.
        raise PassFieldError(f"rules not in canonical form {rules!r}")
    if fields.payload() != payload:
        # And for every other field: a timestamp with leading zeros is the same pass.
        raise PassFieldError("payload not in canonical form")
    return fields


def _parse_rules(rules: str) -> tuple[ExitQuota | None, bool]:
    """The exit quota and the one-time flag of a rules field; a rule not known here is
    refused (an older gate refuses newer rules rather than ignoring them)."""
    quota: ExitQuota | None = None
    once = False
    for rule in rules.split(RULE_SEP) if rules else ():
        match = _QUOTA.fullmatch(rule)
        if match is not None:
            quota = ExitQuota(int(match.group(1)), int(match.group(2)))
        elif rule == ONCE_RULE:
            once = True
        else:
            raise PassFieldError(f"unknown rule {rule!r} in {rules!r}")
    return quota, once


def mask_name(name: str) -> str:
    """Mask a full name for display: 张三明 → 张*明, 张三 → 张*, 欧阳小明 → 欧**明."""
    latin = any(ch.isascii() and ch.isalpha() for ch in name)
    # Spaces inside a Chinese name are typing slips; in a Latin name they separate words.
    name = " ".join(name.split()) if latin else "".join(name.split())
    if not name:
        raise PassFieldError("a name is needed")
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, _MAX_NAME_CHARS - 2) + name[-1]


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise PassFieldError(f"bad {what}: {value!r}")


def _timestamp(text: str) -> datetime:
    # isascii: str.isdigit() is also true for '²' (which int() refuses) and for other
    # scripts' digits (which int() reads: a second spelling of the same pass).
    if not (text.isascii() and text.isdigit()) or len(text) > 11 or text[:1] == "0" != text:
        raise PassFieldError(f"bad timestamp {text!r}")
    return datetime.fromtimestamp(int(text), UTC)


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _unb32(text: str) -> bytes | None:
    """Decode unpadded base32, accepting only the canonical encoding of the result.

    Done with int() rather than base64.b32decode, whose pure-Python loop cost more
    than half as much as the Ed25519 check itself.
    """
    nbytes, spare_bits = divmod(len(text) * 5, 8)
    if spare_bits >= 5 or not _B32.fullmatch(text):
        return None
    value = int(text.translate(_B32_TO_BASE32_DIGITS) or "0", 32)
    # Spare trailing bits must be zero, or two texts would carry the same bytes.
    if value & ((1 << spare_bits) - 1):
        return None
    return (value >> spare_bits).to_bytes(nbytes, "big")
