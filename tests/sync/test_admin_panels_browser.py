"""The visitors and compounds panels of the admin page in Debian's chromium: a visit
requested, approved (its phone PNG shown), rejected, cancelled and issued at once; a
compound's exit quota set and cleared, and a conflict two real gates made listed.

The browser, the page's watch (nothing beyond 127.0.0.1, no page errors) and the site come
from ``test_admin_browser``; screenshots go to ``test-artifacts/admin/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sync.store.central import Household, Person
from tests.chromium import needs_chromium
from tests.sync import test_admin_browser as base
from tests.sync.admin_helpers import NAME, Site
from tests.sync.stream_helpers import NOW
from tests.sync.test_admin_browser import Admin, assert_accessible, result_of, shot

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
# The page's fixtures, by name: one chromium per module, a fresh site and context per test.
browser = base.browser
site = base.site
admin = base.admin

HOST = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")
COMPOUND, COMMUNITY = "C1", "M1"


def host_household(site: Site) -> None:
    person = Person(HOST.household_id, "王小明", "1", "resident")
    site.centre.central.import_residents([HOST], [person], site.clock())


def request_visit(
    section: Any, name: str, *, issue: bool = False, host: str = HOST.household_id
) -> None:
    form = section.locator("#visit-form")
    form.locator("[name=host]").fill(host)
    form.locator("[name=name]").fill(name)
    form.locator("[name=phone]").fill("13700000001")
    form.locator("[name=reason]").fill("探望老人")
    form.locator("[name=hours]").fill("6")
    form.locator("#visit-issue" if issue else "#visit-request").click()


def test_a_visit_requested_then_approved_shows_its_phone_png(admin: Admin) -> None:
    host_household(admin.site)
    page = admin.page
    admin.sign_in()
    section = admin.open("visitors")
    sync_api.expect(section.locator("#visitors-pending")).to_contain_text("没有待审批的申请")
    request_visit(section, "赵小燕")
    sync_api.expect(result_of(section)).to_contain_text("已登记申请")
    store = admin.site.centre.central
    (asked,) = store.visitor_requests(pending=True, household_id=None)
    assert (asked.name, asked.requested_by) == ("赵小燕", NAME)
    row = section.locator("#visitors-pending tbody tr").filter(has_text="赵小燕")
    sync_api.expect(row).to_contain_text("待审批")
    page.click(f"button[data-action=approve][data-visit='{asked.request_id}']")
    sync_api.expect(result_of(section)).to_contain_text("已批准")
    picture = section.locator("#visit-png")
    sync_api.expect(picture).to_be_visible()
    picture.evaluate("img => img.decode()")  # the PNG came and is a picture
    assert picture.evaluate("img => img.naturalWidth") > 100
    approved = store.visitor_request(asked.request_id)
    assert (approved.state, approved.decided_by) == ("approved", NAME)
    assert approved.pass_id is not None
    text = section.locator("#visit-pass-text").input_value()
    assert text == store.get_pass(approved.pass_id).text
    sync_api.expect(section.locator("#visitors-pending")).to_contain_text("没有待审批的申请")
    done = section.locator("#visitors-others tbody tr").filter(has_text="赵小燕")
    sync_api.expect(done).to_contain_text("已批准")
    done.locator("button[data-action=history]").click()
    history = section.locator("#visit-history tbody tr")
    sync_api.expect(history).to_have_count(2)
    sync_api.expect(history.first).to_contain_text("待审批")
    sync_api.expect(history.last).to_contain_text(NAME)
    shot(page, "visitors")
    assert_accessible(page, "visitors")
    page.click("#lang")
    sync_api.expect(history.last).to_contain_text("Approved")
    sync_api.expect(section.locator("#visit-request")).to_have_text("Request")


def test_visits_rejected_cancelled_refused_and_issued_at_once(admin: Admin) -> None:
    host_household(admin.site)
    page = admin.page
    admin.sign_in()
    section = admin.open("visitors")
    store = admin.site.centre.central
    for name in ("钱一", "孙二"):
        request_visit(section, name)
        sync_api.expect(section.locator("#visitors-pending")).to_contain_text(name)
    first, second = (r.request_id for r in store.visitor_requests(pending=True, household_id=None))
    # Rejecting needs a reason: the server's refusal is shown in words.
    page.click(f"button[data-action=reject][data-visit='{first}']")
    sync_api.expect(result_of(section)).to_contain_text("缺少必填内容")
    assert store.visitor_request(first).state == "pending"
    page.fill("#visit-decision-reason", "住户未确认")
    page.click(f"button[data-action=reject][data-visit='{first}']")
    sync_api.expect(result_of(section)).to_contain_text("已驳回")
    page.fill("#visit-decision-reason", "不来了")
    page.click(f"button[data-action=cancel][data-visit='{second}']")
    sync_api.expect(result_of(section)).to_contain_text("已取消")
    assert [(r.state, r.note, r.decided_by) for r in (store.visitor_request(first),
            store.visitor_request(second))] == [
        ("rejected", "住户未确认", NAME), ("cancelled", "不来了", NAME),
    ]  # fmt: skip
    others = section.locator("#visitors-others tbody tr")
    sync_api.expect(others.filter(has_text="钱一")).to_contain_text("已驳回")
    sync_api.expect(others.filter(has_text="孙二")).to_contain_text("已取消")
    # A visit to an unknown household is refused with the code's words.
    request_visit(section, "周四", host="C9-NOBODY")
    sync_api.expect(result_of(section)).to_contain_text("住户中没有该户号")
    request_visit(section, "李三", issue=True)
    sync_api.expect(result_of(section)).to_contain_text("已签发访客通行证")
    sync_api.expect(section.locator("#visit-png")).to_be_visible()
    issued = [r for r in store.visitor_requests(pending=False, household_id=None) if r.direct]
    assert [(r.name, r.state, r.requested_by) for r in issued] == [("李三", "approved", NAME)]
    page.fill("#visitors-host", "C9-NOBODY")
    page.click("#visitors-filter")
    sync_api.expect(section.locator("#visitors-others")).to_contain_text("没有其他申请")
    page.fill("#visitors-host", HOST.household_id)
    page.click("#visitors-filter")
    sync_api.expect(others).to_have_count(3)


@pytest.fixture
def gates(site: Site, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two real gates of compound C1, enrolled with the site (as tests/test_compound.py)."""
    from gate_agent.assess import Assessor
    from gate_agent.clock import FakeClock
    from gate_agent.core.policy import GateIdentity
    from gate_agent.ledger import Ledger
    from gate_agent.uplink import UplinkSettings, Uploader
    from gate_agent.uplink_http import enrol
    from tests.test_station import config

    with ExitStack() as stack:
        made: dict[str, Any] = {}
        for gate_id in ("gate-a", "gate-b"):
            place = GateIdentity(gate_id, COMPOUND, COMMUNITY)
            enrolment = enrol(site.url, gate_id, site.centre.code(gate_id), place=place)
            clock = FakeClock(NOW)
            ledger = stack.enter_context(
                Ledger.open(tmp_path / f"{gate_id}.sqlite3", gate_id=gate_id, clock=clock.now)
            )
            ledger.state.pin_centre_key(
                enrolment.centre_kid, enrolment.centre_public_key, by="test", at=NOW
            )
            uploader = stack.enter_context(
                Uploader(
                    ledger,
                    base_url=site.url,
                    gate_id=gate_id,
                    token=enrolment.token,
                    clock=clock,
                    settings=UplinkSettings(timeout_s=10, lists_poll_s=3600),
                )
            )
            gate_config = config(
                tmp_path / gate_id, id=gate_id, compound_id=COMPOUND, community_id=COMMUNITY
            )
            made[gate_id] = (ledger, clock, uploader, Assessor(gate_config, ledger))
        yield made


