"""More of the guard console in Debian's chromium: the sounds it plays, live events that
come back after a cut, touch targets on a phone and a monitor, a stale-lists warning.

The browser, the watched page and the verbs are in ``browser_kit.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.chromium import needs_chromium
from tests.console.browser_kit import (
    MONITOR,
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
from tests.console.conftest import JumpingClock

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python.sync_playwright")

pytestmark = needs_chromium

# Every tone the page starts, as {freq, wave, start, stop} (AudioContext seconds), grouped by
# the call that scheduled them: one group per outcome announced (tones of one pattern are
# all started in one go, so a group closes when that task's microtasks run).
RECORD_TONES = """
(() => {
  const groups = [];
  let open = null;
  const proto = window.OscillatorNode.prototype;
  const start = proto.start;
  const stop = proto.stop;
  proto.start = function (when) {
    if (open === null) {
      open = [];
      groups.push(open);
      queueMicrotask(function () { open = null; });
    }
    this.__tone = { freq: this.frequency.value, wave: this.type, start: when || 0, stop: null };
    open.push(this.__tone);
    return start.apply(this, arguments);
  };
  proto.stop = function (when) {
    if (this.__tone) this.__tone.stop = when;
    return stop.apply(this, arguments);
  };
  window.__toneGroups = groups;
})();
"""


def tones_heard(page: Any, before: int) -> tuple[tuple[float, str, float, float], ...]:
    """The first pattern played after ``before`` groups: (Hz, wave, seconds, start offset)."""
    page.wait_for_function(f"() => window.__toneGroups.length > {before}")
    group = page.evaluate(f"() => window.__toneGroups[{before}]")
    first = group[0]["start"]
    return tuple(
        (t["freq"], t["wave"], round(t["stop"] - t["start"], 3), round(t["start"] - first, 3))
        for t in group
    )


def tone_groups(page: Any) -> int:
    return int(page.evaluate("() => window.__toneGroups.length"))


def test_each_outcome_plays_its_own_sound(watched: Watched) -> None:
    page, site = watched.page, watched.site
    page.context.add_init_script(RECORD_TONES)
    site.revoke("GONE0003")
    sign_in(page, site)  # the tap on a name turns sound on
    heard: dict[str, tuple[tuple[float, str, float, float], ...]] = {}

    # Nobody at the sensor first: a person's samples linger there for a moment after.
    before = tone_groups(page)
    site.gate.simulated_thermometer().clear()
    site.gate.simulated_camera("in").show_pass(site.make_pass("HAND0003"))
    result_for(page, "recheck")
    heard["recheck"] = tones_heard(page, before)
    site.gate.simulated_camera("in").show_nothing()

    before = tone_groups(page)
    show_pass(site, "GOOD0003")
    result_for(page, "allow")
    heard["allow"] = tones_heard(page, before)
    site.gate.simulated_camera("in").show_nothing()

    before = tone_groups(page)
    show_pass(site, "GONE0003")
    result_for(page, "deny")
    heard["deny"] = tones_heard(page, before)
    site.gate.simulated_camera("in").show_nothing()

    for outcome, pattern in heard.items():
        assert pattern, f"{outcome}: nothing was played"
        assert all(20 <= hz <= 20_000 and seconds > 0 for hz, _, seconds, _ in pattern), outcome
    assert heard["allow"] != heard["deny"]
    assert heard["allow"] != heard["recheck"]
    assert heard["deny"] != heard["recheck"]
    # Told apart by ear, not only by a detail: pitch and number of tones both differ.
    pitches = {outcome: {hz for hz, _, _, _ in p} for outcome, p in heard.items()}
    counts = {outcome: len(p) for outcome, p in heard.items()}
    assert len({frozenset(p) for p in pitches.values()}) == 3
    assert len(set(counts.values())) == 3


def test_live_events_come_back_after_the_connection_is_cut(watched: Watched) -> None:
    page, site = watched.page, watched.site
    site.revoke("GONE0004")
    sign_in(page, site)
    show_pass(site, "GOOD0004")
    result_for(page, "allow")
    site.gate.simulated_camera("in").show_nothing()
    streams = watched.requests.count(f"{site.url}/api/events")

    # The page's event stream is cut and the console is out of reach for a moment.
    site.stop_serving()
    page.get_by_text("与门岗的连接中断，正在重新连接…").wait_for()
    assert page.locator("body").get_attribute("data-live") == "closed"
    shot(page, "reconnect-cut")
    site.serve_again()
    page.locator("body[data-live='open']").wait_for(state="attached")
    assert page.locator("#conn-banner").is_hidden()
    assert watched.requests.count(f"{site.url}/api/events") > streams

    # A decision made after the page came back turns it red, by itself.
    show_pass(site, "GONE0004")
    result_for(page, "deny")
    site.gate.simulated_camera("in").show_nothing()
    assert page.locator("#r-reason").inner_text() == "通行证已作废"
    assert "GONE0004" in page.locator("#history .history-pass").first.inner_text()


# Every visible control's box (a radio's or checkbox's: its label's, which is what a
# finger taps) against the stylesheet's own --target; the ones smaller, described.
SMALL_TARGETS = """
() => {
  const target = parseFloat(getComputedStyle(document.documentElement)
    .getPropertyValue("--target"));
  const small = [];
  let seen = 0;
  const controls = document.querySelectorAll(
    "button, a[href], input:not([type=hidden]), select, textarea, [role=button]");
  controls.forEach(function (el) {
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return;
    const tapped = (el.type === "radio" || el.type === "checkbox") && el.closest("label");
    const box = (tapped || el).getBoundingClientRect();
    seen += 1;
    if (box.width + 0.5 < target || box.height + 0.5 < target) {
      const name = el.id ? "#" + el.id : el.tagName.toLowerCase() + "." + el.className;
      small.push(name + " '" + (el.textContent || el.value || "").trim().slice(0, 20) +
        "' " + Math.round(box.width) + "x" + Math.round(box.height));
    }
  });
  return { target: target, seen: seen, small: small };
}
"""


def assert_large_targets(page: Any, view: str) -> None:
    """At a 5-inch phone's size and a 1080p monitor's, every control is big enough."""
    for size in (PHONE, MONITOR):
        page.set_viewport_size(size)
        found = page.evaluate(SMALL_TARGETS)
        assert found["target"] >= 44, "the stylesheet's --target is below 44 CSS px"
        assert found["seen"] > 0, f"{view}: no control visible"
        assert found["small"] == [], f"{view} at {size['width']}px: {found['small']}"
    page.set_viewport_size(MONITOR)


def test_every_control_is_a_large_target_on_a_phone_and_a_monitor(watched: Watched) -> None:
    page, site = watched.page, watched.site
    add_residents(site)
    site.revoke("GONE0005")
    page.goto(site.url)
    page.get_by_role("button", name=site.guard_name).wait_for()
    assert_large_targets(page, "sign-in: names")
    page.locator("#admin-link").click()
    assert_large_targets(page, "sign-in: admin token")
    page.locator("#admin-back").click()
    page.get_by_role("button", name=site.guard_name).click()
    assert_large_targets(page, "sign-in: PIN keypad")

    sign_in(page, site)
    assert_large_targets(page, "live: waiting")
    show_pass(site, "GONE0005")
    result_for(page, "deny")
    site.gate.simulated_camera("in").show_nothing()
    page.get_by_role("button", name="特批放行").click()
    page.locator("#override-form").wait_for()
    assert_large_targets(page, "live: override")
    page.set_viewport_size(PHONE)
    shot(page, "phone-override-form")
    assert_accessible(page, "phone-override-form")
    page.set_viewport_size(MONITOR)
    page.locator("#override-form .cancel-btn").click()

    page.locator(".tab[data-view=residents]").click()
    page.locator("#lookup-q").fill("3-2")
    page.locator("#lookup-form button[type=submit]").click()
    page.locator("#lookup-results .resident-btn").first.click()
    page.locator("#manual-form").wait_for()
    assert_large_targets(page, "manual lookup")

    for view, search in (("visitor", "#v-host-q"), ("returnee", "#rt-home-q")):
        page.locator(f".tab[data-view={view}]").click()
        page.locator(search).fill("3-2-501")
        page.locator(f"#view-{view} .household-find").click()
        page.locator(f"#view-{view} .household-choices label").first.wait_for()
        assert_large_targets(page, view)

    page.locator(".tab[data-view=status]").click()
    page.locator("#s-mode").filter(has_text="筛查").wait_for()
    assert_large_targets(page, "status")

    page.get_by_role("button", name="退出登录").click()
    page.locator("#signin-view").wait_for(state="visible")
    sign_in_admin(page, site)
    page.locator(".tab[data-view=status]").click()
    page.locator(".mode-btn[data-mode=open]").click()
    page.locator("#mode-confirm").wait_for()
    assert_large_targets(page, "status: the admin's mode switch")


@pytest.mark.parametrize("console_overrides", [{"gate": {"lists_max_age_hours": 1}}])
@pytest.mark.parametrize("console_clock", [JumpingClock()], ids=["jumping"])
def test_the_guard_is_warned_when_the_lists_are_old(watched: Watched) -> None:
    page, site = watched.page, watched.site
    clock = site.gate.station.clock
    assert isinstance(clock, JumpingClock)
    sign_in(page, site)
    page.get_by_role("button", name="状态").click()
    page.locator("#s-lists").filter(has_text="分钟前更新").wait_for()
    assert "bad" not in (page.locator("#s-lists").get_attribute("class") or "")
    assert "名单" not in page.locator("#warnings").inner_text()

    clock.offset = timedelta(hours=3)  # no word from the centre for three hours
    page.locator(".tab[data-view=live]").click()
    page.locator(".tab[data-view=status]").click()  # showing the status reads it again
    warning = page.locator("#warnings li").filter(
        has_text="名单已过期（3小时前更新），请联系管理员"
    )
    warning.wait_for()
    assert page.locator("#s-lists").inner_text() == "已过期（3小时前更新）"
    assert "bad" in (page.locator("#s-lists").get_attribute("class") or "")
    shot(page, "status-lists-stale")
    page.get_by_role("button", name="English").click()
    page.locator("#warnings li").filter(has_text="Lists are stale (updated 3 h ago)").wait_for()


@pytest.mark.parametrize("console_clock", [JumpingClock()], ids=["jumping"])
def test_the_page_signs_the_guard_out_when_the_shift_ends(watched: Watched) -> None:
    page, site = watched.page, watched.site
    clock = site.gate.station.clock
    assert isinstance(clock, JumpingClock)
    sign_in(page, site)
    clock.offset = timedelta(hours=8, minutes=1)  # the PIN was issued for 8 hours
    # Nobody taps anything: the live stream ends with the session, and the page notices.
    page.locator("#signin-view").wait_for(state="visible")
    page.get_by_text("登录已过期，请重新登录").wait_for()
    page.get_by_text("当前没有当班保安，请联系管理员。").wait_for()
    assert page.locator("#app-view").is_hidden()
    assert page.get_by_role("button", name=site.guard_name).count() == 0
    shot(page, "signin-shift-over")
