"""Fuzzing in `make test`: what a scan, a lists file, a bundle or an image file may hold.

The oracles are those of the atheris harnesses (fuzz/targets.py): a text is allowed
only if it is byte-identical to a pass the issuer signed, a lists document or bundle
is accepted only if its signer made exactly that content, and nothing else escapes but
a refusal with a stable code. Hypothesis drives the inputs here; `make fuzz` runs the
same targets under atheris for longer. The smoke tests run every target over its seed
corpus and a few hundred mutations so the harnesses cannot rot.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import corpus, run
from fuzz.targets import (
    GATE_ID,
    NOW,
    TARGETS,
    TOKEN,
    Finding,
    bundle_import,
    check_scan,
    image_decode,
    lists_import,
    pass_text,
    world,
)
from gate_agent import cli as agent_cli
from gate_agent.core.passes import (
    MAX_TEXT_CHARS,
    IssuerKey,
    Keyring,
    PassRefusal,
    VerifiedPass,
    key_id,
    verify,
)
from gate_agent.core.reasons import Direction, Reason
from gate_agent.hardware.decoder import QrDecoder
from sync import cli as sync_cli
from sync.bundle import BundleError, read
from sync.lists import ListsRefused, verify_lists
from sync.server.auth import secret_hash
from tests.sync.stream_helpers import Centre, centre

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def signed_texts() -> list[str]:
    return sorted(world().signed_passes)


def evaluate(text: str) -> None:
    check_scan(world(), text)


# --- pass texts -------------------------------------------------------------------------


def test_every_signed_vector_is_allowed_so_the_oracle_is_not_vacuous() -> None:
    w = world()
    allowed = [
        t
        for t in signed_texts()
        if w.assessor.evaluate(t, Direction.IN, temperature=None, now=NOW).decision.allowed
    ]
    assert len(allowed) >= 3  # the vectors valid at NOW, in the gate's scope


def test_the_oracle_fires_on_a_pass_nobody_signed() -> None:
    # The same world, but forgetting that the issuer signed the vectors: each one allowed
    # is then "a text nobody signed", which the target must report.
    forgetful = replace(world(), signed_passes=frozenset())
    with pytest.raises(Finding, match="nobody signed"):
        for text in signed_texts():
            check_scan(forgetful, text)


@FAST
@given(st.binary(max_size=3 * MAX_TEXT_CHARS))
def test_arbitrary_bytes_of_any_length_are_refused(data: bytes) -> None:
    pass_text(data)


@FAST
@given(st.text(max_size=3 * MAX_TEXT_CHARS))
def test_arbitrary_text_is_refused(text: str) -> None:
    evaluate(text)


@pytest.mark.parametrize("length", [0, 1, 3, 4, MAX_TEXT_CHARS - 1, MAX_TEXT_CHARS,
                                    MAX_TEXT_CHARS + 1, 2953, 7089])  # fmt: skip
def test_payloads_of_every_qr_length_are_refused(length: int) -> None:
    # Up to the largest QR code: 2953 bytes in byte mode, 7089 digits in numeric mode.
    for fill in (b"A", b"7", b"\xff", b":"):
        pass_text((b"GP1:" + fill * length)[:length])


def test_every_byte_value_alone_and_in_each_part_of_a_pass_is_refused() -> None:
    text = signed_texts()[0].encode("ascii")
    colons = [i for i, ch in enumerate(text) if ch == ord(":")]
    # A position in the prefix, the key id, the payload and the signature.
    positions = [2, colons[0] + 3, colons[1] + 10, colons[2] + 50, len(text) - 1]
    for value in range(256):
        byte = bytes([value])
        pass_text(byte)
        pass_text(text + byte)
        for i in positions:
            if text[i] != value:
                pass_text(text[:i] + byte + text[i + 1 :])


@st.composite
def mutated_passes(draw: st.DrawFn) -> bytes:
    """A signed pass with one or more bytes changed, inserted or removed, cut or extended."""
    data = bytearray(draw(st.sampled_from(signed_texts())).encode("ascii"))
    original = bytes(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["sub", "ins", "del", "cut", "extend"]))
        i = draw(st.integers(0, len(data)))
        byte = draw(st.integers(0, 255) | st.sampled_from(list(b"A27Z:")))
        if op == "sub" and i < len(data):
            data[i] = byte
        elif op == "ins":
            data.insert(i, byte)
        elif op == "del" and i < len(data):
            del data[i]
        elif op == "cut":
            del data[i:]
        elif op == "extend":
            data.extend(draw(st.binary(min_size=1, max_size=40)))
    return bytes(data) if bytes(data) != original else original + b"A"


@settings(max_examples=200, deadline=None)
@given(mutated_passes())
def test_no_mutation_truncation_or_extension_of_a_signed_pass_is_allowed(data: bytes) -> None:
    pass_text(data)


def test_passes_resigned_by_a_retired_or_untrusted_key_are_refused() -> None:
    w = world()
    for text in w.other_passes:
        evaluate(text)
        scan = w.assessor.evaluate(text, Direction.IN, temperature=None, now=NOW).scan
        assert isinstance(scan, PassRefusal)
        assert scan.reason in {Reason.KEY_RETIRED, Reason.UNKNOWN_KEY}


@FAST
@given(st.binary(min_size=32, max_size=32), st.sampled_from(range(5)))
def test_a_pass_resigned_by_any_other_key_is_never_allowed(seed: bytes, index: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    text = signed_texts()[index]
    _, kid, payload, _ = text.split(":")
    for claimed in (kid, key_id(key.public_key())):
        signed = f"GP1:{claimed}:{payload}"
        sig = base64.b32encode(key.sign(signed.encode())).decode().rstrip("=")
        evaluate(f"{signed}:{sig}")


def test_parts_swapped_between_two_signed_passes_are_never_allowed() -> None:
    texts = [t.split(":") for t in signed_texts()]
    for a in texts:
        for b in texts:
            if a == b:
                continue
            for mask in range(1, 16):  # each of the four parts from a or from b
                parts = [b[i] if mask >> i & 1 else a[i] for i in range(4)]
                evaluate(":".join(parts))


def test_key_ids_of_other_keys_are_refused() -> None:
    w = world()
    kids = [key_id(Ed25519PrivateKey.generate().public_key()), *w.centre_keys]
    kids += [t.split(":")[1] for t in w.other_passes]
    for text in signed_texts():
        _, kid, payload, sig = text.split(":")
        for other in kids:
            if other != kid:
                evaluate(f"GP1:{other}:{payload}:{sig}")


@FAST
@given(st.text(B32, min_size=8, max_size=8), st.sampled_from(range(5)))
def test_any_key_id_on_a_signed_pass_is_refused_unless_its_own(kid: str, index: int) -> None:
    _, own, payload, sig = signed_texts()[index].split(":")
    if kid != own:
        evaluate(f"GP1:{kid}:{payload}:{sig}")


def signed_by_the_issuer(payload: bytes) -> str:
    """A pass text over any payload signed by the trusted key: what a buggy issuer makes."""
    vectors = json.loads(Path("tests/core/pass_vectors.json").read_text(encoding="utf-8"))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vectors["private_key_seed_hex"]))
    signed = f"GP1:{vectors['key_id']}:{base64.b32encode(payload).decode().rstrip('=')}"
    return f"{signed}:{base64.b32encode(key.sign(signed.encode())).decode().rstrip('=')}"


_FIELD = st.text(max_size=12) | st.sampled_from(["R", "p:LGQ-012", "1769904000", "q=1/2", "²"])


@FAST
@given(st.lists(_FIELD, min_size=9, max_size=9).map("|".join))
def test_a_payload_the_issuer_signed_is_read_or_refused_never_a_crash(payload: str) -> None:
    # verify() turns any exception into MALFORMED "unexpected ...": the target reports it.
    text = signed_by_the_issuer(payload.encode("utf-8"))
    try:
        evaluate(text)
    except Finding as exc:
        assert "nobody signed" in str(exc)  # it is signed, only not one of the vectors


# Each field as the issuer writes it, and spellings a careless issuer might sign instead.
_SPELLINGS = [
    ["P7K2M9QX4T", "p7k2m9qx4t", "P7K2M9QX4T "],
    ["R", "r", "V"],
    ["LGQ012-H0301", "LGQ012-H0301 "],
    ["p:LGQ-012", "c:LGQ", "g:N,S", "g:N,,S", "p:LGQ-012,", "P:LGQ-012", "g:N, S"],
    ["1769904000", "01769904000", "0", "00", "+1769904000"],
    ["1777593600", "01777593600", "1777593600.0"],
    ["张*明", " 张*明", "张*明\t"],
    ["3-2-501", "", "03-2-501", "3-2-501-"],
    ["", "q=1/2", "once", "q=1/2;once", "once;q=1/2", "q=01/2", ";"],
]


@FAST
@given(st.tuples(*(st.sampled_from(field) for field in _SPELLINGS)).map("|".join))
def test_a_pass_has_one_text_whatever_its_issuer_signed(payload: str) -> None:
    # The format promises one text per pass (docs/pass-format.md); the scan debounce
    # compares texts. Each field must read back to the bytes it came from.
    vectors = json.loads(Path("tests/core/pass_vectors.json").read_text(encoding="utf-8"))
    seed = bytes.fromhex(vectors["private_key_seed_hex"])
    keyring = Keyring([IssuerKey(Ed25519PrivateKey.from_private_bytes(seed).public_key())])
    result = verify(signed_by_the_issuer(payload.encode("utf-8")), keyring)
    if isinstance(result, VerifiedPass):
        assert result.fields.payload() == payload.encode("utf-8")
    else:
        assert result.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "stamp", ["²", "١٧٦٩٩٠٤٠٠٠", "01769904000"], ids=["superscript", "arabic-indic", "leading-zero"]
)
def test_found_by_fuzzing_a_signed_timestamp_of_unicode_digits_is_malformed(stamp: str) -> None:
    # str.isdigit() is true for them, so int() raised or read them: an 'unexpected' refusal.
    payload = f"P7K2M9QX4T|R|LGQ012-H0301|p:LGQ-012|{stamp}|1777593600|张*明|3-2-501|"
    scan = (
        world()
        .assessor.evaluate(
            signed_by_the_issuer(payload.encode()), Direction.IN, temperature=None, now=NOW
        )
        .scan
    )
    assert isinstance(scan, PassRefusal)
    assert scan.reason is Reason.MALFORMED and scan.detail.startswith("payload: bad timestamp")


# --- signed lists and entry bundles -----------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    seed = draw(st.sampled_from(seeds))
    return next(corpus.mutations(seed, corpus.rng(draw(st.integers(0, 2**32))), 1))


@FAST
@given(st.binary(max_size=400) | mutated(corpus.seeds("lists_import")))
def test_lists_documents_nobody_signed_are_refused_with_a_code(data: bytes) -> None:
    lists_import(data)


@FAST
@given(st.binary(max_size=400) | mutated(corpus.seeds("bundle_import")))
def test_bundles_nobody_signed_are_refused_with_a_code(data: bytes) -> None:
    bundle_import(data)


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)))  # fmt: skip
def test_any_json_as_a_lists_document_or_in_a_bundle_is_refused(value: object) -> None:
    raw = json.dumps(value).encode()
    lists_import(raw)
    bundle_import(gzip.compress(raw, mtime=0))
    if isinstance(value, dict):
        lists_import(json.dumps({**value, "format": "gate-station-lists/2"}).encode())
        bundle_import(gzip.compress(json.dumps({**value, "format": "gate-station-entries/1"})
                                    .encode(), mtime=0))  # fmt: skip


@pytest.mark.parametrize(
    "document",
    [b"[" * 100_000, b'{"format":"gate-station-entries/1","first_seq":' + b"1" * 5000 + b"}"],
    ids=["nested-100000-deep", "int-of-5000-digits"],
)
def test_found_by_fuzzing_json_the_parser_cannot_hold_is_a_bad_bundle(document: bytes) -> None:
    # Both escaped sync.bundle.read as RecursionError / ValueError, not a BundleError.
    with pytest.raises(BundleError) as refused:
        read(gzip.compress(document, mtime=0))
    assert refused.value.code == "bad_bundle"
    bundle_import(gzip.compress(document, mtime=0))


@pytest.mark.parametrize("document", [b"[" * 100_000, b'{"a":' * 100_000], ids=["array", "object"])
def test_found_by_fuzzing_lists_nested_too_deep_are_malformed(
    document: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Raised RecursionError out of verify_lists (the downlink and `lists import`), and out
    # of `gate-agent lists import` on a gate with no centre key pinned yet.
    with pytest.raises(ListsRefused) as refused:
        verify_lists(document, world().centre_keys, gate_id=GATE_ID)
    assert refused.value.code == "lists_malformed"
    lists_import(document)
    config = tmp_path / "gate.toml"
    config.write_text(
        f'[gate]\nid = "{GATE_ID}"\ncompound_id = "C"\ncommunity_id = "M"\n'
        f'data_dir = "{tmp_path / "gate"}"\n',
        encoding="utf-8",
    )
    (tmp_path / "deep.json").write_bytes(document)
    argv = ["--config", str(config), "lists", "import", str(tmp_path / "deep.json")]
    assert agent_cli.main(argv) == 1
    assert "not a signed lists file" in capsys.readouterr().err


@pytest.fixture
def gate_config(tmp_path: Path) -> Path:
    """A gate.toml whose ledger has pinned the fuzz world's centre key."""
    path = tmp_path / "gate.toml"
    path.write_text(
        f'[gate]\nid = "{GATE_ID}"\ncompound_id = "LGQ-012"\ncommunity_id = "LGQ"\n'
        f'data_dir = "{tmp_path / "gate"}"\n',
        encoding="utf-8",
    )
    (kid, public), = world().centre_keys.items()  # fmt: skip
    trust = f"{kid} {base64.b64encode(public).decode()}"
    document = tmp_path / "lists.json"
    document.write_bytes(world().lists_documents[0])
    assert agent_cli.main(["--config", str(path), "lists", "import", str(document),
                           "--trust-key", trust]) == 0  # fmt: skip
    return path


