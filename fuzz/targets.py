"""The fuzz targets: each takes the bytes an attacker controls and checks the oracle.

A target returns normally when the code under test did the right thing: refused with a
stable code, or accepted something we signed. It raises ``Finding`` when the oracle is
broken (a forged or altered pass allowed, a forged lists document or bundle accepted,
an exception swallowed into a refusal), and lets any other exception escape: that is a
crash. The same functions run under atheris (``make fuzz``, ``fuzz/run.py``) and over
the seed corpus and its mutations in ``make test`` (tests/test_fuzz.py).

Everything a target checks against is real and made once per process in a temporary
folder (``world()``): a gate ledger holding the trusted issuer keys, an Assessor with
the gate's config, a centre key that signs lists, and a bundle the gate exported.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.assess import Assessor
from gate_agent.bundle_export import bundle_bytes
from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig
from gate_agent.core.passes import PassRefusal, VerifiedPass, key_id
from gate_agent.core.reasons import Direction
from gate_agent.core.temperature import TemperatureReading, TemperatureSource
from gate_agent.hardware.decoder import QrDecoder, decode_image_file
from gate_agent.ledger import EntryDraft, Ledger
from sync import bundle as entry_bundle
from sync.lists import ListsPayload, ListsRefused, ListUpdate, canonical, sign_lists, verify_lists

ROOT = Path(__file__).resolve().parent.parent
VECTORS_FILE = ROOT / "tests" / "core" / "pass_vectors.json"
GATE_ID = "LGQ-012-N"
#: Inside the validity of most test vectors, so that their passes are allowed.
NOW = datetime(2026, 2, 10, 3, 0, tzinfo=UTC)
TOKEN = "fuzz-gate-token-0123456789abcdefghij"


class Finding(AssertionError):
    """The oracle failed: something was accepted that nobody signed, or a crash was hidden."""


def _key(label: str) -> Ed25519PrivateKey:
    """A fixed key per label, so seeds made on any machine are the same bytes."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


@dataclass(frozen=True)
class World:
    """The gate and centre state every target checks against."""

    assessor: Assessor
    #: Every pass text signed by a key the gate trusts and has not retired.
    signed_passes: frozenset[str]
    #: Texts signed by a key the gate does not trust, or one it retired (seeds only).
    other_passes: tuple[str, ...]
    centre_keys: dict[str, bytes]
    #: Canonical JSON of every lists payload the centre key signed.
    signed_lists: frozenset[bytes]
    lists_documents: tuple[bytes, ...]
    token_hash: str
    #: Canonical JSON of every bundle document the gate signed.
    signed_bundles: frozenset[bytes]
    bundles: tuple[bytes, ...]
    scratch: Path


@cache
def world() -> World:
    """Make the state once per process (a few hundred milliseconds)."""
    vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    issuer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vectors["private_key_seed_hex"]))
    retired, stranger = _key("fuzz-retired-issuer"), _key("fuzz-untrusted-issuer")
    texts = [v["text"] for v in vectors["vectors"]]
    # The same payloads re-signed by a retired and by an untrusted key: never allowed.
    others = tuple(_resign(t, k) for t in texts for k in (retired, stranger))

    scratch = Path(tempfile.mkdtemp(prefix="gate-fuzz-"))
    config = GateConfig.model_validate(
        {
            "gate": {"id": GATE_ID, "compound_id": "LGQ-012", "community_id": "LGQ",
                     "data_dir": str(scratch / "gate")},
            # Open mode allows the most: the oracle is strictest where the gate is laxest.
            "policy": {"mode": "open"},
        }
    )  # fmt: skip
    clock = FakeClock(NOW)
    ledger = Ledger.open(scratch / "ledger.sqlite3", gate_id=GATE_ID, clock=clock.now)
    keys = [
        {"kid": key_id(k.public_key()), "retired": k is retired,
         "public_key": base64.b64encode(k.public_key().public_bytes_raw()).decode()}
        for k in (issuer, retired)
    ]  # fmt: skip
    ledger.state.apply_snapshots({"keys": (1, keys)})
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    atexit.register(ledger.close)  # runs first: the folder goes once the file is closed
    for n in range(3):
        ledger.append(_draft(n))

    centre = _key("fuzz-centre")
    centre_raw = centre.public_key().public_bytes_raw()
    kid = key_id(centre.public_key())
    payloads = _lists_payloads(keys)
    documents = tuple(canonical(sign_lists(p, kid, centre)) for p in payloads)
    # A document signed by another centre key under the pinned key's id: never accepted.
    forged = canonical(sign_lists(payloads[0], kid, _key("fuzz-other-centre")))

    bundle, _ = bundle_bytes(ledger, token=TOKEN, clock=clock)
    stranger_bundle, _ = bundle_bytes(ledger, token=TOKEN + "-other", clock=clock)
    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    signed_bundle = entry_bundle.read(bundle)[1]
    return World(
        assessor=Assessor(config, ledger),
        signed_passes=frozenset(texts),
        other_passes=others,
        centre_keys={kid: centre_raw},
        signed_lists=frozenset(canonical(sign_lists(p, kid, centre)["payload"]) for p in payloads),
        lists_documents=(*documents, forged),
        token_hash=token_hash,
        signed_bundles=frozenset({canonical(signed_bundle)}),
        bundles=(bundle, stranger_bundle),
        scratch=scratch,
    )


