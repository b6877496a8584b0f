"""The guard console in a real browser: Debian's chromium, driven by Playwright, on a live gate.

The browser, the watched page and the verbs are in ``browser_kit.py``; screenshots and
axe-core reports go to ``test-artifacts/console/`` for people to look at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gate_agent.housekeeping import MB, Usage
from gate_agent.ledger.state import ListChange
from tests.chromium import needs_chromium
from tests.console.browser_kit import (
    PHONE,
    Watched,
    add_residents,
    assert_accessible,
    result_for,
    shot,
    show_pass,
    sign_in,
    sign_in_admin,
)
from tests.console.conftest import JumpingClock, UnsyncedClock

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python.sync_playwright")

pytestmark = needs_chromium


def test_a_guard_signs_in_with_the_keypad_and_out_again(watched: Watched) -> None:
    page, site = watched.page, watched.site
    page.goto(site.url)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.get_by_role("button", name=site.guard_name).wait_for()
    shot(page, "signin-names")
    assert_accessible(page, "signin-names")

    page.get_by_role("button", name=site.guard_name).click()
    page.locator(".keypad [data-key='1']").click()
    page.locator(".keypad [data-key='back']").click()
    page.keyboard.type("000000")  # a keyboard works as well as the keypad
    page.keyboard.press("Enter")
    page.get_by_text("PIN码不对，请再试一次").wait_for()
    shot(page, "signin-pin-wrong")
    assert_accessible(page, "signin-pin")

    for digit in site.guard_pin:
        page.locator(f".keypad [data-key='{digit}']").click()
    page.locator("#pin-submit").click()
    page.locator("#app-view").wait_for(state="visible")
    assert site.guard_name in page.locator("#who").inner_text()
    page.get_by_text("等待扫码").wait_for()
    assert_accessible(page, "live-idle")

    page.get_by_role("button", name="退出登录").click()
    page.locator("#signin-view").wait_for(state="visible")
    assert page.locator("#app-view").is_hidden()
    page.reload()  # the cookie is gone: still signed out
    page.locator("#signin-view").wait_for(state="visible")

    page.locator("#admin-link").click()
    page.locator("#admin-token").fill("not-the-token")
    page.locator("#admin-form button[type=submit]").click()
    page.get_by_text("管理员令牌不对").wait_for()
    assert_accessible(page, "signin-admin")


def test_a_slow_session_answer_neither_offers_sign_in_early_nor_undoes_it(
    watched: Watched,
) -> None:
    """On a busy gate the page's first question may be answered late (CI saw it)."""
    page, site = watched.page, watched.site
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route(f"{site.url}/api/session", hold)
    page.goto(site.url)
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)  # time for a page that would wrongly offer sign-in to do so
    assert page.locator("#signin-view").is_hidden(), "sign-in offered before the gate answered"
    assert len(held) == 1
    held[0].continue_()
    page.unroute(f"{site.url}/api/session")
    page.locator("#signin-view").wait_for(state="visible")
    sign_in(page, site)
    page.get_by_role("button", name="状态").click()
    page.locator("#view-status").wait_for(state="visible")