def test_mutated_lists_files_change_nothing_on_the_gate(gate_config: Path, tmp_path: Path) -> None:
    from gate_agent.config import load_config
    from gate_agent.ledger import Ledger

    def held() -> tuple[dict[str, int], frozenset[str]]:
        with Ledger.open(load_config(gate_config).ledger_path, gate_id=GATE_ID) as ledger:
            return ledger.state.list_versions(), ledger.state.revoked_pass_ids()

    before = held()
    assert before[0]["revocations"] == 3
    rng = corpus.rng(8)
    document = tmp_path / "mutant.json"
    refused = 0
    for seed in world().lists_documents[1:]:
        for data in corpus.mutations(seed, rng, 15):
            document.write_bytes(data)
            code = agent_cli.main(["--config", str(gate_config), "lists", "import", str(document)])
            if code == 0:  # a mutant in the JSON's spacing still carries the signed payload
                lists_import(data)  # raises Finding unless the payload is one we signed
                before = held()
            else:
                refused += 1
                assert held() == before
    assert refused >= 25


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Centre]:
    """A centre where the fuzz world's gate is enrolled with its token."""
    with centre(tmp_path / "central") as opened:
        code = "code-fuzz"
        opened.streams.add_enrol_code(GATE_ID, secret_hash(code), NOW + timedelta(days=30))
        assert opened.streams.enrol(GATE_ID, secret_hash(code), secret_hash(TOKEN), NOW)
        yield opened


