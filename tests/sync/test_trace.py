"""Traces and community workers' ledgers: real gate ledgers synced into both stream stores."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from openpyxl import load_workbook

from gate_agent.core.passes import PassFields, PassKind, Scope, mask_name
from gate_agent.ledger import EntryDraft, Ledger
from gate_agent.manual import returnee_personal, visitor_personal
from sync import ledgers, trace
from sync.cli import main
from sync.pull import BOM
from sync.store import EntryQuery, IssuerStore, StreamStore
from sync.store.streams_sqlite_reads import _WHEN
from tests.ledger.helpers import T0, draft
from tests.sync.stream_helpers import (
    NOW,
    STORES,
    batch,
    ledger_entries,
    open_central,
    open_streams,
    store_dsn,
)

PASS_1, PASS_2, PASS_3, PASS_4, PASS_9 = (f"AAAAAA{n}" for n in (1, 2, 3, 4, 9))
VISITOR = visitor_personal(name="李四", phone="13900001111", reason="送药", plate="沪A12345")
RETURNEE = returnee_personal(
    name="赵六",
    phone="13700002222",
    from_place="武汉",
    returned_on=date(2024, 2, 28),
    transport="G1234",
    health="无症状",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def passage(n: int, pass_id: str | None, household: str | None, **changes: Any) -> EntryDraft:
    """The n-th minute's entry of a pass (allowed in unless changed)."""
    return draft(n, pass_id=pass_id, household_id=household, **changes)


GATE_A = [
    passage(0, PASS_1, "hh-1"),
    passage(1, PASS_2, "hh-2"),
    passage(2, PASS_1, "hh-1", direction="out"),
    passage(
        3, PASS_3, "hh-1", outcome="deny", reason="fever", next_step="refer_fever_clinic",
        temperature_celsius=38.6, alert=True,
    ),
    passage(
        4, None, "hh-1", pass_kind=None, manual_identity="visitor", personal=VISITOR,
        guard="王保安", note="visitor registered at the gate",
    ),
    passage(
        5, None, "hh-2", pass_kind=None, manual_identity="returnee", personal=RETURNEE,
        guard="王保安", note="returnee registered at the gate",
    ),
    passage(6, PASS_1, "hh-1"),
    passage(7, PASS_2, "hh-2", direction="out", outcome="deny", reason="quota_used"),
    # A refused scan of a hh-1 pass whose fields the gate could not read.
    passage(8, PASS_9, None, pass_kind=None, outcome="deny", reason="revoked"),
]  # fmt: skip
GATE_B = [
    passage(10, PASS_2, "hh-2", direction="out"),
    passage(11, PASS_4, "hh-3"),
]
GATE_C = [passage(12, PASS_3, "hh-1")]


@dataclass
class Synced:
    streams: StreamStore
    central: IssuerStore
    data_dir: Path
    dsn: str | None


def sync_ledger(
    streams: StreamStore, path: Path, gate_id: str, drafts: list[EntryDraft], **options: Any
) -> None:
    with Ledger.open(path, gate_id=gate_id) as ledger:
        for entry in drafts:
            ledger.append(entry)
        stream_id = ledger.stream_id
    entries = ledger_entries(path, gate_id)
    streams.add_enrol_code(gate_id, f"code-of-{gate_id}", NOW + timedelta(hours=1))
    streams.ingest(gate_id, stream_id, batch(entries, **options), now=NOW, list_versions={})


@pytest.fixture(params=STORES)
def synced(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Synced]:
    dsn = store_dsn(request)
    streams = open_streams(tmp_path, dsn)
    central = open_central(tmp_path, dsn)
    try:
        sync_ledger(streams, tmp_path / "a.sqlite3", "gate-a", GATE_A)
        sync_ledger(streams, tmp_path / "b.sqlite3", "gate-b", GATE_B)
        sync_ledger(streams, tmp_path / "c.sqlite3", "gate-c", GATE_C)
        kid = central.add_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw(), NOW)
        for pass_id in (PASS_1, PASS_3, PASS_9):
            central.add_pass(pass_fields(pass_id, "hh-1"), f"text-{pass_id}", kid, NOW)
        central.add_pass(pass_fields(PASS_2, "hh-2"), f"text-{PASS_2}", kid, NOW)
        yield Synced(streams, central, tmp_path, dsn)
    finally:
        streams.close()
        central.close()