def _resign(text: str, key: Ed25519PrivateKey) -> str:
    """The payload of ``text`` signed by ``key``, under that key's own id."""
    payload = text.split(":")[2]
    signed = f"GP1:{key_id(key.public_key())}:{payload}"
    signature = base64.b32encode(key.sign(signed.encode("ascii"))).decode().rstrip("=")
    return f"{signed}:{signature}"


def _draft(n: int) -> EntryDraft:
    return EntryDraft(
        direction="in", outcome="allow", reason="ok",
        wall_time=NOW + timedelta(minutes=n), monotonic_ns=1_000_000_000 + n,
        boot_id="boot-1", clock_synced=True, pass_id=f"PASS00000{n}", pass_kind="resident",
        household_id="LGQ012-H0301", temperature_celsius=36.5, temperature_raw=(34.1,),
        ambient_celsius=21.0, temperature_model="skin2body-v3", temperature_source="sensor",
    )  # fmt: skip


def _lists_payloads(keys: list[dict[str, Any]]) -> list[ListsPayload]:
    revoked = {"pass_id": "DEMOREVOKED", "revoked_at": NOW.isoformat(), "reason": "moved out"}
    isolation = {"household_id": "LGQ012-H0404", "start": NOW.isoformat(),
                 "end": (NOW + timedelta(days=14)).isoformat()}  # fmt: skip
    return [
        ListsPayload(
            gate_id=None,
            issued_at=NOW,
            lists=(
                ListUpdate(name="keys", kind="snapshot", version=2, items=tuple(keys)),
                ListUpdate(name="revocations", kind="snapshot", version=3, items=(revoked,)),
                ListUpdate(name="isolations", kind="snapshot", version=1, items=(isolation,)),
                ListUpdate(
                    name="settings",
                    kind="snapshot",
                    version=1,
                    items=({"key": "mode", "value": "lockdown"},),
                ),
            ),
        ),
        ListsPayload(
            gate_id=GATE_ID,
            issued_at=NOW,
            lists=(
                ListUpdate(
                    name="revocations",
                    kind="delta",
                    version=4,
                    base_version=3,
                    items=(),
                    removed=("DEMOREVOKED",),
                ),
            ),
        ),
    ]


# --- the targets -----------------------------------------------------------------------

_READING = TemperatureReading(36.5, TemperatureSource.SENSOR)


def pass_text(data: bytes) -> None:
    """A scanned payload, as a decoder may hand it over (raw bytes read as Latin-1 or as
    UTF-8), through the whole path a scan takes: verify, the gate's lists, decide."""
    w = world()
    for text in {data.decode("latin-1"), data.decode("utf-8", "replace")}:
        check_scan(w, text)


def check_scan(w: World, text: str) -> None:
    """Evaluate one text both ways; raise ``Finding`` if the oracle fails."""
    for direction in (Direction.IN, Direction.OUT):
        evaluation = w.assessor.evaluate(text, direction, temperature=_READING, now=NOW)
        scan = evaluation.scan
        if isinstance(scan, PassRefusal) and scan.detail.startswith("unexpected "):
            raise Finding(f"verify swallowed an exception: {scan.detail} for {text!r}")
        signed = text in w.signed_passes
        if isinstance(scan, VerifiedPass) and not signed:
            raise Finding(f"a text nobody signed verified: {text!r}")
        if evaluation.decision.allowed and not signed:
            raise Finding(f"a text nobody signed was allowed {direction}: {text!r}")


def lists_import(data: bytes) -> None:
    """A lists file as `gate-agent lists import` reads it: accepted only if the pinned
    centre key signed exactly that payload, else refused with a ``lists_`` code."""
    w = world()
    try:
        payload = verify_lists(data, w.centre_keys, gate_id=GATE_ID)
    except ListsRefused as exc:
        if not exc.code.startswith("lists_"):
            raise Finding(f"refusal without a lists code: {exc.code}") from exc
        return
    body = canonical(payload.model_dump(mode="json"))
    if canonical(json.loads(data)["payload"]) not in w.signed_lists:
        raise Finding(f"a lists document the centre never signed was accepted: {body[:200]!r}")


BUNDLE_CODES = frozenset({"bad_bundle", "unsupported_format", "bad_signature", "broken_chain"})


def bundle_import(data: bytes) -> None:
    """An entry bundle as the centre reads and verifies one (sync.bundle_import.load,
    with the gate's token hash): accepted only if the gate signed exactly that document."""
    w = world()
    try:
        bundle, document = entry_bundle.read(data)
        entry_bundle.verify(bundle, document, w.token_hash)
    except entry_bundle.BundleError as exc:
        if exc.code not in BUNDLE_CODES:
            raise Finding(f"refusal with an unexpected code: {exc.code}") from exc
        return
    if canonical(document) not in w.signed_bundles:
        raise Finding("a bundle the gate never signed was accepted")


_DECODER = QrDecoder()


def image_decode(data: bytes) -> None:
    """Any file handed to `gate-agent decode`: a result with texts or an error, no crash."""
    path = world().scratch / "image"
    path.write_bytes(data)
    result = decode_image_file(path, _DECODER)
    if result.error is None and not isinstance(result.texts, list):
        raise Finding(f"no error and no texts: {result!r}")
    if result.error is not None and result.texts:
        raise Finding(f"an error with texts: {result!r}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pass_text": pass_text,
    "lists_import": lists_import,
    "bundle_import": bundle_import,
    "image_decode": image_decode,
}