def test_mutated_bundles_store_nothing_at_the_centre(central: Centre, tmp_path: Path) -> None:
    rng = corpus.rng(9)
    path = tmp_path / "mutant.gsb"
    bundle = world().bundles[0]
    for data in corpus.mutations(bundle, rng, 20):
        path.write_bytes(data)
        argv = ["--data-dir", str(central.data_dir), "import-bundle", str(path)]
        assert sync_cli.main(argv) == 2
        assert central.streams.entries_after(0, 100) == []
    path.write_bytes(bundle)
    assert sync_cli.main(["--data-dir", str(central.data_dir), "import-bundle", str(path)]) == 0
    assert len(central.streams.entries_after(0, 100)) == 3


# --- image files and frames -------------------------------------------------------------


def test_the_seed_image_decodes_to_a_signed_pass(tmp_path: Path) -> None:
    from gate_agent.hardware.decoder import decode_image_file

    path = tmp_path / "qr.png"
    path.write_bytes(corpus.seeds("image_decode")[0])
    assert decode_image_file(path, QrDecoder()).texts == [signed_texts()[0]]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        corpus.huge_png(100_000, 100_000),
        corpus.huge_png(30_000, 30_000),
        corpus.huge_png(0, 0),
        corpus.huge_png(2**31 - 1, 1),
    ],
    ids=["empty", "nul", "text", "png-magic", "jpeg-magic", "png-1e10-px", "png-9e8-px",
         "png-0x0", "png-2^31x1"],
)  # fmt: skip
def test_files_that_are_not_images_give_an_error(data: bytes, tmp_path: Path) -> None:
    from gate_agent.hardware.decoder import decode_image_file

    path = tmp_path / "file"
    path.write_bytes(data)
    result = decode_image_file(path, QrDecoder())
    assert result.error is not None and result.texts == []


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000) | mutated(corpus.seeds("image_decode")[:3]))
def test_arbitrary_and_damaged_image_files_never_crash(data: bytes) -> None:
    image_decode(data)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=0, max_size=4),
    st.sampled_from([np.uint8, np.uint16, np.int8, np.float32, np.bool_]),
    st.integers(0, 2**32 - 1),
)
def test_the_frame_decoder_refuses_bad_arrays_with_value_error(
    shape: list[int], dtype: type, seed: int
) -> None:
    frame: np.ndarray = np.random.default_rng(seed).integers(0, 2, size=shape).astype(dtype)
    try:
        codes = QrDecoder().decode(frame)
    except ValueError:
        assert not (frame.ndim == 2 and frame.dtype == np.uint8 and frame.size)
        return
    assert frame.ndim == 2 and frame.dtype == np.uint8
    assert codes == []


# --- the harnesses themselves -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_harness_runs_over_its_seeds_and_their_mutations(name: str) -> None:
    target = TARGETS[name]
    rng = corpus.rng(name)
    count = 40 if name == "image_decode" else 100
    for seed in corpus.seeds(name):
        target(seed)
        for data in corpus.mutations(seed, rng, count):
            target(data)


def test_replay_reproduces_a_crash_file_and_passes_a_harmless_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harmless = tmp_path / "pass_text-crash-0"
    harmless.write_bytes(b"GP1:")
    assert run.main(["--replay", str(harmless)]) == 0

    def broken(data: bytes) -> None:
        raise KeyError(data)

    monkeypatch.setitem(TARGETS, "lists_import", broken)
    crash = tmp_path / "lists_import-crash-1"
    crash.write_bytes(b"{}")
    assert run.main(["--replay", str(crash)]) == 1