def pass_fields(pass_id: str, household: str) -> PassFields:
    return PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id=household,
        scope=Scope.parse("compound:C1"),
        valid_from=NOW,
        valid_until=NOW + timedelta(days=30),
        display_name=mask_name("王小明"),
        unit="1-1-101",
        exit_quota=None,
    )


def keys(rows: Any) -> list[tuple[str, int]]:
    return [(row["gate_id"], row["seq"]) for row in rows]


def test_gates_in_a_window_by_time_across_gates(synced: Synced) -> None:
    rows = list(trace.gate_rows(synced.streams, ["gate-a"], at(1), at(3)))
    assert keys(rows) == [("gate-a", 2), ("gate-a", 3)]
    both = list(trace.gate_rows(synced.streams, ["gate-b", "gate-a"], at(6), at(10.5)))
    assert keys(both) == [("gate-a", 7), ("gate-a", 8), ("gate-a", 9), ("gate-b", 1)]
    # The window's end is excluded, its start included, to the microsecond.
    edge = list(
        trace.gate_rows(synced.streams, ["gate-a"], at(6), at(6) + timedelta(microseconds=1))
    )
    assert keys(edge) == [("gate-a", 7)]
    assert (
        list(trace.gate_rows(synced.streams, ["gate-a"], at(6) - timedelta(microseconds=1), at(6)))
        == []
    )
    # Trace rows are pull rows: the personal data stays out.
    assert "personal" not in rows[0] and "name" not in rows[0]
    with pytest.raises(ValueError, match="--gate"):
        list(trace.gate_rows(synced.streams, [], at(0), at(1)))


def test_an_unsynced_gate_is_traced_by_its_corrected_time(synced: Synced, tmp_path: Path) -> None:
    # Gate D's clock was off: the centre's corrected time (around NOW) is when it happened.
    sync_ledger(
        synced.streams, tmp_path / "d.sqlite3", "gate-d", [passage(0, PASS_1, "hh-1")],
        clock_synced=False,
    )  # fmt: skip
    around_now = list(trace.gate_rows(synced.streams, ["gate-d"], NOW - timedelta(minutes=1), NOW))
    assert keys(around_now) == [("gate-d", 1)]
    assert list(trace.gate_rows(synced.streams, ["gate-d"], at(-1), at(1))) == []


def test_every_entry_of_a_pass_and_of_a_household(synced: Synced) -> None:
    assert keys(trace.pass_rows(synced.streams, PASS_2)) == [
        ("gate-a", 2), ("gate-a", 8), ("gate-b", 1),
    ]  # fmt: skip
    assert keys(trace.pass_rows(synced.streams, PASS_2, since=at(5), until=at(9))) == [
        ("gate-a", 8)
    ]
    hh1 = list(trace.household_rows(synced.streams, synced.central, "hh-1"))
    # Its passes' entries (PASS_9's names no household), and the visitor it hosted.
    assert keys(hh1) == [
        ("gate-a", 1), ("gate-a", 3), ("gate-a", 4), ("gate-a", 5), ("gate-a", 7),
        ("gate-a", 9), ("gate-c", 1),
    ]  # fmt: skip
    assert [row["manual_identity"] for row in hh1][3] == "visitor"
    assert keys(trace.household_rows(synced.streams, synced.central, "hh-1", until=at(3))) == [
        ("gate-a", 1), ("gate-a", 3),
    ]  # fmt: skip
    # A household with no passes issued is found by the entries naming it.
    assert keys(trace.household_rows(synced.streams, synced.central, "hh-3")) == [("gate-b", 2)]
    assert list(trace.household_rows(synced.streams, synced.central, "hh-none")) == []


