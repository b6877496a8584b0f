"""Admins pull the synced logs: CSV that Excel opens, XLSX, or JSON lines.

Rows are read in ingest order, page by page, so a pull that runs while gates
upload never skips or repeats a row. Personal data (visitors' names and
phones, returnees' details) is left out: the community workers' ledgers that
need it are their own exports. ``gate-sync pull`` and the server's
``GET /v1/admin/logs`` both make their rows and files here.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from sync.store.streams import EntryRecord, StreamStore

Format = Literal["csv", "xlsx", "jsonl"]
PAGE = 1000
#: Stored entries one page of a filtered pull looks at, at most, before it answers.
MAX_SCAN = 100_000
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson",
}
#: CSV for Excel: UTF-8 with a byte-order mark, or Excel shows Chinese as mojibake.
BOM = "\ufeff"

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


def parse_moment(text: str, *, end_of_day: bool) -> datetime:
    """A date (the whole day, local time) or an ISO time (local when no offset is given)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
    else:
        moment = datetime.combine(day + timedelta(days=end_of_day), time())
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).replace(microsecond=0)


def rows(
    store: StreamStore,
    wanted: PullFilter,
    progress: Callable[[int], None] | None = None,
    *,
    after: int = 0,
) -> Iterator[dict[str, Any]]:
    """Every stored entry after ``after`` the filter keeps, in ingest order, as a flat row."""
    for record, _ in _records(store, after, progress):
        row, when = flat_row(record)
        if wanted.keeps(row, when):
            yield row


def page(
    store: StreamStore, wanted: PullFilter, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` kept rows after the ingest cursor ``after``, and the cursor to go on from.

    The cursor is the ``ingest_id`` of the last entry looked at (kept or not); it
    equals ``after`` only when nothing was stored after it: then the pull is done
    for now. At most ``MAX_SCAN`` entries are looked at, so a narrow filter over a
    large store answers in bounded time (with fewer rows, and a cursor that moved).
    """
    kept: list[dict[str, Any]] = []
    cursor = after
    for record, seen in _records(store, after, None):
        cursor = record.ingest_id
        row, when = flat_row(record)
        if wanted.keeps(row, when):
            kept.append(row)
        if len(kept) >= limit or seen >= MAX_SCAN:
            break
    return kept, cursor


def _records(
    store: StreamStore, after: int, progress: Callable[[int], None] | None
) -> Iterator[tuple[EntryRecord, int]]:
    """Stored entries after ``after`` in ingest order, each with how many were looked at."""
    seen = 0
    while True:
        batch = store.entries_after(after, PAGE)
        if not batch:
            return
        for record in batch:
            seen += 1
            yield record, seen
        after = batch[-1].ingest_id
        if progress is not None:
            progress(seen)


def flat_row(record: EntryRecord) -> tuple[dict[str, Any], datetime | None]:
    """An entry as a row of ``COLUMNS`` (no personal data), and its time."""
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


def filename(fmt: Format, wanted: PullFilter) -> str:
    """A download's file name from the gate, time range and format."""
    parts = ["gate-log", wanted.gate_id or "all"]
    for moment in (wanted.since, wanted.until):
        parts.append(moment.strftime("%Y%m%dT%H%M%SZ") if moment else "")
    return "-".join(p for p in parts if p) + f".{fmt}"


def write(rows_: Iterator[dict[str, Any]], fmt: Format, out: Path | None) -> int:
    """Write the rows in a format; to a file, or (not XLSX) to standard output.

    A file is written under a temporary name and renamed when complete, so a pull
    that fails midway (a network error) never leaves a short file that looks whole.
    """
    if out is None:
        if fmt == "xlsx":
            raise ValueError("XLSX needs --out FILE")
        return _text(rows_, fmt, sys.stdout, bom=False)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if fmt == "xlsx":
            data, count = xlsx_bytes(rows_)
            tmp.write_bytes(data)
        else:
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                count = _text(rows_, fmt, handle, bom=fmt == "csv")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def text_chunks(
    rows_: Iterable[dict[str, Any]], fmt: Format, *, bom: bool = True, rows_per_chunk: int = 500
) -> Iterator[str]:
    """CSV (with a byte-order mark unless ``bom`` is False) or JSON lines, in chunks."""
    buffer = io.StringIO()
    writer = None
    if fmt == "csv":
        if bom:
            buffer.write(BOM)
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
    for count, row in enumerate(rows_, 1):
        if writer is not None:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        else:
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _text(rows_: Iterator[dict[str, Any]], fmt: Format, handle: TextIO, *, bom: bool) -> int:
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows_:
            count += 1
            yield row

    for chunk in text_chunks(counted(), fmt, bom=bom):
        handle.write(chunk)
    return count


def _cell(value: Any) -> Any:
    return "" if value is None else value


def xlsx_bytes(rows_: Iterator[dict[str, Any]]) -> tuple[bytes, int]:
    """An XLSX workbook of the rows (one sheet, "entries"), and how many rows it holds."""
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
    return buffer.getvalue(), count
