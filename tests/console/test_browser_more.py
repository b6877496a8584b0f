"""More of the guard console in Debian's chromium: the sounds it plays, live events that
come back after a cut, touch targets on a phone and a monitor, a stale-lists warning.

The browser, the watched page and the verbs are in ``browser_kit.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.browser_kit import (
    Watched,
    needs_chromium,
    result_for,
    shot,
    show_pass,
    sign_in,
)

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