def test_who_was_inside_from_the_last_allowed_passage(synced: Synced) -> None:
    compound = ["gate-a", "gate-b"]
    inside = trace.inside_rows(synced.streams, compound, at(8))
    # PASS_1 came back in at 6; PASS_2's refused exit at 7 does not count; PASS_3 was
    # refused, and entered only through another compound's gate.
    assert [(r["pass_id"], r["inside_since"]) for r in inside] == [
        (PASS_1, at(6).isoformat()), (PASS_2, at(1).isoformat()),
    ]  # fmt: skip
    assert inside[0]["household_id"] == "hh-1" and inside[0]["gate_id"] == "gate-a"
    # PASS_2 left by gate B at 10; PASS_4 entered at 11 (a moment is not yet its entry).
    assert [r["pass_id"] for r in trace.inside_rows(synced.streams, compound, at(11))] == [PASS_1]
    later = trace.inside_rows(synced.streams, compound, at(20))
    assert [r["pass_id"] for r in later] == [PASS_1, PASS_4]
    assert trace.inside_rows(synced.streams, compound, at(0)) == []


def test_store_queries_match_exactly_on_gates_passes_and_households(synced: Synced) -> None:
    found = synced.streams.entries_matching(EntryQuery(household_id="hh-2"), 0, 100)
    assert [(r.gate_id, r.seq) for r in found] == [
        ("gate-a", 2),
        ("gate-a", 6),
        ("gate-a", 8),
        ("gate-b", 1),
    ]
    paged = synced.streams.entries_matching(EntryQuery(gate_ids=("gate-a",)), 0, 4)
    assert [r.seq for r in paged] == [1, 2, 3, 4]
    rest = synced.streams.entries_matching(
        EntryQuery(gate_ids=("gate-a",)), paged[-1].ingest_id, 100
    )
    assert [r.seq for r in rest] == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="limit"):
        synced.streams.entries_matching(EntryQuery(), 0, 0)


def read_csv(path: Path) -> list[dict[str, str]]:
    text = path.read_bytes().decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text[1:])))


def cli(synced: Synced, *argv: str) -> int:
    dsn = ["--dsn", synced.dsn] if synced.dsn else []
    return main(["--data-dir", str(synced.data_dir), *argv, *dsn])


def test_trace_commands_write_csv_and_xlsx(synced: Synced, tmp_path: Path) -> None:
    out = tmp_path / "gates.csv"
    since, until = at(0).isoformat(), at(2).isoformat()
    assert (
        cli(
            synced,
            "trace",
            "gates",
            "--gate",
            "gate-a",
            "--since",
            since,
            "--until",
            until,
            "--out",
            str(out),
        )
        == 0
    )
    rows = read_csv(out)
    assert [(r["gate_id"], r["seq"], r["pass_id"]) for r in rows] == [
        ("gate-a", "1", PASS_1), ("gate-a", "2", PASS_2),
    ]  # fmt: skip
    xlsx = tmp_path / "pass.xlsx"
    assert cli(synced, "trace", "pass", PASS_2, "--out", str(xlsx)) == 0
    sheet = load_workbook(xlsx).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:3] == ("gate_id", "stream_id", "seq")
    assert [(v[0], v[2]) for v in values[1:]] == [("gate-a", 2), ("gate-a", 8), ("gate-b", 1)]
    household = tmp_path / "hh.csv"
    assert cli(synced, "trace", "household", "hh-3", "--out", str(household)) == 0
    assert [r["pass_id"] for r in read_csv(household)] == [PASS_4]
    inside = tmp_path / "inside.csv"
    argv = ["trace", "inside", "--compound", "C1", "--gate", "gate-a", "--gate", "gate-b"]
    assert cli(synced, *argv, "--at", at(8).isoformat(), "--out", str(inside)) == 0
    assert [(r["pass_id"], r["inside_since"]) for r in read_csv(inside)] == [
        (PASS_1, at(6).isoformat()), (PASS_2, at(1).isoformat()),
    ]  # fmt: skip
    inside_xlsx = tmp_path / "inside.xlsx"
    odd = "北区/一期:[东门]*" + "x" * 40  # not a sheet name as it stands
    assert (
        cli(synced, *argv[:3], odd, *argv[4:], "--at", at(8).isoformat(), "--out", str(inside_xlsx))
        == 0
    )
    book = load_workbook(inside_xlsx)
    assert book.sheetnames == ["inside-北区_一期__东门__xxxxxxxxxxxxx"]
    assert [row[0] for row in sheet_rows(inside_xlsx)] == ["pass_id", PASS_1, PASS_2]
    bad = tmp_path / "bad.csv"
    assert (
        cli(synced, "trace", "pass", PASS_2, "--since", until, "--until", since, "--out", str(bad))
        == 1
    )
    assert not bad.exists()


