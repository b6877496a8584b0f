"""Ledger verification: SQLite's integrity check, then the hash chain entry by entry."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from gate_agent.errors import LedgerCorrupt, LedgerError
from gate_agent.ledger.db import connect_reader, read_meta, translate
from gate_agent.ledger.records import (
    canonical_json,
    chain_document,
    document_hash,
    genesis_hash,
    personal_digest,
)

logger = logging.getLogger(__name__)

# Enough lines of a failed integrity check to say what is wrong, not to flood a terminal.
_INTEGRITY_LINES = 10


@dataclass(frozen=True)
class LedgerReport:
    """What verification found; ``first_break_seq`` is the first entry number not intact."""

    ok: bool
    entries_checked: int
    integrity: str
    first_break_seq: int | None
    problem: str | None

    def raise_if_broken(self) -> None:
        """Raise ``LedgerCorrupt`` naming the problem unless the ledger verified."""
        if not self.ok:
            raise LedgerCorrupt(self.problem or "ledger verification failed")


@dataclass(frozen=True)
class _Break:
    seq: int
    problem: str


def check_entry(
    row: Mapping[str, object], expected_seq: int, prev_hash: str, stream_id: str, gate_id: str
) -> _Break | None:
    """The first thing wrong with one entry row given what precedes it, or None."""
    seq = row["seq"]
    if seq != expected_seq:
        if expected_seq == 1:
            return _Break(1, f"sequence starts at {seq}, not 1")
        return _Break(expected_seq, f"sequence jumps from {expected_seq - 1} to {seq}")
    if row["stream_id"] != stream_id:
        return _Break(expected_seq, f"entry {seq}: stream_id does not match the ledger's")
    if row["gate_id"] != gate_id:
        return _Break(expected_seq, f"entry {seq}: gate_id does not match the ledger's")
    if row["prev_hash"] != prev_hash:
        before = "the stream's genesis hash" if expected_seq == 1 else f"entry {expected_seq - 1}"
        return _Break(expected_seq, f"entry {seq}: prev_hash does not match {before}")
    if not _content_matches(row):
        return _Break(expected_seq, f"entry {seq}: hash does not match its content")
    if not _personal_matches(row):
        return _Break(expected_seq, f"entry {seq}: personal data does not match its digest")
    return None


def _content_matches(row: Mapping[str, object]) -> bool:
    try:
        doc = chain_document(row)
        # The raw samples are hashed as parsed numbers, so also insist on the one
        # spelling the ledger writes: otherwise "[36.5]" -> "[36.50]" would slip by.
        raw = doc["temperature_raw"]
        if isinstance(raw, str) or canonical_json(raw).decode("utf-8") != row["temperature_raw"]:
            return False
        return document_hash(doc) == row["hash"]
    except (ValueError, TypeError):
        return False


def _personal_matches(row: Mapping[str, object]) -> bool:
    personal, salt = row["personal"], row["personal_salt"]
    if personal is None and salt is None:
        return True  # never had any, or purged: the digest alone stays in the chain
    if not isinstance(personal, str) or not isinstance(salt, bytes):
        return False
    return personal_digest(salt, personal) == row["personal_digest"]


def check_chain(
    rows: Iterable[Mapping[str, object]], stream_id: str, gate_id: str
) -> tuple[int, _Break | None]:
    """Walk entry rows in seq order; return how many are intact and the first break."""
    checked = 0
    prev_hash = genesis_hash(stream_id)
    for row in rows:
        problem = check_entry(row, checked + 1, prev_hash, stream_id, gate_id)
        if problem is not None:
            return checked, problem
        checked += 1
        prev_hash = str(row["hash"])
    return checked, None


def verify_connection(db: Database, path: Path) -> LedgerReport:
    """Verify the ledger behind a database connection, reading only."""
    try:
        lines = [str(row["integrity_check"]) for row in db.query("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        lines = [f"could not run: {exc}"]
    integrity = "; ".join(lines[:_INTEGRITY_LINES]) or "no answer"
    integrity_problem = None if integrity == "ok" else f"integrity check failed: {integrity}"
    try:
        meta = read_meta(db)
        if meta is None:
            raise LedgerError(f"ledger {path} has no meta row: it was never fully created")
        stream_id, gate_id = meta
        # One SELECT streams in seq order from a single consistent snapshot (its statement
        # holds the read snapshot until done); closing() ends it at the first break too.
        with closing(db.query("SELECT * FROM entries ORDER BY seq")) as rows:
            checked, broken = check_chain(rows, stream_id, gate_id)
    except sqlite3.DatabaseError as exc:
        if integrity_problem is None:
            raise translate(exc, path, "read") from exc
        return LedgerReport(False, 0, integrity, None, integrity_problem)
    problem = integrity_problem or (broken.problem if broken else None)
    report = LedgerReport(
        ok=problem is None,
        entries_checked=checked,
        integrity=integrity,
        first_break_seq=broken.seq if broken else None,
        problem=problem,
    )
    if report.ok:
        logger.info("ledger %s verified: %d entries", path, checked)
    else:
        logger.warning("ledger %s failed verification: %s", path, problem)
    return report


def verify_ledger_file(path: Path) -> LedgerReport:
    """Verify a ledger file opened read-only, whichever gate it belongs to.

    Raises ``LedgerError`` when the file is missing, not SQLite or not a ledger; a damaged
    or tampered ledger is a report with ``ok=False``, not an exception.
    """
    db = connect_reader(path)
    try:
        if not {"meta", "entries"} <= set(db.table_names()):
            raise LedgerError(f"{path} is a SQLite database but not a gate ledger")
        return verify_connection(db, path)
    except sqlite3.Error as exc:
        raise translate(exc, path, "verify") from exc
    finally:
        db.close()
