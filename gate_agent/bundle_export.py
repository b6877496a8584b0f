"""The gate writes its unsynced entries to a signed bundle file, for a USB stick.

When the network is gone for days, a technician runs ``gate-agent export-bundle
PATH``; the centre imports the file with ``gate-sync import-bundle`` under the same
exactly-once rules as uploads. Exporting moves no cursor: the centre has acknowledged
nothing, so the uploader later sends the same entries again and the centre answers
them as repeats. The file is written atomically, so a stick pulled out midway never
holds a half file under the bundle's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate_agent.clock import Clock
from gate_agent.errors import GateError
from gate_agent.ledger import Ledger
from gate_agent.ledger.entries import MAX_PAGE
from gate_agent.ledger.wire import wire_entries
from sync.bundle import BUNDLE_FORMAT, seal

logger = logging.getLogger(__name__)


class ExportRefused(GateError):
    """Nothing was written; ``code``: ``not_enrolled``, ``nothing_to_export``, ``bad_from_seq``."""

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ExportSummary:
    """What a bundle holds."""

    path: Path
    stream_id: str
    first_seq: int
    last_seq: int
    acked_through: int
    size_bytes: int


def bundle_bytes(
    ledger: Ledger, *, token: str | None, clock: Clock, from_seq: int | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The signed bundle of every entry after the centre's cursor (or from ``from_seq``).

    Returns the file's bytes and the unsigned document's header fields (no entries).
    """
    if not token:
        raise ExportRefused(
            "not_enrolled",
            "this gate is not enrolled (no sync token): run `gate-agent sync enrol` first;"
            " the centre verifies a bundle with the gate's token",
        )
    acked = ledger.sync.acked_through()
    last = ledger.last_seq()
    if from_seq is not None and not 1 <= from_seq <= max(last, 1):
        raise ExportRefused(
            "bad_from_seq", f"--from-seq must be between 1 and {last} (the last entry)"
        )
    start = acked + 1 if from_seq is None else from_seq
    if start > last:
        raise ExportRefused(
            "nothing_to_export",
            f"nothing to export: the centre has acknowledged every entry (through {acked});"
            " use --from-seq N to export older entries again",
        )
    entries: list[dict[str, Any]] = []
    after = start - 1
    while after < last:
        page = wire_entries(ledger, after, MAX_PAGE)
        if not page:
            break
        entries.extend(e for e in page if e["seq"] <= last)
        after = page[-1]["seq"]
    header: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "gate_id": ledger.gate_id,
        "stream_id": ledger.stream_id,
        "first_seq": start,
        "last_seq": entries[-1]["seq"],
        "exported_at": clock.now().isoformat(),
        "exported_monotonic_ns": clock.monotonic_ns(),
        "boot_id": clock.boot_id,
        "clock_synced": clock.synced(),
        "acked_through": acked,
    }
    token_hash = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return seal({**header, "entries": entries}, token_hash), header


def export_bundle(
    ledger: Ledger, path: Path, *, token: str | None, clock: Clock, from_seq: int | None = None
) -> ExportSummary:
    """Write the bundle to ``path`` atomically; the uploader's cursor is left as it is."""
    data, header = bundle_bytes(ledger, token=token, clock=clock, from_seq=from_seq)
    write_atomically(path, data)
    logger.info("exported entries %d..%d to %s", header["first_seq"], header["last_seq"], path)
    return ExportSummary(
        path=path,
        stream_id=header["stream_id"],
        first_seq=header["first_seq"],
        last_seq=header["last_seq"],
        acked_through=header["acked_through"],
        size_bytes=len(data),
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync it, rename it over, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:  # some stick file systems refuse to sync a folder
        logger.warning("could not fsync the folder of %s: %s", path, exc)
