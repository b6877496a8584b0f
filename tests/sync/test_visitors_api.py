"""The admin page's visitor endpoints, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.core.passes import VerifiedPass, verify
from sync.cards import store_keyring
from sync.server.app import create_app
from sync.store.central import Household, Person
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    NOW,
    STORES,
    Centre,
    TickingClock,
    centre,
    serving,
    store_dsn,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOST = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")
VISIT: dict[str, Any] = {
    "host": HOST.household_id,
    "name": "赵小燕",
    "phone": "13700000001",
    "reason": "探望老人",
    "plate": "京A12345",
    "from": (NOW + timedelta(hours=1)).isoformat(),
    "hours": 6,
    "once": True,
    "by": "王小明",
}


@pytest.fixture(params=STORES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Centre, httpx.Client]]:
    with centre(tmp_path / "central", store_dsn(request)) as opened:
        opened.issuer.new_key(NOW)
        person = Person(HOST.household_id, "王小明", "1", "resident")
        opened.central.import_residents([HOST], [person], NOW)
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, TickingClock())
        with serving(app) as url, httpx.Client(base_url=url, timeout=30, headers=ADMIN) as client:
            yield opened, client


def test_request_approve_and_fetch_the_pass(site: tuple[Centre, httpx.Client]) -> None:
    opened, client = site
    asked = client.post("/v1/admin/visitors", json=VISIT)
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["request"]["request_id"]
    pending = client.get("/v1/admin/visitors", params={"pending": "true"}).json()["requests"]
    assert [(r["request_id"], r["state"], r["phone"]) for r in pending] == [
        (request_id, "pending", "13700000001")
    ]
    approved = client.post(f"/v1/admin/visitors/{request_id}/approve", json={"by": "社区李四"})
    assert approved.status_code == 200, approved.text
    text = approved.json()["text"]
    scanned = verify(text, store_keyring(opened.central))
    assert isinstance(scanned, VerifiedPass) and scanned.fields.once
    again = client.post(f"/v1/admin/visitors/{request_id}/approve", json={"by": "乙"})
    assert (again.status_code, again.json()["error"]) == (409, "already_decided")
    assert client.get(f"/v1/admin/visitors/{request_id}/pass").json()["text"] == text
    png = client.get(f"/v1/admin/visitors/{request_id}/pass.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    detail = client.get(f"/v1/admin/visitors/{request_id}").json()
    assert [e["state"] for e in detail["history"]] == ["pending", "approved"]
    assert len(opened.central.household_passes([HOST.household_id])) == 1


def test_issue_reject_cancel_and_refusals(site: tuple[Centre, httpx.Client]) -> None:
    _, client = site
    issued = client.post("/v1/admin/visitors/issue", json={**VISIT, "by": "管理员"})
    assert issued.status_code == 201 and issued.json()["request"]["direct"] is True
    ids = [client.post("/v1/admin/visitors", json=VISIT).json()["request"]["request_id"]]
    ids.append(client.post("/v1/admin/visitors", json=VISIT).json()["request"]["request_id"])
    rejected = client.post(
        f"/v1/admin/visitors/{ids[0]}/reject", json={"by": "甲", "reason": "未核实"}
    )
    assert rejected.json()["request"]["state"] == "rejected"
    no_reason = client.post(f"/v1/admin/visitors/{ids[1]}/cancel", json={"by": "甲"})
    assert (no_reason.status_code, no_reason.json()["error"]) == (422, "missing")
    cancelled = client.post(
        f"/v1/admin/visitors/{ids[1]}/cancel", json={"by": "甲", "reason": "不来了"}
    )
    assert cancelled.json()["request"]["state"] == "cancelled"
    no_pass = client.get(f"/v1/admin/visitors/{ids[0]}/pass")
    assert (no_pass.status_code, no_pass.json()["error"]) == (409, "no_pass")
    for body, status, code in (
        ({**VISIT, "host": "C9-NOBODY"}, 422, "unknown_host"),
        ({**VISIT, "hours": None, "until": (NOW + timedelta(days=8)).isoformat()}, 422, "too_long"),
        ({**VISIT, "hours": 200}, 422, "bad_request"),
        ({**VISIT, "until": (NOW + timedelta(days=1)).isoformat()}, 422, "bad_request"),
        ({**VISIT, "surname": "赵"}, 422, "bad_request"),
    ):
        reply = client.post("/v1/admin/visitors", json=body)
        assert (reply.status_code, reply.json()["error"]) == (status, code), body
    assert client.get("/v1/admin/visitors/999").json()["error"] == "not_found"
    listed = client.get("/v1/admin/visitors", params={"host": HOST.household_id}).json()
    assert [r["state"] for r in listed["requests"]] == ["approved", "rejected", "cancelled"]


def test_every_visitor_endpoint_needs_the_admin_token(site: tuple[Centre, httpx.Client]) -> None:
    _, client = site
    for method, path in (
        ("GET", "/v1/admin/visitors"),
        ("POST", "/v1/admin/visitors"),
        ("POST", "/v1/admin/visitors/issue"),
        ("GET", "/v1/admin/visitors/1"),
        ("POST", "/v1/admin/visitors/1/approve"),
        ("POST", "/v1/admin/visitors/1/reject"),
        ("POST", "/v1/admin/visitors/1/cancel"),
        ("GET", "/v1/admin/visitors/1/pass"),
        ("GET", "/v1/admin/visitors/1/pass.png"),
    ):
        reply = client.request(method, path, headers={"Authorization": "Bearer wrong"}, json={})
        assert (reply.status_code, reply.json()["error"]) == (401, "unauthorized"), path
