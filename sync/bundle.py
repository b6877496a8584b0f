"""Entry bundles: a gate's unsynced entries on a USB stick, signed, for a centre to import.

A bundle is one gzip-compressed JSON document (``.gsb``). Its ``signature`` is
HMAC-SHA256 over the canonical JSON of every other field, keyed with the 32 bytes of
SHA-256 of the gate's sync token: the gate holds the token, the centre holds exactly
that hash (``sync.server.auth.secret_hash``), so the centre verifies without ever
storing the token. Both ends share this module; it does no file or database I/O.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import uuid
import zlib
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from gate_agent.core.chain import canonical_json, genesis_hash

BUNDLE_FORMAT = "gate-station-entries/1"
BUNDLE_SUFFIX = ".gsb"
SIGNATURE_PREFIX = "hmac-sha256:"
#: Inflated size a bundle may have: ~2 KiB an entry, a few hundred thousand entries.
MAX_BUNDLE_BYTES = 1024 * 1024 * 1024


class BundleError(ValueError):
    """A bundle that cannot be read or trusted; ``code`` is stable, for scripts and tests.

    Codes: ``unreadable`` (the file), ``bad_bundle`` (not gzip/JSON, cut short, or
    fields wrong), ``unsupported_format``, ``not_enrolled`` (no token for the gate),
    ``bad_signature``, ``broken_chain``; on import also ``gap``, ``content_conflict``.
    """

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code
        self.detail = detail


class EntryBundle(BaseModel):
    """The signed document: a contiguous run of one stream's entries in wire form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["gate-station-entries/1"]
    gate_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")]
    stream_id: Annotated[str, Field(min_length=36, max_length=36)]
    first_seq: Annotated[int, Field(ge=1)]
    last_seq: Annotated[int, Field(ge=1)]
    exported_at: AwareDatetime  # the gate's wall clock at export
    exported_monotonic_ns: Annotated[int, Field(ge=0)]
    boot_id: str
    clock_synced: bool  # whether the gate's wall clock was synchronised at export
    acked_through: Annotated[int, Field(ge=0)]  # the gate's upload cursor at export
    entries: Annotated[list[dict[str, Any]], Field(min_length=1)]
    signature: Annotated[str, Field(pattern=r"^hmac-sha256:[0-9a-f]{64}$")]

    @model_validator(mode="after")
    def _contiguous(self) -> EntryBundle:
        uuid.UUID(self.stream_id)  # a ValueError here is a validation error
        seqs = [entry.get("seq") for entry in self.entries]
        if seqs != list(range(self.first_seq, self.last_seq + 1)):
            raise ValueError(f"entries must be numbered {self.first_seq}..{self.last_seq}")
        return self


def signing_key(token_hash_hex: str) -> bytes:
    """The HMAC key: the raw bytes of SHA-256 of the token, from its stored hex form."""
    key = bytes.fromhex(token_hash_hex)
    if len(key) != hashlib.sha256().digest_size:
        raise ValueError("a token hash is 32 bytes of SHA-256 in hex")
    return key


def signature(document: dict[str, Any], token_hash_hex: str) -> str:
    """The signature of a document's fields other than ``signature``."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    mac = hmac.new(signing_key(token_hash_hex), canonical_json(unsigned), hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def seal(document: dict[str, Any], token_hash_hex: str) -> bytes:
    """The bundle file's bytes: the document signed, as gzip JSON (validated first)."""
    signed = {**document, "signature": signature(document, token_hash_hex)}
    EntryBundle.model_validate(signed)
    return gzip.compress(canonical_json(signed), compresslevel=6, mtime=0)


def read(raw: bytes) -> tuple[EntryBundle, dict[str, Any]]:
    """Parse a bundle file's bytes: the model and the document as read (for the signature)."""
    if raw[:2] != b"\x1f\x8b":
        raise BundleError("bad_bundle", "not a gzip file: is this an entry bundle (.gsb)?")
    try:
        inflater = zlib.decompressobj(wbits=31)
        text = inflater.decompress(raw, MAX_BUNDLE_BYTES)
        if inflater.unconsumed_tail:
            raise BundleError("bad_bundle", f"inflates to over {MAX_BUNDLE_BYTES} bytes")
        if not inflater.eof:
            raise BundleError("bad_bundle", "the file is cut short (copied or written partly?)")
        document = json.loads(text)
    except zlib.error as exc:
        raise BundleError("bad_bundle", f"the gzip data is damaged: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        # ValueError: bad UTF-8 or JSON, or an integer past Python's 4300 digits;
        # RecursionError: arrays or objects nested deeper than the parser recurses.
        raise BundleError("bad_bundle", f"not JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(document, dict):
        raise BundleError("bad_bundle", "the document is not a JSON object")
    if document.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            "unsupported_format", f"format {document.get('format')!r} is not {BUNDLE_FORMAT}"
        )
    try:
        bundle = EntryBundle.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BundleError("bad_bundle", f"fields are wrong: {problems[:500]}") from exc
    return bundle, document


def verify(bundle: EntryBundle, document: dict[str, Any], token_hash_hex: str) -> None:
    """Raise ``bad_signature`` unless the gate with this token hash signed the document,
    and ``broken_chain`` unless the entries chain one to the next."""
    expected = signature(document, token_hash_hex)
    if not hmac.compare_digest(expected, bundle.signature):
        raise BundleError(
            "bad_signature",
            f"the signature is not gate {bundle.gate_id}'s: the file was changed, or made"
            " before the gate was enrolled again (export it anew)",
        )
    previous = genesis_hash(bundle.stream_id) if bundle.first_seq == 1 else None
    for entry in bundle.entries:
        if previous is not None and entry.get("prev_hash") != previous:
            raise BundleError(
                "broken_chain", f"entry {entry.get('seq')} does not follow the entry before it"
            )
        previous = entry.get("hash") if isinstance(entry.get("hash"), str) else None
