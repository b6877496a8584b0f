"""The pass format: committed vectors, every refusal code, size limits, mutations."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_agent.core.passes import (
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_CHARS,
    ExitQuota,
    IssuerKey,
    Keyring,
    PassFieldError,
    PassFields,
    PassKind,
    PassRefusal,
    Scope,
    ScopeKind,
    VerifiedPass,
    _b32,
    _unb32,
    key_id,
    mask_name,
    sign,
    verify,
)
from gate_agent.core.reasons import PASS_TEXT_REASONS, Reason

VECTORS = json.loads((Path(__file__).parent / "pass_vectors.json").read_text(encoding="utf-8"))
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["private_key_seed_hex"]))
KEYRING = Keyring([IssuerKey(KEY.public_key())])
VALID_TEXT = VECTORS["vectors"][0]["text"]


def fields_from(raw: dict[str, str]) -> PassFields:
    quota = raw.get("exit_quota")
    return PassFields(
        pass_id=raw["pass_id"],
        kind=PassKind(raw["kind"]),
        household_id=raw["household_id"],
        scope=Scope.parse(raw["scope"]),
        valid_from=datetime.fromisoformat(raw["valid_from"]),
        valid_until=datetime.fromisoformat(raw["valid_until"]),
        display_name=raw["display_name"],
        unit=raw.get("unit", ""),
        exit_quota=ExitQuota(*map(int, quota.split("/"))) if quota else None,
        once=bool(raw.get("once", False)),
    )


def refusal(text: str, keyring: Keyring = KEYRING) -> Reason:
    result = verify(text, keyring)
    assert isinstance(result, PassRefusal), result
    return result.reason


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vectors_sign_to_the_exact_text_and_verify_back(vector: dict[str, Any]) -> None:
    fields = fields_from(vector["fields"])
    assert fields.payload().decode("utf-8") == vector["payload_utf8"]
    assert sign(fields, KEY) == vector["text"]
    result = verify(vector["text"], KEYRING)
    assert result == VerifiedPass(fields, VECTORS["key_id"])


def test_vector_key_id_is_derived_from_the_public_key() -> None:
    assert key_id(KEY.public_key()) == VECTORS["key_id"]
    assert KEY.public_key().public_bytes_raw().hex() == VECTORS["public_key_hex"]


_ID = st.text("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ-", min_size=1, max_size=23)


@st.composite
def long_fields(draw: st.DrawFn) -> PassFields:
    """Valid fields pushed towards every length limit."""
    cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
    name = draw(st.lists(cjk, min_size=2, max_size=15).map("".join))
    unit = draw(st.lists(st.text("0123456789AB", min_size=1, max_size=6), min_size=1, max_size=3))
    return PassFields(
        pass_id=draw(st.text("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=6, max_size=16)),
        kind=draw(st.sampled_from(PassKind)),
        household_id="H" + draw(_ID),
        scope=Scope(ScopeKind.GATES, tuple("G" + g for g in draw(st.lists(_ID, min_size=1)))),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2099, 12, 31, tzinfo=UTC),
        display_name=mask_name(name),
        unit="-".join(unit),
        exit_quota=draw(st.none() | st.just(ExitQuota(99, 99))),
        once=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(long_fields())
def test_every_pass_that_signs_fits_qr_version_10_at_level_m(fields: PassFields) -> None:
    try:
        text = sign(fields, KEY)
    except PassFieldError as exc:
        assert len(fields.payload()) > MAX_PAYLOAD_BYTES
        assert "QR version 10-M" in str(exc)
        return
    assert len(text) <= MAX_TEXT_CHARS
    qr = segno.make(text, error="m", boost_error=False, micro=False)
    assert qr.mode == "alphanumeric"
    assert int(qr.version) <= 10
    assert verify(text, KEYRING) == VerifiedPass(fields, VECTORS["key_id"])


def test_a_payload_at_the_limit_still_signs() -> None:
    base = fields_from(VECTORS["vectors"][0]["fields"])
    pad = MAX_PAYLOAD_BYTES - len(base.payload())
    # "p:LGQ-012" (9 bytes) becomes "g:" + 24 + "," + a second id of pad - 18 bytes.
    scope = Scope(ScopeKind.GATES, ("G" + "1" * 23, "G" + "2" * (pad - 19)))
    fields = replace(base, scope=scope)
    assert len(fields.payload()) == MAX_PAYLOAD_BYTES
    assert segno.make(sign(fields, KEY), error="m", boost_error=False).version == 10
    with pytest.raises(PassFieldError):
        sign(replace(fields, unit=fields.unit + "1"), KEY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", Reason.NOT_A_PASS),
        ("https://example.org/", Reason.NOT_A_PASS),
        ("gp1:" + VALID_TEXT[4:], Reason.NOT_A_PASS),
        ("G", Reason.TRUNCATED),
        ("GP1", Reason.TRUNCATED),
        (VALID_TEXT[:40], Reason.TRUNCATED),
        (VALID_TEXT[:-1], Reason.TRUNCATED),
        (VALID_TEXT.rsplit(":", 1)[0], Reason.TRUNCATED),
        ("GP2" + VALID_TEXT[3:], Reason.UNKNOWN_VERSION),
        ("GP10" + VALID_TEXT[3:], Reason.UNKNOWN_VERSION),
        (VALID_TEXT + "A", Reason.MALFORMED),
        (VALID_TEXT + ":", Reason.MALFORMED),
        (VALID_TEXT.replace(":", "::", 1), Reason.MALFORMED),
        ("GP1:UC3HA6U:" + VALID_TEXT[13:], Reason.MALFORMED),
        ("GP1:UC3HA6U3::" + VALID_TEXT.rsplit(":", 1)[1], Reason.MALFORMED),
        (VALID_TEXT[:20] + "a" + VALID_TEXT[21:], Reason.MALFORMED),
        (VALID_TEXT[:20] + "1" + VALID_TEXT[21:], Reason.MALFORMED),
        (VALID_TEXT + "\n", Reason.MALFORMED),
        ("GP1:" + "A" * MAX_TEXT_CHARS, Reason.TOO_LONG),
        (VALID_TEXT[:-2] + "名A", Reason.NOT_ASCII),
        ("GP1:AAAAAAAA:" + VALID_TEXT[13:], Reason.UNKNOWN_KEY),
        (
            VALID_TEXT[:30] + ("B" if VALID_TEXT[30] != "B" else "C") + VALID_TEXT[31:],
            Reason.BAD_SIGNATURE,
        ),
    ],
)
def test_each_kind_of_bad_text_has_its_own_reason(text: str, reason: Reason) -> None:
    assert refusal(text) is reason


def test_a_non_canonical_signature_encoding_is_refused() -> None:
    # 64 bytes in base32 leave 3 unused bits in the last character; setting them must not
    # produce a second text that verifies.
    last = VALID_TEXT[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert refusal(VALID_TEXT[:-1] + twin) is Reason.MALFORMED


def test_a_retired_key_is_refused_and_an_unknown_one_named() -> None:
    retired = Keyring([IssuerKey(KEY.public_key(), retired=True)])
    assert refusal(VALID_TEXT, retired) is Reason.KEY_RETIRED
    assert refusal(VALID_TEXT, Keyring()) is Reason.UNKNOWN_KEY


def test_another_issuers_signature_does_not_verify_under_our_key_id() -> None:
    fields = fields_from(VECTORS["vectors"][0]["fields"])
    forged = sign(fields, Ed25519PrivateKey.generate())
    forged = forged[:4] + VECTORS["key_id"] + forged[12:]
    assert refusal(forged) is Reason.BAD_SIGNATURE


def test_a_signed_but_unreadable_payload_is_malformed_not_allowed() -> None:
    # What a buggy issuer could produce: a valid signature over a payload we cannot parse.
    payload = base64.b32encode(b"P7K2M9QX4T|Z|H1").decode().rstrip("=")
    signed = f"GP1:{VECTORS['key_id']}:{payload}"
    sig = base64.b32encode(KEY.sign(signed.encode())).decode().rstrip("=")
    assert refusal(f"{signed}:{sig}") is Reason.MALFORMED


def signed_payload(payload: str) -> str:
    """A pass text over any payload, as a buggy or newer issuer could sign it."""
    encoded = base64.b32encode(payload.encode()).decode().rstrip("=")
    signed = f"GP1:{VECTORS['key_id']}:{encoded}"
    return f"{signed}:{base64.b32encode(KEY.sign(signed.encode())).decode().rstrip('=')}"


_FIELDS_BEFORE_RULES = "VQ7M3KX9TR|V|LGQ012-H0301|p:LGQ-012|1770685200|1770714000|赵*|3-2-501|"


@pytest.mark.parametrize(
    ("rules", "quota", "once"),
    [("", None, False), ("q=1/2", ExitQuota(1, 2), False), ("once", None, True),
     ("q=3/7;once", ExitQuota(3, 7), True)],
)  # fmt: skip
def test_the_rules_field_reads_a_quota_and_once(
    rules: str, quota: ExitQuota | None, once: bool
) -> None:
    result = verify(signed_payload(_FIELDS_BEFORE_RULES + rules), KEYRING)
    assert isinstance(result, VerifiedPass), result
    assert (result.fields.exit_quota, result.fields.once) == (quota, once)
    assert result.fields.rules() == rules


@pytest.mark.parametrize(
    "rules",
    # A rule this gate does not know is refused, never ignored: an old gate refuses a
    # one-time pass rather than letting it in twice. One text per pass: no other spelling.
    ["twice", "once;twice", "once;q=1/2", "once;once", ";once", "once;", "q=1/2;q=1/2", "ONCE"],
)
def test_unknown_or_uncanonical_rules_are_malformed(rules: str) -> None:
    assert refusal(signed_payload(_FIELDS_BEFORE_RULES + rules)) is Reason.MALFORMED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pass_id": "p7k2"}, "pass id"),
        ({"household_id": "H 1"}, "household id"),
        ({"unit": "3/2/501"}, "unit"),
        ({"display_name": "张三明"}, "masked"),
        ({"display_name": "张*|明"}, "control character"),
        ({"valid_until": datetime(2026, 1, 1, tzinfo=UTC)}, "after valid_from"),
        ({"valid_from": datetime(2026, 2, 1)}, "timezone-aware"),
        ({"valid_from": datetime(2026, 2, 1, 0, 0, 0, 5, tzinfo=UTC)}, "whole second"),
    ],
)
def test_fields_are_validated_when_built(change: dict[str, Any], message: str) -> None:
    base = fields_from(VECTORS["vectors"][0]["fields"])
    with pytest.raises(PassFieldError, match=message):
        replace(base, **change)


@pytest.mark.parametrize(
    ("scope", "ok"),
    [("compound:LGQ-012", True), ("gates:A,B", True), ("community:A,B", False), ("x:A", False)],
)
def test_scope_parse(scope: str, ok: bool) -> None:
    if ok:
        assert str(Scope.parse(scope)) == scope
    else:
        with pytest.raises(PassFieldError):
            Scope.parse(scope)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三明", "张*明"),
        ("张三", "张*"),
        ("欧阳小明", "欧**明"),
        ("A", "*"),
        (" 李  四 ", "李*"),
        ("Ann  Lee", "A*****e"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_mask_name_keeps_long_names_within_the_display_limit() -> None:
    assert len(mask_name("Maximilian Alexander Smith")) == 16


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_verify_never_raises_and_only_uses_pass_text_reasons(text: str) -> None:
    result = verify(text, KEYRING)
    assert isinstance(result, PassRefusal)
    assert result.reason in PASS_TEXT_REASONS


@st.composite
def mutations(draw: st.DrawFn) -> str:
    """A valid pass text with one to three characters substituted, inserted or deleted."""
    chars = list(draw(st.sampled_from([v["text"] for v in VECTORS["vectors"]])))
    original = "".join(chars)
    alphabet = st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("A2Z7:")
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["sub", "ins", "del", "cut", "swap"]))
        i = draw(st.integers(0, max(0, len(chars) - 1)))
        if op == "sub" and chars:
            chars[i] = draw(alphabet)
        elif op == "ins":
            chars.insert(i, draw(alphabet))
        elif op == "del" and chars:
            del chars[i]
        elif op == "cut":
            chars = chars[:i]
        elif op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    mutated = "".join(chars)
    if mutated == original:
        mutated = original + "A"
    return mutated


@settings(max_examples=600, deadline=None)
@given(mutations())
def test_no_mutation_of_a_valid_pass_verifies(text: str) -> None:
    assert isinstance(verify(text, KEYRING), PassRefusal)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=130))
def test_base32_round_trips(data: bytes) -> None:
    assert _unb32(_b32(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=_ 019az+-", max_size=40))
def test_base32_decoding_accepts_exactly_the_canonical_texts(text: str) -> None:
    try:
        reference: bytes | None = base64.b32decode(text + "=" * (-len(text) % 8))
    except binascii.Error:
        reference = None
    canonical = reference is not None and _b32(reference) == text
    assert _unb32(text) == (reference if canonical else None)
