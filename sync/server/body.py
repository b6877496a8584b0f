"""Reading a batch request body: bounded, gunzipped, parsed into a ``Batch``."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator

from pydantic import ValidationError

from sync.protocol import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Batch

#: A batch of 500 entries is far below this once inflated; more is a gzip bomb.
MAX_INFLATED_BYTES = 16 * 1024 * 1024


class BodyError(Exception):
    """A request body the server refuses: ``status`` 413, 415 or 422 and a stable code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        """Carry the HTTP status, the error code and a short explanation."""
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


async def read_limited(chunks: AsyncIterator[bytes], limit: int = MAX_BATCH_BYTES) -> bytes:
    """The whole body, or 413 as soon as it grows past ``limit`` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyError(413, "too_large", f"the body is over {limit} bytes compressed")
    return bytes(body)


def inflate(body: bytes, encoding: str | None) -> bytes:
    """The body without its content encoding (gzip, or none)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise BodyError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise BodyError(422, "bad_gzip", f"the body is not valid gzip: {exc}") from exc
    if inflater.unconsumed_tail:
        raise BodyError(413, "too_large", f"the body inflates past {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise BodyError(422, "bad_gzip", "the gzip body is cut short")
    return data


def parse_batch(data: bytes) -> Batch:
    """A ``Batch`` from JSON text; 413 for too many entries, 422 for anything malformed."""
    try:
        raw = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(422, "bad_json", f"the body is not JSON: {exc}") from exc
    entries = raw.get("entries") if isinstance(raw, dict) else None
    if isinstance(entries, list) and len(entries) > MAX_BATCH_ENTRIES:
        raise BodyError(413, "too_many_entries", f"{len(entries)} entries in one batch")
    if isinstance(entries, list) and not all(isinstance(e, dict) for e in entries):
        raise BodyError(422, "bad_batch", "every entry must be a JSON object")
    try:
        return Batch.model_validate(raw)
    except ValidationError as exc:
        raise BodyError(422, "bad_batch", _first_error(exc)) from exc


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
