"""Verification against a real file tampered with through raw sqlite3, triggers dropped."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from gate_agent.errors import LedgerCorrupt
from gate_agent.ledger import Ledger, LedgerReport, verify_ledger_file
from gate_agent.ledger.records import build_row, draft_columns, genesis_hash, row_hash

from .helpers import draft, raw_rows, tamper


def _ledger_with(path: Path, count: int, **changes: object) -> str:
    """Write ``count`` entries to a fresh ledger and close it; return its stream id."""
    with Ledger.open(path, gate_id="gate-a") as ledger:
        for n in range(count):
            ledger.append(draft(n, **changes))
        return ledger.stream_id


def _broken(path: Path) -> LedgerReport:
    report = verify_ledger_file(path)
    assert not report.ok
    assert report.integrity == "ok"
    return report


def test_untouched_ledger_verifies(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 5)
    report = verify_ledger_file(ledger_path)
    assert report == LedgerReport(True, 5, "ok", None, None)
    report.raise_if_broken()


def test_empty_ledger_verifies(ledger: Ledger) -> None:
    assert ledger.verify() == LedgerReport(True, 0, "ok", None, None)


def test_verification_never_writes(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 3)
    before = ledger_path.read_bytes()
    assert verify_ledger_file(ledger_path).ok
    assert ledger_path.read_bytes() == before


def test_changed_outcome_is_named(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 8)
    tamper(ledger_path, "UPDATE entries SET outcome = 'deny' WHERE seq = 5")
    report = _broken(ledger_path)
    assert report.first_break_seq == 5
    assert report.entries_checked == 4
    assert report.problem == "entry 5: hash does not match its content"
    with pytest.raises(LedgerCorrupt, match="entry 5"):
        report.raise_if_broken()


def test_changed_temperature_is_named(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 8)
    tamper(ledger_path, "UPDATE entries SET temperature_celsius = 36.2 WHERE seq = 3")
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (
        3,
        "entry 3: hash does not match its content",
    )


def test_respelled_raw_samples_are_caught(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 4)
    tamper(ledger_path, "UPDATE entries SET temperature_raw = '[34.10, 34.2, 34.15]' WHERE seq = 2")
    assert _broken(ledger_path).first_break_seq == 2


def test_deleted_row_in_the_middle_is_a_sequence_jump(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 8)
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 4")
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (4, "sequence jumps from 3 to 5")
    assert report.entries_checked == 3


def test_deleted_first_row(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 3)
    tamper(ledger_path, "DELETE FROM entries WHERE seq = 1")
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (1, "sequence starts at 2, not 1")


def test_deleted_and_renumbered_rows(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 8)
    tamper(
        ledger_path,
        "DELETE FROM entries WHERE seq = 4",
        "UPDATE entries SET seq = 4 WHERE seq = 5",
        "UPDATE entries SET seq = 5 WHERE seq = 6",
        "UPDATE entries SET seq = 6 WHERE seq = 7",
        "UPDATE entries SET seq = 7 WHERE seq = 8",
    )
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (
        4,
        "entry 4: prev_hash does not match entry 3",
    )


def test_swapped_rows(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 6)
    tamper(
        ledger_path,
        "UPDATE entries SET seq = 100 WHERE seq = 3",
        "UPDATE entries SET seq = 3 WHERE seq = 4",
        "UPDATE entries SET seq = 4 WHERE seq = 100",
    )
    report = _broken(ledger_path)
    assert report.first_break_seq == 3


def test_rehashed_entry_breaks_the_next_link(ledger_path: Path) -> None:
    """An attacker who recomputes the changed entry's hash is caught by the next entry."""
    _ledger_with(ledger_path, 8)
    conn = sqlite3.connect(ledger_path)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM entries WHERE seq = 5").fetchone()
    conn.close()
    forged = {**dict(row), "outcome": "deny"}
    tamper(
        ledger_path,
        "UPDATE entries SET outcome = 'deny', hash = ? WHERE seq = 5",
        params=(row_hash(forged),),
    )
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (
        6,
        "entry 6: prev_hash does not match entry 5",
    )


