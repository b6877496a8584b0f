"""Admins pull the synced logs: CSV that Excel opens, XLSX, or JSON lines.

Rows are read in ingest order, page by page, so a pull that runs while gates
upload never skips or repeats a row. Personal data (visitors' names and
phones, returnees' details) is left out: the community workers' ledgers that
need it are their own exports.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from sync.store.streams import EntryRecord, StreamStore

Format = Literal["csv", "xlsx", "jsonl"]
PAGE = 1000

#: The columns of a pulled log, in order; names as admins see them in Excel.
COLUMNS = (
    "gate_id", "stream_id", "seq", "time", "recorded_time", "clock_synced", "direction",
    "outcome", "reason", "pass_id", "pass_kind", "household_id", "manual_identity",
    "temperature_celsius", "temperature_source", "guard", "alert", "note", "flagged",
    "problem",
)  # fmt: skip


@dataclass(frozen=True)
class PullFilter:
    """Which rows to pull: a time range (on the corrected time) and optionally one gate."""

    since: datetime | None = None
    until: datetime | None = None
    gate_id: str | None = None

    def keeps(self, row: dict[str, Any], when: datetime | None) -> bool:
        """Whether a row is within the filter."""
        if self.gate_id and row["gate_id"] != self.gate_id:
            return False
        if when is None:
            return self.since is None and self.until is None
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


def rows(
    store: StreamStore, wanted: PullFilter, progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Every stored entry the filter keeps, in ingest order, as a flat row."""
    after, seen = 0, 0
    while True:
        page = store.entries_after(after, PAGE)
        if not page:
            return
        for record in page:
            row, when = _flat(record)
            if wanted.keeps(row, when):
                yield row
        after = page[-1].ingest_id
        seen += len(page)
        if progress is not None:
            progress(seen)


def _flat(record: EntryRecord) -> tuple[dict[str, Any], datetime | None]:
    content = record.content
    recorded = content.get("wall_time")
    when = record.corrected_time or (_time(recorded) if isinstance(recorded, str) else None)
    row = {
        "gate_id": record.gate_id,
        "stream_id": record.stream_id,
        "seq": record.seq,
        "time": when.isoformat() if when else "",
        "recorded_time": recorded or "",
        # The wire carries SQLite's 0/1; admins read yes/no columns as true/false.
        "clock_synced": _flag(content.get("clock_synced")),
        "alert": _flag(content.get("alert")),
        "flagged": record.flagged,
        "problem": record.problem or "",
    }
    for column in COLUMNS:
        if column not in row:
            row[column] = content.get(column)
    return {c: row[c] for c in COLUMNS}, when


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def write(rows_: Iterator[dict[str, Any]], fmt: Format, out: Path | None) -> int:
    """Write the rows in a format; to a file, or (not XLSX) to standard output."""
    if fmt == "xlsx":
        if out is None:
            raise ValueError("XLSX needs --out FILE")
        return _xlsx(rows_, out)
    if out is None:
        return _text(rows_, fmt, sys.stdout)
    # CSV for Excel: UTF-8 with a byte-order mark, or Excel shows Chinese as mojibake.
    encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
    with out.open("w", encoding=encoding, newline="") as handle:
        return _text(rows_, fmt, handle)


def _text(rows_: Iterator[dict[str, Any]], fmt: Format, handle: TextIO) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in rows_:
            writer.writerow({k: _cell(v) for k, v in row.items()})
            count += 1
    else:
        for row in rows_:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _xlsx(rows_: Iterator[dict[str, Any]], out: Path) -> int:
    from openpyxl import Workbook  # noqa: PLC0415 - only XLSX pulls need it

    book = Workbook(write_only=True)
    sheet = book.create_sheet("entries")
    sheet.append(list(COLUMNS))
    count = 0
    for row in rows_:
        sheet.append([_cell(row[c]) for c in COLUMNS])
        count += 1
    buffer = io.BytesIO()
    book.save(buffer)
    out.write_bytes(buffer.getvalue())
    return count
