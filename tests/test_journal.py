"""Logging to journald's native protocol (gate_agent/journal.py), against a real socket."""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate_agent import commands, journal
from gate_agent.events import GateEvent
from tests.systemd_fakes import DatagramListener, journal_fields, short_dir


@pytest.fixture
def journald() -> Iterator[DatagramListener]:
    with short_dir() as folder:
        sock = DatagramListener(folder / "journal")
        yield sock
        sock.close()


@pytest.fixture
def logger(journald: DatagramListener) -> Iterator[tuple[logging.Logger, journal.JournalHandler]]:
    handler = journal.JournalHandler("gate-agent", socket_path=journald.path)
    log = logging.getLogger("gate_agent.test_journal")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)
        handler.close()


def received(journald: DatagramListener) -> dict[str, str]:
    data = journald.receive()
    assert data is not None, "nothing reached the journal"
    return journal_fields(data)


def test_a_record_goes_as_native_fields(
    logger: tuple[logging.Logger, journal.JournalHandler], journald: DatagramListener
) -> None:
    log, handler = logger
    handler.defaults["GATE_ID"] = "LGQ-012-N"
    log.warning("ledger %s slow", "gate.sqlite3", extra=journal.fields(ENTRY_SEQ=17, PASS_ID=None))
    entry = received(journald)
    assert entry["MESSAGE"] == "ledger gate.sqlite3 slow"
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "gate-agent"
    assert entry["GATE_ID"] == "LGQ-012-N"
    assert entry["ENTRY_SEQ"] == "17"
    assert "PASS_ID" not in entry  # None: left out
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_a_record_goes_as_native_fields"
    assert int(entry["CODE_LINE"]) > 0
    assert entry["LOGGER"] == "gate_agent.test_journal"


def test_a_traceback_goes_in_the_binary_length_form(
    logger: tuple[logging.Logger, journal.JournalHandler], journald: DatagramListener
) -> None:
    log, _ = logger
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        log.exception("request failed")
    data = journald.receive()
    assert data is not None
    assert b"\nMESSAGE\n" in b"\n" + data  # the length form, not MESSAGE=
    entry = journal_fields(data)
    assert entry["PRIORITY"] == "3"
    assert entry["MESSAGE"].startswith("request failed\nTraceback (most recent call last):")
    assert entry["MESSAGE"].endswith("ValueError: line one\nline two")


def test_an_entry_too_big_for_a_datagram_goes_in_a_sealed_memfd(
    logger: tuple[logging.Logger, journal.JournalHandler], journald: DatagramListener
) -> None:
    log, _ = logger
    big = "x" * (4 << 20)  # beyond any datagram the kernel takes
    log.info("%s", big)
    assert received(journald)["MESSAGE"] == big


def test_levels_map_to_syslog_priorities() -> None:
    levels = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
    assert [journal.priority(level) for level in levels] == [2, 3, 4, 6, 7]


def test_field_names_are_made_valid() -> None:
    assert journal.field_name("entry_seq") == "ENTRY_SEQ"
    assert journal.field_name("_PID") == "PID"  # trusted fields are journald's to set
    assert journal.field_name("9LIVES") is None
    assert journal.field_name("a-b.c") == "A_B_C"


def test_without_journald_a_record_goes_to_stderr(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = journal.JournalHandler("gate-agent", socket_path=tmp_path / "gone", fallback=stream)
    log = logging.getLogger("gate_agent.test_journal.fallback")
    log.addHandler(handler)
    try:
        log.error("ledger failed")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert stream.getvalue().startswith("ERROR gate_agent.test_journal.fallback: ledger failed")


def test_stderr_is_the_journal_stream_only_when_device_and_inode_match() -> None:
    with tempfile.TemporaryFile("w") as stream:
        info = Path(f"/proc/self/fd/{stream.fileno()}").stat()
        ours = f"{info.st_dev}:{info.st_ino}"
        assert journal.journal_stream_connected({"JOURNAL_STREAM": ours}, stream)
        assert not journal.journal_stream_connected({"JOURNAL_STREAM": "1:2"}, stream)
        assert not journal.journal_stream_connected({"JOURNAL_STREAM": "junk"}, stream)
        assert not journal.journal_stream_connected({}, stream)


def decision(seq: int | None, **data: object) -> GateEvent:
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    base = {"seq": seq, "direction": "in", "outcome": "deny", "reason": "fever", "lane": "in",
            "alert": True, "pass_id": "P7K2", "name": "张*明", "unit": "3-2-501",
            "household_id": "H0301", "guard": "李保安",
            "manual_identity": "13800138000"}  # fmt: skip
    return GateEvent("decision", at, {**base, **data})


def test_a_decision_line_has_gate_and_entry_in_text_and_fields_and_no_personal_data(
    journald: DatagramListener, caplog: pytest.LogCaptureFixture
) -> None:
    handler = journal.JournalHandler("gate-agent", socket_path=journald.path)
    log = logging.getLogger("gate_agent")
    log.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="gate_agent"):
            commands._log_event(decision(17), "LGQ-012-N", "5f0c-stream")
            commands._log_event(decision(None, outcome="deny", pass_id=None), "LGQ-012-N", "s")
    finally:
        log.removeHandler(handler)
        handler.close()
    first, second = (r.getMessage() for r in caplog.records)
    assert first == "gate LGQ-012-N entry 17: in deny fever pass P7K2 lane in"
    assert second == "gate LGQ-012-N entry - (not recorded): in deny fever pass - lane in"
    entry = received(journald)
    assert {k: entry[k] for k in ("GATE_ID", "STREAM_ID", "ENTRY_SEQ", "OUTCOME", "REASON")} == {
        "GATE_ID": "LGQ-012-N", "STREAM_ID": "5f0c-stream", "ENTRY_SEQ": "17",
        "OUTCOME": "deny", "REASON": "fever",
    }  # fmt: skip
    assert (entry["PASS_ID"], entry["DIRECTION"], entry["ALERT"]) == ("P7K2", "in", "1")
    unrecorded = received(journald)
    assert "ENTRY_SEQ" not in unrecorded and "PASS_ID" not in unrecorded
    for text in (*(str(e) for e in (entry, unrecorded)), first, second):
        for personal in ("张", "3-2-501", "H0301", "李保安", "13800138000"):
            assert personal not in text