def test_changed_prev_hash_of_the_first_entry(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 2)
    tamper(ledger_path, "UPDATE entries SET prev_hash = 'ab' WHERE seq = 1")
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (
        1,
        "entry 1: prev_hash does not match the stream's genesis hash",
    )


def test_entry_from_another_gate(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 3)
    tamper(ledger_path, "UPDATE entries SET gate_id = 'gate-z' WHERE seq = 2")
    assert _broken(ledger_path).problem == "entry 2: gate_id does not match the ledger's"


def test_changed_personal_data_is_named(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 8, personal={"name": "张三", "phone": "13800000000"})
    tamper(
        ledger_path,
        'UPDATE entries SET personal = \'{"name":"李四","phone":"13800000000"}\' WHERE seq = 5',
    )
    report = _broken(ledger_path)
    assert (report.first_break_seq, report.problem) == (
        5,
        "entry 5: personal data does not match its digest",
    )


def test_purge_keeps_the_ledger_verifiable(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 6, personal={"name": "张三"})
    with Ledger.open(ledger_path, gate_id="gate-a") as ledger:
        assert ledger.purge_personal(ledger.entries()[-1].wall_time) == 5
        assert ledger.verify().ok
    assert raw_rows(ledger_path, "SELECT COUNT(*) FROM entries WHERE personal IS NULL") == [(5,)]
    assert verify_ledger_file(ledger_path).ok


def test_verify_through_the_open_ledger_sees_tampering(ledger: Ledger) -> None:
    for n in range(3):
        ledger.append(draft(n))
    conn = sqlite3.connect(ledger.path)
    conn.execute("DROP TRIGGER entries_append_only_update")
    conn.execute("UPDATE entries SET reason = 'forged' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert ledger.verify().first_break_seq == 2


def test_damaged_file_fails_the_integrity_check(ledger_path: Path) -> None:
    _ledger_with(ledger_path, 300, note="x" * 200)
    # Full leaves of the entries table (page numbers count from 1), wherever the
    # migrations put them.
    leaves = raw_rows(
        ledger_path,
        "SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf' ORDER BY pageno",
    )
    assert len(leaves) >= 3
    data = bytearray(ledger_path.read_bytes())
    page = 4096
    # Scribble over the middle of a few of them.
    for (pageno,) in (leaves[0], leaves[len(leaves) // 2], leaves[-2]):
        start = (int(str(pageno)) - 1) * page + 100
        data[start : start + 2000] = b"\xff" * 2000
    ledger_path.write_bytes(bytes(data))
    report = verify_ledger_file(ledger_path)
    assert not report.ok
    assert report.integrity != "ok"
    assert report.problem is not None


def test_large_ledger_streams(ledger_path: Path) -> None:
    """Many entries, written in bulk for speed, verify through one streaming pass."""
    stream_id = _ledger_with(ledger_path, 0)
    columns, personal = draft_columns(draft(0, personal={"name": "x"}))
    conn = sqlite3.connect(ledger_path)
    names = [row[1] for row in conn.execute("PRAGMA table_info(entries)")]
    sql = (
        f"INSERT INTO entries ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join(':' + name for name in names)})"
    )
    prev = genesis_hash(stream_id)
    total = 10_000
    for seq in range(1, total + 1):
        row = build_row(
            columns,
            personal,
            seq=seq,
            stream_id=stream_id,
            gate_id="gate-a",
            prev_hash=prev,
            salt=secrets.token_bytes(16),
        )
        conn.execute(sql, row)
        prev = str(row["hash"])
    conn.commit()
    conn.close()
    report = verify_ledger_file(ledger_path)
    assert report.ok
    assert report.entries_checked == total
