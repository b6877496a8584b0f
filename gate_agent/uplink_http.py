"""The uplink's HTTP pieces: batch bodies, backoff, Retry-After, enrolment and the token file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from gate_agent.core.policy import GateIdentity
from gate_agent.errors import GateError

logger = logging.getLogger(__name__)

TOKEN_FILE = "sync.token"
ENROL_PATH = "/v1/gates/enrol"
RETRY_AFTER_MAX_SECONDS = 3600.0  # a server asking for more is not believed
USER_AGENT = "gate-agent-uplink/1"


class UplinkError(GateError):
    """Enrolment failed, or the sync token file cannot be used."""


@dataclass(frozen=True)
class Enrolment:
    """What the centre gives a gate that enrols: its token, and the key that signs lists."""

    token: str
    centre_kid: str
    centre_public_key: bytes  # raw Ed25519, 32 bytes


def lists_path(gate_id: str, held: Mapping[str, int]) -> str:
    """Where a gate asks for the lists newer than those it holds."""
    have = ",".join(f"{name}:{version}" for name, version in sorted(held.items()))
    return f"/v1/gates/{gate_id}/lists?have={have}"


def batch_path(gate_id: str, stream_id: str) -> str:
    """Where a stream's batches are posted."""
    return f"/v1/gates/{gate_id}/streams/{stream_id}/batches"


def gzip_json(text: str) -> bytes:
    """A JSON text as a gzip body; mtime 0 so equal batches are equal bytes."""
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def full_jitter(attempt: int, *, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """The delay before retry number ``attempt`` (0 first): uniform in [0, min(cap, base·2^n)]."""
    # Full jitter spreads a fleet of gates that lost the centre together, so they do not
    # all come back in the same second (AWS architecture blog, "Exponential Backoff").
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 62))
    return rand() * ceiling


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(0.0, seconds), RETRY_AFTER_MAX_SECONDS)


def make_client(
    base_url: str, *, transport: httpx.BaseTransport | None, timeout_s: float
) -> httpx.Client:
    """An HTTP client for the centre; ``transport`` lets tests answer from a function."""
    return httpx.Client(
        base_url=base_url,
        transport=transport,
        timeout=timeout_s,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def enrol(
    base_url: str,
    gate_id: str,
    code: str,
    *,
    place: GateIdentity | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 30.0,
) -> Enrolment:
    """Trade a one-time enrolment code for the gate's token and the centre's list key.

    ``place`` is where the gate's config says it is; the centre records it, or refuses
    (409 ``wrong_place``) when it holds another place for the gate.
    """
    body = {"gate_id": gate_id, "code": code}
    if place is not None:
        body.update(compound_id=place.compound_id, community_id=place.community_id)
    with make_client(base_url, transport=transport, timeout_s=timeout_s) as client:
        try:
            response = client.post(ENROL_PATH, json=body)
        except httpx.HTTPError as exc:
            raise UplinkError(f"could not reach the centre at {base_url}: {exc}") from exc
    if response.status_code == httpx.codes.CONFLICT:
        raise UplinkError(
            f"the centre places gate {gate_id!r} elsewhere (wrong_place): check [gate]"
            f" compound_id and community_id in the config: {response.text[:300]}"
        )
    if response.status_code != httpx.codes.OK:
        raise UplinkError(
            f"the centre refused enrolment of gate {gate_id!r}"
            f" (HTTP {response.status_code}): {response.text[:200]}"
        )
    try:
        reply = response.json()
        token = reply["token"]
        kid = reply["centre_key"]["kid"]
        public = base64.b64decode(reply["centre_key"]["public_key"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise UplinkError("the centre's enrolment reply lacks the token or the centre key") from exc
    if not isinstance(token, str) or not token or not token.isprintable():
        raise UplinkError("the centre's enrolment reply carries no usable token")
    if not isinstance(kid, str) or len(kid) != 8 or len(public) != 32:
        raise UplinkError("the centre's enrolment reply carries no usable centre key")
    logger.info("gate %s enrolled with %s (centre key %s)", gate_id, base_url, kid)
    return Enrolment(token, kid, public)


def token_path(data_dir: Path) -> Path:
    """Where the gate keeps its sync token."""
    return Path(data_dir) / TOKEN_FILE


def save_token(path: Path, token: str) -> None:
    """Write the token atomically with mode 0600 (a crash leaves the old file or the new)."""
    if not token or "\n" in token:
        raise ValueError("a token is one non-empty line")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise UplinkError(f"could not write the sync token {path}: {exc}") from exc


def load_token(path: Path) -> str | None:
    """The stored token, None when the gate was never enrolled; refused if others can read it."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UplinkError(f"sync token {path} is readable by others: chmod 600 it")
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UplinkError(f"could not read the sync token {path}: {exc}") from exc
    return token or None
