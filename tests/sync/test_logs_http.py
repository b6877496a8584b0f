"""`GET /v1/admin/logs` and `gate-sync pull --server`: the pull over HTTP, on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from gate_agent.ledger import Ledger
from gate_agent.ledger.wire import wire_entries
from sync import cli
from sync.pull import COLUMNS
from sync.server.app import create_app
from tests.ledger.helpers import draft
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    OTHER_GATE,
    Centre,
    TickingClock,
    batch,
    centre,
    serving,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOTE = "体温复测，已放行"
GUARD = "王师傅"


@dataclass
class Stream:
    stream_id: str
    entries: list[dict[str, Any]]


def make_stream(path: Path, gate: str, count: int) -> Stream:
    """A real ledger whose entries carry Chinese notes and guards, in wire form."""
    with Ledger.open(path, gate_id=gate) as ledger:
        for n in range(count):
            ledger.append(
                replace(draft(n), note=NOTE if n % 5 == 0 else None, guard=GUARD if n % 4 else None)
            )
        return Stream(ledger.stream_id, wire_entries(ledger, 0, 10_000))


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stream]:
    folder = tmp_path_factory.mktemp("gates")
    return {
        GATE: make_stream(folder / "a.sqlite3", GATE, 120),
        OTHER_GATE: make_stream(folder / "b.sqlite3", OTHER_GATE, 10),
    }


@dataclass
class Server:
    centre: Centre
    url: str
    client: httpx.Client
    data: Path

    def ingest(self, gate: str, stream: Stream, start: int, stop: int) -> None:
        reply = self.centre.streams.ingest(
            gate, stream.stream_id, batch(stream.entries[start:stop]),
            now=TickingClock()(), list_versions={},
        )  # fmt: skip
        assert reply.stored_through == stop  # type: ignore[union-attr]

    def get(self, **params: Any) -> httpx.Response:
        return self.client.get("/v1/admin/logs", params=params, headers=ADMIN)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    data = tmp_path / "central"
    with centre(data) as opened:
        for gate in (GATE, OTHER_GATE):
            opened.code(gate)  # makes the gate known to the store
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, TickingClock())
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield Server(opened, url, client, data)


@pytest.fixture
def filled(server: Server, streams: dict[str, Stream]) -> Server:
    server.ingest(GATE, streams[GATE], 0, 120)
    server.ingest(OTHER_GATE, streams[OTHER_GATE], 0, 10)
    return server


def local_pull(data: Path, out: Path, *args: str) -> bytes:
    assert cli.main(["--data-dir", str(data), "pull", "--out", str(out), *args]) == 0
    return out.read_bytes()


def test_the_logs_need_the_admin_token(server: Server) -> None:
    for fmt in ("csv", "xlsx", "jsonl"):
        bare = server.client.get("/v1/admin/logs", params={"format": fmt})
        assert bare.status_code == 401
        assert bare.json()["error"] == "unauthorized"
        assert bare.headers["WWW-Authenticate"] == "Bearer"
        wrong = server.client.get(
            "/v1/admin/logs", params={"format": fmt}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401


def test_csv_has_a_bom_chinese_intact_and_the_same_bytes_as_gate_sync_pull(
    filled: Server, tmp_path: Path
) -> None:
    reply = filled.get(format="csv")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == 'attachment; filename="gate-log-all.csv"'
    raw = reply.content
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 130
    assert rows[0]["note"] == NOTE and rows[1]["guard"] == GUARD
    assert raw == local_pull(filled.data, tmp_path / "local.csv", "--format", "csv")


def test_xlsx_opens_with_openpyxl(filled: Server) -> None:
    reply = filled.get(format="xlsx", gate=GATE)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert 'filename="gate-log-gate-a.xlsx"' in reply.headers["content-disposition"]
    book = load_workbook(io.BytesIO(reply.content), read_only=True)
    try:
        table = [list(r) for r in book["entries"].iter_rows(values_only=True)]
    finally:
        book.close()
    assert tuple(table[0]) == COLUMNS
    assert [r[COLUMNS.index("seq")] for r in table[1:]] == list(range(1, 121))
    assert table[1][COLUMNS.index("note")] == NOTE


def test_filters_by_gate_and_time(filled: Server) -> None:
    only_b = [json.loads(x) for x in filled.get(format="jsonl", gate=OTHER_GATE).text.splitlines()]
    assert {r["gate_id"] for r in only_b} == {OTHER_GATE}
    assert len(only_b) == 10
    # Entry n was made at 2024-03-01 08:00 UTC + n minutes.
    reply = filled.get(
        format="jsonl", gate=GATE, since="2024-03-01T08:10:00+00:00", until="2024-03-01T08:20:00Z"
    )
    assert [json.loads(x)["seq"] for x in reply.text.splitlines()] == list(range(11, 21))
    assert (
        'filename="gate-log-gate-a-20240301T081000Z-20240301T082000Z.jsonl"'
        in (reply.headers["content-disposition"])
    )
    assert filled.get(format="csv", until="2000-01-01").text.count("\r\n") == 1  # header only
    bad = filled.get(format="csv", since="last tuesday")
    assert (bad.status_code, bad.json()["error"]) == (422, "bad_query")
    assert filled.get(format="pdf").status_code == 422
    assert filled.get(format="csv", gate="../etc").status_code == 422


def test_jsonl_pages_never_skip_or_repeat_while_gates_upload(
    server: Server, streams: dict[str, Stream]
) -> None:
    stream = streams[GATE]
    done = threading.Event()

    def upload() -> None:
        for start in range(0, 120, 7):
            server.ingest(GATE, stream, start, min(start + 7, 120))
            server.ingest(OTHER_GATE, streams[OTHER_GATE], 0, 10)  # repeats: nothing new
        done.set()

    uploader = threading.Thread(target=upload)
    uploader.start()
    seen: list[int] = []
    try:
        after = 0
        while True:
            finished = done.is_set()
            reply = server.get(format="jsonl", gate=GATE, after=after, limit=5)
            assert reply.status_code == 200
            rows = [json.loads(x) for x in reply.text.splitlines()]
            assert len(rows) <= 5
            seen.extend(r["seq"] for r in rows)
            following = int(reply.headers["X-Next-After"])
            if finished and following == after:
                break
            after = following
    finally:
        uploader.join()
    assert seen == list(range(1, 121))


def test_gate_sync_pull_over_http_matches_the_local_pull(
    filled: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    remote = ["pull", "--server", filled.url, "--admin-token-file", str(token)]
    for fmt, args in (("csv", ()), ("jsonl", ("--gate", OTHER_GATE))):
        out = tmp_path / f"remote.{fmt}"
        assert cli.main([*remote, "--format", fmt, "--out", str(out), *args]) == 0
        local = local_pull(filled.data, tmp_path / f"local.{fmt}", "--format", fmt, *args)
        assert out.read_bytes() == local
    assert "10 entries pulled" in capsys.readouterr().err
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-admin-token-at-all", encoding="utf-8")
    wrong.chmod(0o600)
    out = tmp_path / "refused.csv"
    assert cli.main(["pull", "--server", filled.url, "--admin-token-file", str(wrong),
                     "--out", str(out)]) == 1  # fmt: skip
    assert "(unauthorized)" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))  # no half file left
    assert cli.main(["pull", "--server", filled.url]) == 1  # the token file is needed