def test_a_valid_pass_turns_the_page_green(watched: Watched) -> None:
    page, site = watched.page, watched.site
    sign_in(page, site)
    show_pass(site, "GOOD0001")
    result = result_for(page, "allow")
    site.gate.simulated_camera("in").show_nothing()
    assert page.locator("#r-reason").inner_text() == "核验通过"
    assert page.locator("#r-name").inner_text() == "张*明"
    assert page.locator("#r-unit").inner_text() == "3-2-501"
    assert page.locator("#r-kind").inner_text() == "居民"
    assert re.fullmatch(r"3[67]\.\d ℃", page.locator("#r-temp").inner_text())
    assert result.get_attribute("data-sound") == "allow"  # the sign-in tap turned sound on
    assert "GOOD0001" not in result.inner_text()  # the pass id only small, in the history
    assert "GOOD0001" in page.locator("#history .history-pass").first.inner_text()
    reason_px = page.eval_on_selector("#r-reason", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert reason_px >= 48
    shot(page, "result-allow-monitor")
    assert_accessible(page, "live-allow")

    # A page opened late (same session) lists what just happened under the big result.
    late = page.context.new_page()
    late.goto(site.url)
    late.locator("#history li[data-outcome=allow]").wait_for()
    assert "GOOD0001" in late.locator("#history").inner_text()
    # With the gate out of reach the guard is told so, in words.
    late.route("**/api/events", lambda route: route.abort())
    late.reload()
    late.get_by_text("与门岗的连接中断，正在重新连接…").wait_for()
    shot(late, "connection-lost")
    late.close()


def test_a_revoked_pass_turns_it_red_and_a_guard_may_override(watched: Watched) -> None:
    page, site = watched.page, watched.site
    site.revoke("GONE0001")
    sign_in(page, site)
    show_pass(site, "GONE0001")
    result = result_for(page, "deny")
    site.gate.simulated_camera("in").show_nothing()
    assert page.locator("#r-reason").inner_text() == "通行证已作废"
    assert result.get_attribute("data-sound") == "deny"
    shot(page, "result-deny-revoked")
    assert_accessible(page, "live-deny")

    page.get_by_role("button", name="特批放行").click()
    form = page.locator("#override-form")
    form.get_by_label("原因").select_option("medical_emergency")
    form.get_by_label("说明").fill("去医院")
    shot(page, "override-form")
    assert_accessible(page, "override-form")
    page.get_by_role("button", name="确认放行").click()
    result_for(page, "allow")
    assert page.locator("#result").get_attribute("data-reason") == "guard_override"
    assert page.locator("#override-form").is_hidden()


def test_a_recheck_takes_a_handheld_temperature(watched: Watched) -> None:
    page, site = watched.page, watched.site
    sign_in(page, site)
    site.gate.simulated_thermometer().clear()  # nobody's forehead at the sensor
    site.gate.simulated_camera("in").show_pass(site.make_pass("HAND0001"))
    result_for(page, "recheck")
    site.gate.simulated_camera("in").show_nothing()
    page.get_by_role("button", name="录入手持体温").click()
    page.locator("#handheld-temp").fill("36.5")
    shot(page, "result-recheck-handheld")
    assert_accessible(page, "handheld-form")
    page.get_by_role("button", name="提交体温").click()
    result_for(page, "allow")
    assert page.locator("#r-temp").inner_text().startswith("36.5 ℃")


def test_a_guard_registers_a_visitor(watched: Watched) -> None:
    page, site = watched.page, watched.site
    add_residents(site)
    sign_in(page, site)
    page.get_by_role("button", name="返乡人员").click()
    shot(page, "returnee-form")
    assert_accessible(page, "returnee-form")
    page.get_by_role("button", name="访客").click()
    form = page.locator("#visitor-form")
    form.get_by_label("访客姓名").fill("刘洋")
    form.get_by_label("手机号").fill("13800138000")
    page.locator("#v-host-q").fill("3-2-501")
    page.locator("#view-visitor .household-find").click()
    choice = page.locator("#view-visitor .household-choices input")
    choice.first.wait_for()
    assert choice.count() == 1 and choice.is_checked()  # one household: chosen already
    form.get_by_label("来访事由").fill("探望老人")
    form.get_by_label("车牌号（可不填）").fill("京A12345")
    form.get_by_label("体温（℃）").fill("36.5")
    shot(page, "visitor-form")
    assert_accessible(page, "visitor-form")
    page.get_by_role("button", name="登记", exact=True).click()
    result_for(page, "allow")
    assert page.locator("#view-live").is_visible()
    assert page.locator("#r-kind").inner_text() == "访客"


def test_a_resident_without_a_phone_is_recorded_by_hand(watched: Watched) -> None:
    page, site = watched.page, watched.site
    add_residents(site)
    sign_in(page, site)
    page.get_by_role("button", name="住户登记").click()
    page.get_by_label("楼号-单元-房号，或姓名").fill("3-2")
    page.get_by_role("button", name="查找").click()
    page.get_by_role("button", name="李* · 3-2-501 · 居民").click()
    page.locator("#manual-form").get_by_label("体温（℃）").fill("36.4")
    shot(page, "residents-manual")
    assert_accessible(page, "residents")
    page.get_by_role("button", name="记录", exact=True).click()
    result_for(page, "allow")
    assert page.locator("#r-name").inner_text() == "李*"
    assert page.locator("#r-temp").inner_text().startswith("36.4 ℃")


def test_the_language_toggle_shows_english_and_is_remembered(watched: Watched) -> None:
    page, site = watched.page, watched.site
    site.revoke("GONE0002")
    sign_in(page, site)
    show_pass(site, "GONE0002")
    result_for(page, "deny")
    site.gate.simulated_camera("in").show_nothing()
    page.get_by_role("button", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#r-reason").inner_text() == "Pass revoked"
    assert page.locator("#r-outcome").inner_text() == "Denied"
    assert page.get_by_role("button", name="Sign out").is_visible()
    shot(page, "result-deny-english")
    assert_accessible(page, "live-deny-english")
    page.reload()
    page.get_by_role("button", name="Sign out").wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("button", name="中文").click()
    assert page.locator("html").get_attribute("lang") == "zh-CN"


def test_the_result_fits_a_five_inch_phone(watched: Watched) -> None:
    page, site = watched.page, watched.site
    page.set_viewport_size(PHONE)
    sign_in(page, site)
    shot(page, "phone-live-idle")
    show_pass(site, "GOOD0002")
    result_for(page, "allow")
    site.gate.simulated_camera("in").show_nothing()
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], "horizontal scrolling on a phone"
    box = page.locator("#r-reason").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    reason_px = page.eval_on_selector("#r-reason", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert 24 <= reason_px < 48
    shot(page, "phone-result-allow")
    for view in ("访客", "返乡人员", "状态"):
        page.get_by_role("button", name=view).click()
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"horizontal scrolling on the {view} view"
    shot(page, "phone-status")


@pytest.mark.parametrize("console_clock", [UnsyncedClock()], ids=["unsynced"])
def test_the_status_warns_of_an_unsynced_clock_and_a_disk_nearly_full(watched: Watched) -> None:
    page, site = watched.page, watched.site
    keeper = site.gate.housekeeper
    assert keeper is not None
    keeper.usage = lambda path: Usage(10_000 * MB, 9_950 * MB, 50 * MB)
    sign_in(page, site)
    box = page.locator("#warnings")
    box.filter(has_text="存储空间不足（剩余 50 MB）").wait_for()
    assert "门岗时钟未校准" in box.inner_text()
    page.get_by_role("button", name="状态").click()
    page.locator("#s-clock").filter(has_text="未校准").wait_for()
    shot(page, "status-unsynced-disk-low")
    page.get_by_role("button", name="English").click()
    box.filter(has_text="disk is nearly full (50 MB free)").wait_for()
    assert "clock is not synced" in box.inner_text()
    keeper.usage = lambda path: Usage(10_000 * MB, 5_000 * MB, 5_000 * MB)
    keeper.tick()
    assert keeper.disk().reserve_held
    assert keeper.free_reserve()  # as after a write met a full disk
    page.locator(".tab[data-view=live]").click()
    page.locator(".tab[data-view=status]").click()  # showing the status reads it again
    box.filter(has_text="reserve is in use").wait_for()


@pytest.mark.parametrize("console_clock", [JumpingClock()], ids=["jumping"])
def test_the_status_warns_when_the_clock_jumped(watched: Watched) -> None:
    page, site = watched.page, watched.site
    clock = site.gate.station.clock
    assert isinstance(clock, JumpingClock)
    sign_in(page, site)
    page.get_by_role("button", name="状态").click()
    page.locator("#s-clock").filter(has_text="已校准").wait_for()
    clock.offset = timedelta(hours=-4)  # a wrong RTC, or an admin setting the time by hand
    page.locator(".tab[data-view=live]").click()
    page.locator(".tab[data-view=status]").click()  # showing the status reads it again
    page.locator("#warnings").filter(has_text="门岗时钟刚被调回了 240 分钟").wait_for()
    page.locator("#s-clock").filter(has_text="刚跳变").wait_for()
    shot(page, "status-clock-jumped")
    page.get_by_role("button", name="English").click()
    page.locator("#warnings").filter(has_text="set back by 240 min").wait_for()


def test_admins_see_the_mode_switch_and_guards_do_not(watched: Watched) -> None:
    page, site = watched.page, watched.site
    sign_in(page, site)
    page.get_by_role("button", name="状态").click()
    page.locator("#s-mode").filter(has_text="筛查").wait_for()
    assert page.locator("#mode-form").is_hidden()
    shot(page, "status-guard")
    assert_accessible(page, "status")
    page.get_by_role("button", name="退出登录").click()
    page.locator("#signin-view").wait_for(state="visible")

    sign_in_admin(page, site)
    page.get_by_role("button", name="状态").click()
    assert page.locator("#mode-form").is_visible()
    assert_accessible(page, "status-admin")
    page.get_by_role("button", name="封闭（仅限居民）").click()
    page.get_by_role("button", name="确认", exact=True).click()
    page.locator("#mode-badge").filter(has_text="封闭管理").wait_for()
    assert page.locator(".mode-btn[data-mode=lockdown]").get_attribute("aria-pressed") == "true"
    shot(page, "status-admin-lockdown")


def test_the_other_gates_alerts_show_on_the_live_page_and_the_status(watched: Watched) -> None:
    page, site = watched.page, watched.site
    now = datetime.now(UTC)
    alert = {
        "gate_id": "G2", "stream_id": "bbbbbbbb-0000-4000-8000-000000000000", "seq": 3,
        "at": (now - timedelta(minutes=4)).isoformat(), "reason": "quarantined_exit",
        "household_id": "H0301", "unit": "3-2-501", "display_name": "张*明",
        "pass_id": "P7K2M9QX4T",
    }  # fmt: skip
    site.gate.ledger.state.apply_changes([ListChange("alerts", 9, [alert])])
    sign_in(page, site)
    panel = page.locator("#live-alerts")
    panel.wait_for(state="visible")
    text = page.locator("#live-alerts-list").inner_text()
    assert "G2" in text and "3-2-501" in text and "张*明" in text and "居家隔离" in text
    assert_accessible(page, "live-alerts")
    page.get_by_role("button", name="状态").click()
    page.locator("#s-alerts").filter(has_text="1").wait_for()
    page.get_by_role("button", name="English").click()
    assert "Household in isolation" in page.locator("#s-alerts-list").inner_text()
    shot(page, "status-alerts-english")
