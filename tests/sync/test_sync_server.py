"""The sync server's HTTP surface, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.core.chain import row_hash
from sync.protocol import Ack, StreamConflict
from sync.server.app import create_app
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    OTHER_GATE,
    STORES,
    Centre,
    TickingClock,
    batch_dict,
    centre,
    fill_ledger,
    gzip_body,
    ledger_entries,
    serving,
    store_dsn,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Harness:
    """A centre, its app, a client and one real gate stream of 30 entries."""

    def __init__(
        self,
        opened: Centre,
        client: httpx.Client,
        clock: TickingClock,
        stream: tuple[str, list[dict[str, Any]]],
    ) -> None:
        self.centre = opened
        self.client = client
        self.clock = clock
        self.stream_id, self.entries = stream
        self.token = self.enrol(GATE)

    def enrol(self, gate: str) -> str:
        reply = self.client.post("/v1/gates/enrol", json={"gate_id": gate, "code": self.code(gate)})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"])

    def code(self, gate: str) -> str:
        return self.centre.code(gate, self.clock())

    def url(self, gate: str = GATE, stream: str | None = None) -> str:
        return f"/v1/gates/{gate}/streams/{stream or self.stream_id}/batches"

    def post(self, entries: list[dict[str, Any]], *, token: str | None = None, **kw: Any) -> Any:
        body = gzip_body(batch_dict(entries, **kw))
        return self.client.post(
            self.url(),
            content=body,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
            },
        )


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """One real gate ledger of 30 entries, shared (read-only) by the tests."""
    ledger = tmp_path_factory.mktemp("gate") / "ledger.sqlite3"
    return fill_ledger(ledger, 30), ledger_entries(ledger)


@pytest.fixture(params=STORES)
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, stream: tuple[str, list[dict[str, Any]]]
) -> Iterator[Harness]:
    """The server over each stream store (issuer data stays in the SQLite folder)."""
    clock = TickingClock()
    with centre(tmp_path / "central", store_dsn(request)) as opened:
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, clock)
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield Harness(opened, client, clock, stream)


def test_a_gzip_batch_is_acknowledged_with_the_list_versions(harness: Harness) -> None:
    reply = harness.post(harness.entries[:10])
    assert reply.status_code == 200
    ack = Ack.model_validate_json(reply.text)
    assert ack.stored_through == 10
    assert ack.server_time == harness.clock()
    assert ack.list_versions == {
        "keys": 1,
        "revocations": 1,
        "isolations": 1,
        "settings": 1,
        "directory": 1,
    }
    cursor = harness.client.get(
        f"/v1/gates/{GATE}/streams/{harness.stream_id}",
        headers={"Authorization": f"Bearer {harness.token}"},
    )
    assert cursor.json() == {"stored_through": 10}


def test_list_versions_follow_the_issuers_changes(harness: Harness) -> None:
    harness.centre.issuer.new_key(harness.clock())
    ack = Ack.model_validate_json(harness.post(harness.entries[:1]).text)
    assert ack.list_versions["keys"] == 2


def test_a_repeated_batch_gets_the_same_reply(harness: Harness) -> None:
    first = harness.post(harness.entries[:10]).json()
    again = harness.post(harness.entries[:10]).json()
    assert again == first
    assert len(harness.centre.streams.entries_after(0, 100)) == 10


def test_a_gap_and_a_content_conflict_are_409_with_the_cursor(harness: Harness) -> None:
    harness.post(harness.entries[:5])
    gap = harness.post(harness.entries[7:9])
    assert gap.status_code == 409
    assert StreamConflict.model_validate_json(gap.text) == StreamConflict(
        error="gap", cursor=5, seq=6
    )
    changed = dict(harness.entries[1], outcome="deny")
    changed["hash"] = row_hash(changed)
    conflict = harness.post([harness.entries[0], changed])
    assert conflict.status_code == 409
    assert conflict.json() == {"error": "content_conflict", "cursor": 5, "seq": 2}


def test_a_malformed_entry_is_flagged_and_later_ones_stored(harness: Harness) -> None:
    entries = [dict(e) for e in harness.entries[:8]]
    entries[4]["temperature_raw"] = "not json"
    ack = harness.post(entries).json()
    assert (ack["stored_through"], ack["flagged"]) == (8, [5])
    assert harness.post(harness.entries[8:12]).json()["stored_through"] == 12


def test_plain_json_bodies_are_accepted_too(harness: Harness) -> None:
    reply = harness.client.post(
        harness.url(),
        json=batch_dict(harness.entries[:2]),
        headers={"Authorization": f"Bearer {harness.token}"},
    )
    assert reply.json()["stored_through"] == 2


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic x"}, 401)],
)
def test_uploads_need_the_gates_token(
    harness: Harness, headers: dict[str, str], status: int
) -> None:
    body = gzip_body(batch_dict(harness.entries[:1]))
    reply = harness.client.post(harness.url(), content=body, headers=headers)
    assert reply.status_code == status
    assert reply.json()["error"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_another_gates_token_is_forbidden(harness: Harness) -> None:
    other = harness.enrol(OTHER_GATE)
    assert harness.post(harness.entries[:1], token=other).status_code == 403
    reply = harness.client.get(
        f"/v1/gates/{GATE}/streams/{harness.stream_id}",
        headers={"Authorization": f"Bearer {other}"},
    )
    assert reply.status_code == 403


def test_too_large_bodies_and_batches_are_413(harness: Harness) -> None:
    auth = {"Authorization": f"Bearer {harness.token}", "Content-Encoding": "gzip"}
    noise = bytes(range(256)) * 1100  # incompressible-ish, over 256 KiB
    assert harness.client.post(harness.url(), content=noise, headers=auth).status_code == 413
    many = [dict(harness.entries[0], seq=n) for n in range(1, 502)]
    reply = harness.client.post(harness.url(), content=gzip_body(batch_dict(many)), headers=auth)
    assert reply.status_code == 413
    assert reply.json()["error"] == "too_many_entries"


@pytest.mark.parametrize(
    ("content", "encoding", "code"),
    [
        (b"{not json", None, "bad_json"),
        (b"not gzip at all", "gzip", "bad_gzip"),
        (b'{"first_seq": 1}', None, "bad_batch"),
        (b"[1, 2]", None, "bad_batch"),
    ],
)
def test_malformed_bodies_are_422(
    harness: Harness, content: bytes, encoding: str | None, code: str
) -> None:
    headers = {"Authorization": f"Bearer {harness.token}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    reply = harness.client.post(harness.url(), content=content, headers=headers)
    assert reply.status_code == 422
    assert reply.json()["error"] == code


def test_non_contiguous_entries_are_422(harness: Harness) -> None:
    reply = harness.post([harness.entries[0], harness.entries[2]])
    assert reply.status_code == 422


def test_an_enrolment_code_works_once(harness: Harness) -> None:
    code = harness.code("gate-c")
    first = harness.client.post("/v1/gates/enrol", json={"gate_id": "gate-c", "code": code})
    assert first.status_code == 200
    again = harness.client.post("/v1/gates/enrol", json={"gate_id": "gate-c", "code": code})
    assert again.status_code == 403
    assert again.json()["error"] == "enrol_refused"


def test_an_enrolment_code_is_for_its_gate_and_its_time(harness: Harness) -> None:
    code = harness.code("gate-c")
    wrong = harness.client.post("/v1/gates/enrol", json={"gate_id": "gate-d", "code": code})
    assert wrong.status_code == 403
    harness.clock.advance(hours=25)
    late = harness.client.post(
        "/v1/gates/enrol", json={"gate_id": "gate-c", "code": code.lower().replace("-", "")}
    )
    assert late.status_code == 403


def test_re_enrolment_replaces_the_old_token(harness: Harness) -> None:
    old = harness.token
    harness.token = harness.enrol(GATE)
    assert harness.post(harness.entries[:1], token=old).status_code == 401
    assert harness.post(harness.entries[:1]).status_code == 200


def test_the_fleet_view_shows_staleness_backlog_and_streams(harness: Harness) -> None:
    harness.enrol(OTHER_GATE)
    harness.post(harness.entries[:4], backlog=26, sent_at=harness.clock() - timedelta(seconds=2))
    harness.clock.advance(minutes=30)
    assert harness.client.get("/v1/admin/gates").status_code == 401
    fleet = harness.client.get("/v1/admin/gates?stale_minutes=20", headers=ADMIN).json()
    gates = {g["gate_id"]: g for g in fleet["gates"]}
    assert gates[GATE]["stale"] is True
    assert gates[GATE]["last_backlog"] == 26
    assert gates[GATE]["last_clock_offset_ms"] == 2000
    assert gates[GATE]["streams"] == [{"stream_id": harness.stream_id, "stored_through": 4}]
    assert gates[OTHER_GATE]["last_seen"] is None
    assert gates[OTHER_GATE]["stale"] is True
    fresh = harness.client.get("/v1/admin/gates?stale_minutes=60", headers=ADMIN).json()
    assert {g["gate_id"]: g["stale"] for g in fresh["gates"]}[GATE] is False
    log = harness.client.get(f"/v1/admin/gates/{GATE}/sync-log", headers=ADMIN).json()
    assert log["batches"][0]["result"] == "stored"
    assert log["batches"][0]["count"] == 4


def test_admins_page_entries_by_the_ingest_cursor(harness: Harness) -> None:
    harness.post(harness.entries[:25])
    assert (
        harness.client.get("/v1/admin/entries", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    seqs: list[int] = []
    after = 0
    while True:
        page = harness.client.get(f"/v1/admin/entries?after={after}&limit=10", headers=ADMIN)
        assert page.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in page.text.splitlines()]
        if not lines:
            assert page.headers["X-Next-After"] == str(after)
            break
        seqs += [line["seq"] for line in lines]
        after = int(page.headers["X-Next-After"])
        assert after == lines[-1]["ingest_id"]
    assert seqs == list(range(1, 26))
    first = json.loads(
        harness.client.get("/v1/admin/entries?limit=1", headers=ADMIN).text.splitlines()[0]
    )
    assert first["content"]["personal"] is not None
    assert row_hash(first["content"]) == first["hash"]