def sheet_rows(path: Path) -> list[tuple[Any, ...]]:
    book = load_workbook(path)
    sheet = book.active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_ledgers_of_returnees_visitors_and_fevers_carry_personal_data(
    synced: Synced, tmp_path: Path
) -> None:
    out = tmp_path / "returnees.xlsx"
    assert cli(synced, "ledgers", "returnees", "--out", str(out)) == 0
    rows = sheet_rows(out)
    assert rows[0][:4] == ("登记时间", "门岗", "户号", "姓名")
    assert rows[1][:4] == ("registered at", "gate", "household", "name")
    assert len(rows) == 3
    returnee = dict(
        zip(
            ledgers.ledger_table("returnees", synced.streams, synced.central).columns,
            rows[2],
            strict=True,
        )
    )
    assert returnee["time"] == local(at(5))
    assert (returnee["name"], returnee["phone"], returnee["from_place"]) == (
        "赵六",
        "13700002222",
        "武汉",
    )
    assert (returnee["returned_on"], returnee["transport"], returnee["household_id"]) == (
        "2024-02-28",
        "G1234",
        "hh-2",
    )
    assert returnee["reason"] == "ok" and returnee["guard"] == "王保安"

    table = ledgers.ledger_table("visitors", synced.streams, synced.central)
    visitors = list(table.rows)
    assert len(visitors) == 1
    visitor = visitors[0]
    assert (visitor["name"], visitor["visit_reason"], visitor["plate"]) == (
        "李四",
        "送药",
        "沪A12345",
    )
    assert (visitor["household_id"], visitor["reason"]) == ("hh-1", "ok")

    fevers = list(ledgers.ledger_table("fevers", synced.streams, synced.central).rows)
    assert [(f["gate_id"], f["pass_id"], f["temperature_celsius"]) for f in fevers] == [
        ("gate-a", PASS_3, 38.6)
    ]
    assert fevers[0]["next_step"] == "refer_fever_clinic"
    # A window leaves out what happened outside it.
    window = ledgers.ledger_table("returnees", synced.streams, synced.central, at(0), at(5))
    assert list(window.rows) == []