def let_out(gate: Any, text: str) -> None:
    """A gate scans a pass going out and commits the entry, as the station does."""
    from gate_agent.core.reasons import Direction
    from gate_agent.records import entry_draft

    ledger, clock, _, assessor = gate
    evaluation = assessor.evaluate(text, Direction.OUT, temperature=None, now=clock.now())
    assert evaluation.decision.allowed, evaluation.decision
    ledger.append(entry_draft(evaluation, clock, lane="out"))


def test_a_quota_set_and_cleared_and_a_conflict_two_gates_made(
    admin: Admin, gates: dict[str, Any]
) -> None:
    from tests.sync.test_issuer import fields

    site = admin.site
    issuer = site.centre.issuer
    first = issuer.issue(replace(fields("PASS000003"), household_id="H2"), NOW)
    second = issuer.issue(replace(fields("PASS000004"), household_id="H2"), NOW)
    a, b = gates["gate-a"], gates["gate-b"]
    for gate in (a, b):
        gate[2].refresh_lists()  # the issuer's key
    # The gates are apart (no quota reached them yet): each lets one member out.
    a[1].advance(10 * 60)
    let_out(a, first)
    b[1].advance(30 * 60)
    let_out(b, second)
    for gate in (a, b):
        gate[2].drain()
    site.clock.advance(minutes=60)  # the centre's now is after both exits

    page = admin.page
    admin.sign_in()
    fleet = admin.open("fleet")
    sync_api.expect(fleet.locator("tbody tr").filter(has_text="gate-b")).to_contain_text(COMMUNITY)
    section = admin.open("compounds")
    row = section.locator("#compounds-list tbody tr").filter(has_text=COMPOUND)
    sync_api.expect(row).to_contain_text("gate-a, gate-b")
    sync_api.expect(row).to_contain_text("不限")
    sync_api.expect(section.locator("#conflicts-list")).to_contain_text("没有超限冲突")
    form = section.locator("#quota-form")
    form.locator("[name=compound]").fill(COMPOUND)
    form.locator("[name=exit_quota]").fill("0/2")  # refused by the page's pattern: not sent
    form.locator("#quota-set").click()
    assert site.centre.central.compound_quota(COMPOUND) is None
    form.locator("[name=exit_quota]").fill("1/2")
    form.locator("#quota-set").click()
    sync_api.expect(result_of(section)).to_contain_text("已设置限额")
    sync_api.expect(row).to_contain_text("每 2 天 1 次")
    sync_api.expect(row).to_contain_text(NAME)
    assert site.centre.central.compound_quota(COMPOUND) == "1/2"
    conflict = section.locator("#conflicts-list tbody tr")
    sync_api.expect(conflict).to_have_count(1)
    sync_api.expect(conflict).to_contain_text("H2")
    exits = conflict.locator("li")
    sync_api.expect(exits).to_have_count(2)
    sync_api.expect(exits.first).to_contain_text("gate-a")
    sync_api.expect(exits.first.locator(".badge")).to_have_count(0)
    sync_api.expect(exits.last).to_contain_text("gate-b")
    sync_api.expect(exits.last).to_contain_text("超限")
    shot(page, "compounds")
    assert_accessible(page, "compounds")
    page.click("#lang")  # rows made of words are redrawn in the other language
    sync_api.expect(row).to_contain_text("1 per 2 days")
    sync_api.expect(exits.last).to_contain_text("Beyond quota")
    page.click("#lang")
    row.locator(f"button[data-clear={COMPOUND}]").click()
    sync_api.expect(row).to_contain_text("不限")
    sync_api.expect(section.locator("#conflicts-list")).to_contain_text("没有超限冲突")
    history = site.centre.central.compound_quota_history(COMPOUND)
    assert [(r.quota, r.set_by) for r in history] == [("1/2", NAME), (None, NAME)]
