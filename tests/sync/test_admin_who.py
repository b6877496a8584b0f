"""Who a visitor or compound write is recorded as: a signed-in admin by the session's name
(never what the body claims), the bearer token by the body's ``by``, else ``admin-token``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sync.store.central import Household, Person
from tests.sync.admin_helpers import NAME, Site, admin_site
from tests.sync.stream_helpers import ADMIN_TOKEN, NOW

TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOST = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")
VISIT: dict[str, Any] = {
    "host": HOST.household_id,
    "name": "赵小燕",
    "phone": "13700000001",
    "reason": "探望老人",
    "from": (NOW + timedelta(hours=1)).isoformat(),
    "hours": 6,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with admin_site(tmp_path_factory.mktemp("who") / "central") as opened:
        opened.centre.issuer.new_key(NOW)
        person = Person(HOST.household_id, "王小明", "1", "resident")
        opened.centre.central.import_residents([HOST], [person], NOW)
        yield opened


@pytest.fixture
def session(site: Site) -> Iterator[httpx.Client]:
    client, csrf = site.signed_in()
    client.headers["X-CSRF-Token"] = csrf
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def token(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=30, headers=TOKEN) as client:
        yield client


def asked(client: httpx.Client, **body: Any) -> int:
    reply = client.post("/v1/admin/visitors", json={**VISIT, **body})
    assert reply.status_code == 201, reply.text
    return int(reply.json()["request"]["request_id"])


def history_by(site: Site, request_id: int) -> list[str]:
    return [event.by for event in site.centre.central.visitor_history(request_id)]


def test_a_signed_in_admin_is_recorded_by_name_on_the_visitor_routes(
    site: Site, session: httpx.Client
) -> None:
    store = site.centre.central
    first = asked(session, by="冒名者")
    assert store.visitor_request(first).requested_by == NAME
    approved = session.post(f"/v1/admin/visitors/{first}/approve", json={"by": "冒名者"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["request"]["decided_by"] == NAME
    second = asked(session)
    rejected = session.post(
        f"/v1/admin/visitors/{second}/reject", json={"by": "冒名者", "reason": "未核实"}
    )
    assert rejected.json()["request"]["decided_by"] == NAME
    third = asked(session)
    session.post(f"/v1/admin/visitors/{third}/cancel", json={"reason": "不来了"})
    issued = session.post("/v1/admin/visitors/issue", json={**VISIT, "by": "冒名者"})
    assert issued.status_code == 201, issued.text
    direct = issued.json()["request"]
    assert (direct["requested_by"], direct["decided_by"]) == (NAME, NAME)
    for request_id in (first, second, third):
        assert set(history_by(site, request_id)) == {NAME}


def test_the_bearer_token_is_recorded_by_the_bodys_by_else_admin_token(
    site: Site, token: httpx.Client
) -> None:
    store = site.centre.central
    named = asked(token, by="王小明")
    assert store.visitor_request(named).requested_by == "王小明"
    approved = token.post(f"/v1/admin/visitors/{named}/approve", json={"by": "社区李四"})
    assert approved.json()["request"]["decided_by"] == "社区李四"
    anonymous = asked(token)
    assert store.visitor_request(anonymous).requested_by == "admin-token"
    rejected = token.post(f"/v1/admin/visitors/{anonymous}/reject", json={"reason": "未核实"})
    assert rejected.json()["request"]["decided_by"] == "admin-token"
    assert history_by(site, named) == ["王小明", "社区李四"]
    assert history_by(site, anonymous) == ["admin-token", "admin-token"]


def test_who_set_a_compounds_quota(site: Site, session: httpx.Client, token: httpx.Client) -> None:
    assert session.put(
        "/v1/admin/compounds/W1", json={"exit_quota": "1/2", "by": "冒名者"}
    ).is_success
    assert token.put("/v1/admin/compounds/W1", json={"exit_quota": "1/3", "by": "li"}).is_success
    assert token.put("/v1/admin/compounds/W1", json={"exit_quota": None}).is_success
    history = site.centre.central.compound_quota_history("W1")
    assert [(row.quota, row.set_by) for row in history] == [
        ("1/2", NAME), ("1/3", "li"), (None, "admin-token"),
    ]  # fmt: skip
    listed = session.get("/v1/admin/compounds").json()["compounds"]
    assert [c["set_by"] for c in listed if c["compound"] == "W1"] == [None]  # cleared
    assert session.put("/v1/admin/compounds/W1", json={"exit_quota": "2/7"}).is_success
    listed = session.get("/v1/admin/compounds").json()["compounds"]
    assert [(c["exit_quota"], c["set_by"]) for c in listed if c["compound"] == "W1"] == [
        ("2/7", NAME)
    ]