def test_a_purged_registration_shows_as_purged(synced: Synced, tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    with Ledger.open(path, gate_id="gate-e") as ledger:
        ledger.append(replace(GATE_A[4], wall_time=at(30)))
        stream_id = ledger.stream_id
    entries = ledger_entries(path, "gate-e")
    synced.streams.add_enrol_code("gate-e", "code-of-gate-e", NOW + timedelta(hours=1))
    purged = [{**e, "personal": None, "personal_salt": None} for e in entries]
    synced.streams.ingest("gate-e", stream_id, batch(purged), now=NOW, list_versions={})
    rows = list(ledgers.ledger_table("visitors", synced.streams, synced.central, at(29)).rows)
    assert len(rows) == 1
    assert rows[0]["name"] is None and rows[0]["note"].endswith(ledgers.PURGED)


def test_isolations_ledger_keeps_the_history(synced: Synced, tmp_path: Path) -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    synced.central.isolate("hh-1", start, start + timedelta(days=14), "密接", NOW)
    synced.central.isolate("hh-2", start, start + timedelta(days=7), "返乡", NOW)
    synced.central.lift_isolation("hh-2", start + timedelta(days=3))
    synced.central.isolate(
        "hh-3", start - timedelta(days=30), start - timedelta(days=16), "旧", NOW
    )
    out = tmp_path / "iso.xlsx"
    assert cli(synced, "ledgers", "isolations", "--since", "2026-03-01", "--out", str(out)) == 0
    rows = sheet_rows(out)
    assert rows[0] == ("户号", "开始", "结束", "提前解除", "备注", "登记时间")
    assert [(r[0], r[3], r[4]) for r in rows[2:]] == [
        ("hh-1", None, "密接"),
        ("hh-2", local(start + timedelta(days=3)), "返乡"),
    ]
    assert rows[2][1:3] == (local(start), local(start + timedelta(days=14)))
    everything = list(ledgers.ledger_table("isolations", synced.streams, synced.central).rows)
    assert [row["household_id"] for row in everything] == ["hh-3", "hh-1", "hh-2"]
    assert cli(synced, "ledgers", "isolations", "--out", str(tmp_path / "iso.csv")) == 1


def test_the_personal_data_stays_out_of_the_pulled_log(synced: Synced) -> None:
    from sync.pull import PullFilter, rows

    text = json.dumps(list(rows(synced.streams, PullFilter())), ensure_ascii=False)
    assert "李四" not in text and "赵六" not in text


def plan(store: Any, where: str, *params: object) -> str:
    """SQLite's plan for a query of entries (the store's reader, as entries_matching uses)."""
    query = f"EXPLAIN QUERY PLAN SELECT ingest_id FROM entries WHERE ingest_id > 0 AND {where}"  # noqa: S608 - the test's own SQL
    return str(store._reader.execute(query, params).fetchall())


def test_a_sqlite_database_made_before_the_trace_indexes_gains_them(tmp_path: Path) -> None:
    import sqlite3

    from sync.store import SqliteStreamStore

    path = tmp_path / "central.sqlite3"
    with SqliteStreamStore(path) as store:
        sync_ledger(store, tmp_path / "a.sqlite3", "gate-a", GATE_A[:3])
    trace_indexes = ("entries_gate_time", "entries_time", "entries_pass", "entries_household")
    conn = sqlite3.connect(path)
    for name in trace_indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.commit()
    conn.close()
    with SqliteStreamStore(path) as store:
        assert keys(trace.pass_rows(store, PASS_1)) == [("gate-a", 1), ("gate-a", 3)]
        # Queries as entries_matching writes them are answered from the indexes.
        by_pass = plan(store, "json_extract(content, '$.pass_id') IN (?)", PASS_1)
        by_gate = plan(store, f"gate_id IN (?) AND {_WHEN} >= ? AND {_WHEN} < ?", "gate-a", 1, 2)
    assert "entries_pass" in by_pass
    assert "entries_gate_time" in by_gate
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert set(trace_indexes) <= names


def test_who_was_inside_a_compound_by_its_placed_gates(
    synced: Synced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inside.csv"
    argv = ["trace", "inside", "--compound", "C1", "--at", at(8).isoformat(), "--out", str(out)]
    assert cli(synced, *argv) == 1  # no gate is placed in C1 yet: said, nothing written
    assert "no gate is placed in compound C1" in capsys.readouterr().err
    assert not out.exists()
    for gate in ("gate-a", "gate-b"):
        assert cli(synced, "gates", "place", gate, "--compound", "C1", "--community", "M1") == 0
    assert cli(synced, "gates", "place", "gate-c", "--compound", "C2") == 0
    assert cli(synced, *argv) == 0
    by_hand = tmp_path / "by-hand.csv"
    hand = ["--gate", "gate-a", "--gate", "gate-b", "--out", str(by_hand)]
    assert cli(synced, *argv[:-2], *hand) == 0
    assert read_csv(out) == read_csv(by_hand)
    assert [(r["pass_id"], r["inside_since"]) for r in read_csv(out)] == [
        (PASS_1, at(6).isoformat()), (PASS_2, at(1).isoformat()),
    ]  # fmt: skip
