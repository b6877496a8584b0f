"""The admin page's JSON flows over HTTP, signed in with a session, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from sync.store.central import Household, Person
from tests.sync.admin_helpers import NAME, Site, admin_site
from tests.sync.stream_helpers import STORES, TickingClock, store_dsn


@pytest.fixture(params=STORES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    with admin_site(tmp_path / "central", store_dsn(request), TickingClock()) as opened:
        yield opened


class Api:
    """A signed-in client whose writes carry the CSRF token."""

    def __init__(self, site: Site) -> None:
        self.client, self.csrf = site.signed_in()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None, **options: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **options.pop("headers", {})}
        return self.client.post(path, json=body, headers=headers, **options)


@pytest.fixture
def api(site: Site) -> Iterator[Api]:
    made = Api(site)
    with closing(made.client):
        yield made


def refused(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == code, reply.text


def test_keys_passes_cards_and_isolations_through_the_api(site: Site, api: Api) -> None:
    refused(api.post("/v1/admin/passes", {"kind": "resident", "household": "H1",
            "name": "张三", "scope": "compound:C1", "days": 30}), 409, "no_issuer_key")  # fmt: skip
    first = api.post("/v1/admin/keys").json()["kid"]
    issue = {"kind": "resident", "household": "H1", "name": "张三明", "scope": "compound:C1"}
    refused(api.post("/v1/admin/passes", issue), 422, "bad_input")  # neither days nor until
    refused(api.post("/v1/admin/passes", {**issue, "days": 3, "valid_until": "2027-01-01"}),
            422, "bad_input")  # fmt: skip
    refused(api.post("/v1/admin/passes", {**issue, "days": 3, "scope": "street:X"}), 422,
            "bad_pass_field")  # fmt: skip
    refused(api.post("/v1/admin/passes", {**issue, "days": 3, "quota": "often"}), 422, "bad_input")
    refused(api.post("/v1/admin/passes", {**issue, "days": 3, "extra": 1}), 422, "bad_input")
    made = api.post("/v1/admin/passes", {**issue, "days": 30, "quota": "1/2"}).json()
    assert made["display_name"] == "张*明"
    passes = api.get("/v1/admin/households/H1/passes").json()["passes"]
    assert [(p["pass_id"], p["state"]) for p in passes] == [(made["pass_id"], "active")]

    page = api.get("/v1/admin/cards", household="H1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('class="card"') == 1
    compound = api.get("/v1/admin/cards", compound="C1")  # by the pass's scope: no roster here
    assert compound.text.count('class="card"') == 1
    refused(api.get("/v1/admin/cards", household="NOBODY"), 422, "no-cards")
    refused(api.get("/v1/admin/cards", household="H1", tz="Mars/Base"), 422, "bad_input")
    png = api.get(f"/v1/admin/passes/{made['pass_id']}/card.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    refused(api.get("/v1/admin/passes/NOSUCHPASS/card.png"), 404, "not_found")

    rotated = api.post("/v1/admin/keys/rotate", {"overlap_days": 7}).json()
    assert rotated["rotating"] == {first: 1}
    refused(api.post("/v1/admin/keys/rotate", {"overlap_days": 400}), 422, "bad_input")
    refused(api.post(f"/v1/admin/keys/{rotated['kid']}/retire", {}), 409, "key_in_use")
    refused(api.post("/v1/admin/keys/NOKEY/retire", {}), 404, "not_found")
    keys = {k["kid"]: k for k in api.get("/v1/admin/keys").json()["keys"]}
    assert (keys[first]["state"], keys[first]["live_passes"]) == ("rotating", 1)
    again = api.post(f"/v1/admin/passes/{made['pass_id']}/reissue", {}).json()
    assert again["valid_until"] == made["valid_until"]
    assert api.post(f"/v1/admin/keys/{first}/retire", {}).json()["changed"] is True
    refused(api.post(f"/v1/admin/passes/{made['pass_id']}/revoke", {"reason": ""}), 422,
            "bad_input")  # fmt: skip
    assert api.post(f"/v1/admin/passes/{again['pass_id']}/revoke", {"reason": "lost"}).json()[
        "changed"
    ]
    assert not api.post(f"/v1/admin/passes/{again['pass_id']}/expire").json()["changed"]
    refused(api.post("/v1/admin/passes/NOSUCHPASS/expire"), 404, "not_found")

    refused(api.post("/v1/admin/isolations", {"household": "H1", "until": "yesterday"}), 422,
            "bad_input")  # fmt: skip
    ordered = api.post("/v1/admin/isolations", {"household": "H1", "until": "2026-03-14",
                       "note": "通知 17"})  # fmt: skip
    assert ordered.status_code == 200, ordered.text
    rows = api.get("/v1/admin/isolations").json()["isolations"]
    listed = [(r["household_id"], r["state"], r["note"]) for r in rows]
    assert listed == [("H1", "active", "通知 17")]
    assert api.post("/v1/admin/households/H1/lift").json()["lifted"] == 1
    refused(api.post("/v1/admin/households/H1/lift"), 404, "not_found")
    assert api.get("/v1/admin/isolations").json()["isolations"][0]["state"] == "lifted"

    trail = api.get("/v1/admin/audit").json()["audit"]
    assert {row["by"] for row in trail} == {NAME}
    assert [row["action"] for row in reversed(trail)] == [
        "key.new", "pass.issue", "key.rotate", "pass.reissue", "key.retire", "pass.revoke",
        "pass.expire", "isolation.order", "isolation.lift",
    ]  # fmt: skip


def roster_xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def test_residents_import_dry_run_errors_then_import(site: Site, api: Api) -> None:
    header = ["社区", "小区", "楼号", "单元", "房号", "户号", "姓名", "电话", "身份"]
    bad = roster_xlsx([header, ["LGQ", "C1", "3", "2", "501", "H1", "张三", "12345", "居民"],
                       ["LGQ", "C1", "3", "2", "502", "H2", "李四", "", "神仙"]])  # fmt: skip
    reply = api.post("/v1/admin/residents/import", content=bad, params={"filename": "r.xlsx"},
                     headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    refused(reply, 422, "bad-rows")
    problems = reply.json()["problems"]
    assert [p.split(":")[0] for p in problems] == ["row 2, column phone", "row 3, column role"]
    person = ["LGQ", "C1", "3", "2", "501", "H1", "张三", "13800138000", "居民"]
    good = roster_xlsx([header, person])
    dry = api.post("/v1/admin/residents/import", content=good,
                   params={"filename": "r.xlsx", "dry_run": "true"})  # fmt: skip
    assert dry.json()["summary"]["persons_added"] == 1 and dry.json()["dry_run"]
    assert site.centre.central.residents() == []
    done = api.post("/v1/admin/residents/import", content=good,
                    params={"filename": "r.xlsx", "dry_run": "false"}).json()  # fmt: skip
    assert done["summary"]["persons_added"] == 1
    assert api.get("/v1/admin/residents", compound="C1").json()["residents"][0]["name"] == "张三"
    refused(api.post("/v1/admin/residents/import", content=b"x", params={"filename": "r.txt"}),
            422, "bad_input")  # fmt: skip
    refused(api.post("/v1/admin/residents/import", content=b"PK\x03\x04 not a workbook",
                     params={"filename": "r.xlsx"}), 422, "bad-file")  # fmt: skip


def test_bulk_issuing_is_a_job_whose_progress_is_polled(site: Site, api: Api) -> None:
    site.centre.issuer.new_key(site.clock())
    homes = [Household(f"C9-H{n:03d}", "LGQ", "C9", "1", "1", str(n)) for n in range(450)]
    people = [Person(h.household_id, f"住户{n}", "", "resident") for n, h in enumerate(homes)]
    site.centre.central.import_residents(homes, people, site.clock())
    refused(api.post("/v1/admin/passes/bulk", {"compound": "C9", "kind": "resident",
            "per": "person", "days": 30, "roles": "king"}), 422, "bad_input")  # fmt: skip
    started = api.post("/v1/admin/passes/bulk", {"compound": "C9", "kind": "resident",
                       "per": "person", "days": 30})  # fmt: skip
    assert started.status_code == 202
    job = started.json()
    seen = []
    while job["state"] == "running":
        seen.append(job["done"])
        time.sleep(0.02)
        job = api.get(f"/v1/admin/jobs/{job['job_id']}").json()
    assert job["state"] == "done", job
    assert job["result"] == {"issued": 450, "skipped": 0}
    assert (job["done"], job["total"]) == (450, 450)
    assert seen == sorted(seen)
    failed = api.post("/v1/admin/passes/bulk", {"compound": "NONE", "kind": "resident",
                      "per": "person", "days": 30}).json()  # fmt: skip
    while failed["state"] == "running":
        time.sleep(0.02)
        failed = api.get(f"/v1/admin/jobs/{failed['job_id']}").json()
    assert (failed["state"], failed["error"]) == ("failed", "not_found")
    refused(api.get("/v1/admin/jobs/0123456789abcdef"), 404, "not_found")
