"""Tracing: who passed given gates in a time window, every entry of a pass or household,
who was inside a compound at a moment; as CSV (with a BOM, for Excel) or XLSX.

Entries are found through the stream store's indexes (``StreamStore.entries_matching``)
and ordered by their time: the centre's corrected time when the gate's clock could not
be trusted, else the gate's own. Rows are those of ``gate-sync pull`` (no personal
data): a trace says where a pass went, not who the visitor was.

Entries name a gate, not a compound: a compound is the gates placed in it
(``StreamStore.compound_gates``), or a list of gates given by hand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sync.pull import BOM, COLUMNS, flat_row
from sync.store.central import IssuerStore
from sync.store.streams import EntryQuery, EntryRecord, StreamStore, entry_time

TableFormat = Literal["csv", "xlsx"]
PAGE = 1000

#: Columns of ``trace inside``: each pass whose last passage was in, and since when.
INSIDE_COLUMNS = (
    "pass_id", "pass_kind", "household_id", "inside_since", "gate_id", "stream_id", "seq",
)  # fmt: skip


@dataclass(frozen=True)
class Table:
    """Rows to write: the column keys, optional header rows above them, the rows."""

    columns: Sequence[str]
    rows: Iterable[dict[str, Any]]
    headers: Sequence[Sequence[str]] = ()
    sheet: str = "entries"


def matching(store: StreamStore, query: EntryQuery) -> list[tuple[datetime | None, EntryRecord]]:
    """Every entry the query matches, with its time, in time order.

    Entries without a readable time are kept only when the query has no window
    (then last, in ingest order).
    """
    found: list[tuple[datetime | None, EntryRecord]] = []
    after = 0
    windowed = query.since is not None or query.until is not None
    while batch := store.entries_matching(query, after, PAGE):
        after = batch[-1].ingest_id
        for record in batch:
            when = entry_time(record)
            if when is None:
                if not windowed:
                    found.append((None, record))
                continue
            if (query.since is None or when >= query.since) and (
                query.until is None or when < query.until
            ):
                found.append((when, record))
    timed = sorted(
        ((w, r) for w, r in found if w is not None),
        key=lambda pair: (pair[0], pair[1].gate_id, pair[1].stream_id, pair[1].seq),
    )
    return [*timed, *((w, r) for w, r in found if w is None)]


def gate_rows(
    store: StreamStore, gate_ids: Sequence[str], since: datetime, until: datetime
) -> Iterator[dict[str, Any]]:
    """Every entry at these gates in ``[since, until)``, by time, as pull rows."""
    if not gate_ids:
        raise ValueError("give at least one --gate")
    query = EntryQuery(gate_ids=tuple(gate_ids), since=since, until=until)
    return _rows(matching(store, query))


def pass_rows(
    store: StreamStore, pass_id: str, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Every entry of one pass, by time, as pull rows."""
    return _rows(matching(store, EntryQuery(pass_ids=(pass_id,), since=since, until=until)))


def household_rows(
    store: StreamStore,
    issuer: IssuerStore,
    household_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Every entry of any pass ever issued to a household, or naming it, by time."""
    passes = tuple(sorted({row.pass_id for row in issuer.household_passes([household_id])}))
    query = EntryQuery(pass_ids=passes, household_id=household_id, since=since, until=until)
    return _rows(matching(store, query))


def inside_rows(store: StreamStore, gate_ids: Sequence[str], at: datetime) -> list[dict[str, Any]]:
    """Passes inside the compound whose gates these are at ``at``, by pass id.

    A pass is inside when its last allowed passage through these gates before ``at``
    was in. Passes only: visitors and returnees registered at the desk have no pass,
    and their leaving is not recorded.
    """
    if not gate_ids:
        raise ValueError("give the compound's gates (--gate, once per gate)")
    last: dict[str, tuple[datetime, EntryRecord]] = {}
    for when, record in matching(store, EntryQuery(gate_ids=tuple(gate_ids), until=at)):
        content = record.content
        pass_id = content.get("pass_id")
        if (
            when is not None
            and isinstance(pass_id, str)
            and pass_id
            and content.get("outcome") == "allow"
            and content.get("direction") in ("in", "out")
        ):
            last[pass_id] = (when, record)  # time order: the latest wins
    inside = []
    for pass_id, (when, record) in sorted(last.items()):
        if record.content.get("direction") != "in":
            continue
        inside.append(
            {
                "pass_id": pass_id,
                "pass_kind": record.content.get("pass_kind"),
                "household_id": record.content.get("household_id"),
                "inside_since": when.isoformat(),
                "gate_id": record.gate_id,
                "stream_id": record.stream_id,
                "seq": record.seq,
            }
        )
    return inside


def _rows(found: Iterable[tuple[datetime | None, EntryRecord]]) -> Iterator[dict[str, Any]]:
    for _, record in found:
        yield flat_row(record)[0]


def trace_table(rows: Iterable[dict[str, Any]]) -> Table:
    """Trace rows as a table with the pull's columns."""
    return Table(COLUMNS, rows)


def write_table(table: Table, fmt: TableFormat, out: Path) -> int:
    """Write a table to a file (under a temporary name, renamed when whole); its row count."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        data, count = xlsx_table(table) if fmt == "xlsx" else csv_table(table)
        tmp.write_bytes(data)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def csv_table(table: Table) -> tuple[bytes, int]:
    """The table as UTF-8 CSV with a byte-order mark (Excel reads Chinese right)."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    for header in table.headers or [table.columns]:
        writer.writerow(header)
    count = 0
    for row in table.rows:
        writer.writerow([_cell(row.get(c)) for c in table.columns])
        count += 1
    return buffer.getvalue().encode("utf-8"), count


def xlsx_table(table: Table) -> tuple[bytes, int]:
    """The table as an XLSX workbook of one sheet, its header rows frozen."""
    from openpyxl import Workbook  # noqa: PLC0415 - only XLSX exports need it

    book = Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook has one sheet
    sheet.title = table.sheet
    headers = table.headers or [table.columns]
    for header in headers:
        sheet.append(list(header))
    count = 0
    for row in table.rows:
        sheet.append([_cell(row.get(c)) for c in table.columns])
        count += 1
    sheet.freeze_panes = sheet.cell(row=len(headers) + 1, column=1)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue(), count


def _cell(value: Any) -> Any:
    return "" if value is None else value
