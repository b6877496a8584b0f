"""The admin page's data endpoints on a real uvicorn: statistics, traces, ledgers."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from sync.pull import COLUMNS
from sync.server import stats_api
from sync.server.app import create_app
from sync.trace import INSIDE_COLUMNS
from tests.pg import PostgresServer
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    STORES,
    Centre,
    TickingClock,
    centre,
    serving,
)
from tests.sync.test_stats import BASE, GATE_A, GATE_B, GATE_D, RECEIVED, sync_gate

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: The stats window of tests/sync/test_stats.py, as Shanghai wall-clock times.
SINCE, UNTIL = "2024-03-01T23:30", "2024-03-02T00:45"


@dataclass
class Server:
    centre: Centre
    client: httpx.Client

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=ADMIN)

    def refused(self, path: str, code: str, status: int = 422, **params: Any) -> None:
        reply = self.get(path, **params)
        assert (reply.status_code, reply.json()["error"]) == (status, code), reply.text


@pytest.fixture(scope="module", params=STORES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # One server per store for the module: no test here changes what is stored.
    tmp_path = tmp_path_factory.mktemp("stats-api")
    postgres: PostgresServer | None = None
    schema, dsn = None, None
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres_server")
        schema, dsn = postgres.fresh_schema()
    try:
        with centre(tmp_path / "central", dsn) as opened:
            sync_gate(opened.streams, tmp_path / "a.sqlite3", "gate-a", GATE_A)
            sync_gate(opened.streams, tmp_path / "b.sqlite3", "gate-b", GATE_B)
            sync_gate(opened.streams, tmp_path / "d.sqlite3", "gate-d", GATE_D, clock_synced=False)
            app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, TickingClock(RECEIVED))
            with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
                yield Server(opened, client)
    finally:
        if postgres is not None and schema is not None:
            postgres.drop_schema(schema)


ROUTES = [
    "/v1/admin/stats",
    "/v1/admin/trace/gates?gate=gate-a&since=2024-03-01&until=2024-03-02",
    "/v1/admin/trace/pass/P1",
    "/v1/admin/trace/household/hh-0?format=csv",
    "/v1/admin/trace/inside?gate=gate-a",
    "/v1/admin/ledgers/fevers.xlsx",
]


def test_every_route_needs_the_admin_token(server: Server) -> None:
    for route in ROUTES:
        for headers in ({}, {"Authorization": "Bearer not-the-admin-token"}):
            reply = server.client.get(route, headers=headers)
            assert reply.status_code == 401, route
            assert reply.json()["error"] == "unauthorized"
            assert reply.headers["WWW-Authenticate"] == "Bearer"
        assert server.client.get(route, headers=ADMIN).status_code == 200, route


def test_stats_in_shanghai_time_by_default(server: Server) -> None:
    reply = server.get("/v1/admin/stats", since=SINCE, until=UNTIL)
    assert reply.status_code == 200
    stats = reply.json()
    assert stats["tz"] == "Asia/Shanghai"
    assert stats["since"] == "2024-03-01T23:30:00+08:00"
    assert stats["total"] == 11
    assert [(r["gate_id"], r["hour"][11:13], r["in"], r["out"]) for r in stats["hourly"]] == [
        ("gate-a", "23", 2, 1), ("gate-a", "00", 4, 1), ("gate-b", "23", 1, 0),
        ("gate-b", "00", 0, 1), ("gate-d", "00", 1, 0),
    ]  # fmt: skip
    assert [r["reason"] for r in stats["refusals"]] == [
        "fever", "quota_used", "recheck_temperature", "revoked",
    ]  # fmt: skip
    assert stats["fevers"] == [
        {"day": "2024-03-01", "fever": 1, "recheck": 0},
        {"day": "2024-03-02", "fever": 0, "recheck": 1},
    ]
    # Some gates (repeatable), another zone, an offset given in the time itself (its '+'
    # unescaped in the URL arrives as a space, and is read as meant).
    reply = server.client.get(
        "/v1/admin/stats?gate=gate-b&gate=gate-d&tz=UTC"
        "&since=2024-03-01T15:30:00+00:00&until=2024-03-01T16:45:00Z",
        headers=ADMIN,
    )
    utc = reply.json()
    assert utc["gates"] == ["gate-b", "gate-d"]
    assert utc["total"] == 3
    assert utc["days"] == ["2024-03-01"]


def test_stats_default_to_today(server: Server) -> None:
    # The server's clock reads RECEIVED: 2 March, 00:30 in Shanghai.
    stats = server.get("/v1/admin/stats").json()
    assert stats["days"] == ["2024-03-02"]
    assert len(stats["hours"]) == 24
    # 2 March's entries, the one just after the test window included.
    assert stats["total"] == 8
    earlier = server.get("/v1/admin/stats", until="2024-03-01").json()
    assert earlier["days"] == ["2024-03-01"] and earlier["total"] == 5


def test_a_window_with_too_many_entries_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_api, "MAX_STATS_ENTRIES", 10)
    server.refused("/v1/admin/stats", "too_many_entries", since=SINCE, until=UNTIL)
    assert (
        server.get("/v1/admin/stats", since=SINCE, until=UNTIL, gate="gate-a").json()["total"] == 8
    )


def test_bad_queries_have_stable_codes(server: Server) -> None:
    stats, gates = "/v1/admin/stats", "/v1/admin/trace/gates"
    server.refused(stats, "bad_time", since="yesterday")
    server.refused(stats, "bad_time", until="2024-13-01")
    server.refused(stats, "bad_window", since="2024-03-02", until="2024-03-01")
    server.refused(stats, "window_too_long", since="2024-01-01", until="2024-06-01")
    server.refused(stats, "window_too_long", since="2023-01-01")  # until: the end of today
    server.refused(stats, "bad_timezone", tz="Mars/Olympus")
    server.refused(stats, "bad_gate", gate="no spaces")
    server.refused(gates, "missing_gate", since=SINCE, until=UNTIL)
    server.refused(gates, "missing_window", gate="gate-a", since=SINCE)
    server.refused(gates, "bad_format", gate="gate-a", since=SINCE, until=UNTIL, format="pdf")
    server.refused(gates, "bad_limit", gate="gate-a", since=SINCE, until=UNTIL, limit="0")
    server.refused("/v1/admin/trace/pass/P%201", "bad_pass")
    server.refused("/v1/admin/trace/inside", "bad_time", gate="gate-a", at="noon")
    server.refused("/v1/admin/ledgers/patients.xlsx", "unknown_ledger", status=404)
    many = "&".join(f"gate=g{n}" for n in range(201))
    reply = server.client.get(f"{stats}?{many}", headers=ADMIN)
    assert reply.json()["error"] == "too_many_gates"


def test_trace_gates_as_json_csv_and_xlsx(server: Server) -> None:
    params = {"gate": ["gate-b", "gate-a"], "since": SINCE, "until": UNTIL}
    found = server.get("/v1/admin/trace/gates", **params).json()
    assert found["columns"] == list(COLUMNS)
    assert found["count"] == 10 and not found["truncated"]
    order = [(row["gate_id"], row["seq"]) for row in found["rows"]]
    assert order[:3] == [("gate-a", 2), ("gate-b", 1), ("gate-a", 3)]  # by time across gates
    cut = server.get("/v1/admin/trace/gates", limit="4", **params).json()
    assert (cut["count"], cut["truncated"], len(cut["rows"])) == (10, True, 4)

    reply = server.get("/v1/admin/trace/gates", format="csv", **params)
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == (
        'attachment; filename="trace-gates-20240301T153000Z-20240301T164500Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"), newline="")))
    assert [(r["gate_id"], int(r["seq"])) for r in rows] == order

    reply = server.get("/v1/admin/trace/gates", format="xlsx", **params)
    assert reply.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(reply.content)).active
    assert sheet is not None
    table = list(sheet.iter_rows(values_only=True))
    assert table[0] == COLUMNS
    assert [(r[0], r[2]) for r in table[1:]] == order


def test_trace_a_pass_a_household_and_who_is_inside(server: Server) -> None:
    p1 = server.get("/v1/admin/trace/pass/P1").json()
    assert [row["seq"] for row in p1["rows"]] == [2, 9]
    assert (
        server.get("/v1/admin/trace/pass/P1", since=SINCE, until="2024-03-02T00:30").json()["count"]
        == 1
    )
    # Every entry here names household hh-0 (tests.ledger.helpers.draft).
    household = server.get("/v1/admin/trace/household/hh-0", format="csv")
    assert household.headers["content-disposition"] == (
        'attachment; filename="trace-household-hh-0.csv"'
    )
    assert len(household.content.decode("utf-8-sig").strip().splitlines()) == 1 + 13

    at = (BASE + timedelta(minutes=72)).isoformat()
    inside = server.get("/v1/admin/trace/inside", gate="gate-a", at=at, compound="C1").json()
    assert inside["columns"] == list(INSIDE_COLUMNS)
    assert [(r["pass_id"], r["inside_since"]) for r in inside["rows"]] == [
        ("P1", (BASE + timedelta(minutes=70)).isoformat()),
        ("P4", (BASE + timedelta(minutes=45)).isoformat()),
    ]
    book = server.get("/v1/admin/trace/inside", gate="gate-a", at=at, format="xlsx")
    sheet = load_workbook(io.BytesIO(book.content)).active
    assert sheet is not None and sheet.title == "compound"
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["P1", "P4"]


def test_ledgers_as_xlsx(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sync.server.stats_api"):
        reply = server.get("/v1/admin/ledgers/fevers.xlsx", since=SINCE, until=UNTIL)
    assert reply.status_code == 200
    # Personal data left the server: the log says which ledger and how much.
    assert any("ledger fevers downloaded: 1 rows" in r.getMessage() for r in caplog.records)
    assert reply.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert reply.headers["content-disposition"] == (
        'attachment; filename="fevers-20240301T153000Z-20240301T164500Z.xlsx"'
    )
    sheet = load_workbook(io.BytesIO(reply.content)).active
    assert sheet is not None and sheet.title == "发热转诊"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "时间" and rows[1][0] == "time"
    assert [(r[1], r[2], r[12]) for r in rows[2:]] == [("gate-a", "in", "refer_fever_clinic")]
    for name in ("residents", "isolations", "returnees", "visitors"):
        book = server.get(f"/v1/admin/ledgers/{name}.xlsx")
        assert book.status_code == 200, name
        assert load_workbook(io.BytesIO(book.content)).active is not None
