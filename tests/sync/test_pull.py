"""`gate-sync pull`: the synced logs as CSV that Excel opens, XLSX and JSON lines."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sync import cli
from sync.pull import COLUMNS
from sync.server.auth import secret_hash
from tests.sync.stream_helpers import GATE, NOW, batch, centre, fill_ledger, ledger_entries


def synced(tmp_path: Path, count: int = 12) -> Path:
    """A central data folder holding one gate's stream of ``count`` entries."""
    data = tmp_path / "central"
    ledger = tmp_path / "gate" / "ledger.sqlite3"
    stream = fill_ledger(ledger, count)
    with centre(data) as opened:
        opened.streams.add_enrol_code(GATE, secret_hash("code"), NOW + timedelta(hours=1))
        assert opened.streams.enrol(GATE, secret_hash("code"), secret_hash("token"), NOW)
        opened.streams.ingest(GATE, stream, batch(ledger_entries(ledger)), now=NOW,
                              list_versions={})  # fmt: skip
    return data


def pull(data: Path, *args: str) -> int:
    return cli.main(["--data-dir", str(data), "pull", *args])


def test_csv_carries_a_byte_order_mark_and_every_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = synced(tmp_path)
    out = tmp_path / "log.csv"
    assert pull(data, "--format", "csv", "--out", str(out)) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 Chinese only with it
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [int(r["seq"]) for r in rows] == list(range(1, 13))
    assert tuple(rows[0]) == COLUMNS
    assert "12 entries pulled" in capsys.readouterr().err
    assert "13800000000" not in raw.decode("utf-8-sig")  # personal data stays out of the log


def test_xlsx_and_jsonl_hold_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = synced(tmp_path)
    book = tmp_path / "log.xlsx"
    assert pull(data, "--format", "xlsx", "--out", str(book)) == 0
    workbook = load_workbook(book, read_only=True)
    try:  # a read-only workbook keeps its file open until closed
        table = [list(r) for r in workbook["entries"].iter_rows(values_only=True)]
    finally:
        workbook.close()
    assert tuple(table[0]) == COLUMNS
    assert [r[COLUMNS.index("seq")] for r in table[1:]] == list(range(1, 13))
    capsys.readouterr()
    assert pull(data, "--format", "jsonl") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, 13))
    assert {type(r["clock_synced"]) for r in lines} == {bool}
    assert {type(r["alert"]) for r in lines} == {bool}
    assert pull(data, "--format", "xlsx") == 1  # XLSX needs a file


def test_filters_by_gate_and_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = synced(tmp_path)
    assert pull(data, "--format", "jsonl", "--gate", "ANOTHER") == 0
    assert capsys.readouterr().out == ""
    assert pull(data, "--format", "jsonl", "--since", "2000-01-01", "--until", "2099-12-31") == 0
    assert len(capsys.readouterr().out.splitlines()) == 12
    assert pull(data, "--format", "jsonl", "--until", "2000-01-01") == 0
    assert capsys.readouterr().out == ""
