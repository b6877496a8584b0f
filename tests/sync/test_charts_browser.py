"""charts.js in a real browser (Debian's chromium): the bars, labels and tables it draws
from a running server's /v1/admin/stats and /v1/admin/gates, and nothing fetched from
anywhere but that server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

import sync.server
from gate_agent.core.messages import OUTCOMES, REASONS
from sync.server.app import create_app
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.sync.stream_helpers import ADMIN_TOKEN, TickingClock, centre, serving
from tests.sync.test_stats import GATE_A, GATE_B, GATE_D, RECEIVED, sync_gate

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

STATIC = Path(sync.server.__file__).parent / "static" / "admin"
PAGE = Path(__file__).parent / "charts_page"
WINDOW = {"since": "2024-03-01T23:30", "until": "2024-03-02T00:45"}
#: Bars of the hourly chart: (gate, Shanghai hour, direction) -> entries (test_stats.py's data).
HOURLY = {
    ("gate-a", "2024-03-01T23:00:00+08:00", "in"): 2,
    ("gate-a", "2024-03-01T23:00:00+08:00", "out"): 1,
    ("gate-a", "2024-03-02T00:00:00+08:00", "in"): 4,
    ("gate-a", "2024-03-02T00:00:00+08:00", "out"): 1,
    ("gate-b", "2024-03-01T23:00:00+08:00", "in"): 1,
    ("gate-b", "2024-03-02T00:00:00+08:00", "out"): 1,
    ("gate-d", "2024-03-02T00:00:00+08:00", "in"): 1,
}


def serve_charts(app: FastAPI) -> None:
    """Serve charts.js where the admin page does (unless it does already), and the test page."""
    if not any(getattr(route, "path", None) == "/admin/static" for route in app.routes):
        app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")

    @app.get("/test/charts")
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    @app.get("/test/charts/page.js")
    def script() -> FileResponse:
        return FileResponse(PAGE / "page.js", media_type="text/javascript")


@dataclass
class Browser:
    page: Any
    url: str
    elsewhere: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def open(self, lang: str = "zh-CN", **query: str) -> None:
        fragment = urlencode({"token": ADMIN_TOKEN, "lang": lang, **query})
        self.page.goto("about:blank")
        self.page.goto(f"{self.url}/test/charts#{fragment}")
        assert self.page.evaluate("window.loaded") == "ok"

    def counts(self, selector: str, *keys: str) -> dict[Any, int]:
        found = self.page.eval_on_selector_all(
            selector,
            "(nodes, keys) => nodes.map((n) => [keys.map((k) => n.dataset[k]),"
            " Number(n.dataset.count), Number(n.getAttribute('height'))])",
            list(keys),
        )
        return {tuple(k) if len(k) > 1 else k[0]: count for k, count, _ in found}

    def texts(self, selector: str) -> list[str]:
        return [str(t) for t in self.page.locator(selector).all_text_contents()]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    data = tmp_path_factory.mktemp("charts")
    with centre(data / "central") as opened:
        sync_gate(opened.streams, data / "a.sqlite3", "gate-a", GATE_A)
        sync_gate(opened.streams, data / "b.sqlite3", "gate-b", GATE_B, backlog=7)
        sync_gate(opened.streams, data / "d.sqlite3", "gate-d", GATE_D, clock_synced=False)
        opened.code("gate-z", RECEIVED)  # enrolled, never uploaded: stale
        clock = TickingClock(RECEIVED + timedelta(minutes=5))
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, clock)
        serve_charts(app)
        with serving(app) as url, sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = chromium.new_page(viewport={"width": 1000, "height": 1600})
                opened_browser = Browser(page, url)
                host = urlsplit(url).netloc

                def guard(route: Any) -> None:
                    target = urlsplit(route.request.url)
                    if target.scheme in ("http", "https") and target.netloc == host:
                        opened_browser.asked.append(target.path)
                        route.continue_()
                    else:
                        opened_browser.elsewhere.append(route.request.url)
                        route.abort()

                page.route(re.compile(r"^(?!about:).*"), guard)
                yield opened_browser
            finally:
                chromium.close()
        # Nothing was asked of any other server, in any test.
        assert opened_browser.elsewhere == []


def test_entries_per_hour_are_stacked_bars_per_gate(browser: Browser) -> None:
    browser.open(**WINDOW)
    chart = browser.page.locator("[data-chart=hourly] svg")
    assert chart.get_attribute("role") == "img"
    assert chart.locator("title").first.text_content() == "每小时进出人次（按门岗）"
    assert "共 11 条记录：进门 8，出门 3" in (chart.locator("desc").text_content() or "")
    bars = browser.counts("[data-chart=hourly] rect[data-count]", "gate", "hour", "direction")
    assert bars == HOURLY
    heights = browser.page.eval_on_selector_all(
        "[data-chart=hourly] rect[data-count]",
        "nodes => nodes.map((n) => [n.dataset.gate + ' ' + n.dataset.hour.slice(11, 13)"
        " + ' ' + n.dataset.direction, Number(n.getAttribute('height'))])",
    )
    height = dict(heights)
    # One scale for every bar: gate-a's 4 in at midnight is four times gate-d's 1.
    assert height["gate-a 00 in"] == pytest.approx(4 * height["gate-d 00 in"], rel=1e-3)
    assert height["gate-b 00 out"] == pytest.approx(height["gate-d 00 in"], rel=1e-3)
    assert browser.page.locator("[data-chart=hourly] rect[data-legend]").count() == 3
    assert browser.texts("[data-chart=hourly] svg text")[:3] == ["gate-a", "gate-b", "gate-d"]
    # Each bar tells its number on hover, and the numbers are there as a table.
    tip = browser.page.locator("[data-chart=hourly] rect[data-gate=gate-a][data-count='4'] title")
    assert tip.text_content() == "gate-a 3/2 00:00 进门 4"
    rows = browser.page.locator("[data-chart=hourly] details tbody tr")
    assert rows.count() == 5
    assert rows.nth(0).locator("td").all_text_contents() == ["gate-a", "3/1 23:00", "2", "1"]


def test_a_long_window_has_a_bar_per_day(browser: Browser) -> None:
    browser.open(since="2024-02-15", until="2024-03-15")
    assert browser.page.locator("[data-chart=hourly] h3").inner_text() == "每日进出人次（按门岗）"
    bars = browser.counts("[data-chart=hourly] rect[data-count]", "gate", "hour", "direction")
    # The whole of both days: the entries just outside test_stats.py's window are in.
    assert bars == {
        ("gate-a", "2024-03-01", "in"): 3, ("gate-a", "2024-03-01", "out"): 1,
        ("gate-a", "2024-03-02", "in"): 5, ("gate-a", "2024-03-02", "out"): 1,
        ("gate-b", "2024-03-01", "in"): 1, ("gate-b", "2024-03-02", "out"): 1,
        ("gate-d", "2024-03-02", "in"): 1,
    }  # fmt: skip
    tip = browser.page.locator("[data-chart=hourly] rect[data-gate=gate-a][data-count='5'] title")
    assert tip.text_content() == "gate-a 3/2 进门 5"


def test_refusals_fevers_and_people_in_chinese(browser: Browser) -> None:
    browser.open(**WINDOW)
    assert browser.texts("[data-chart=refusals] text[data-label]") == [
        "发热，禁止进入", "本户外出次数已用完", "体温偏高，请复测", "通行证已作废",
    ]  # fmt: skip
    assert browser.counts("[data-chart=refusals] rect[data-count]", "reason") == {
        "fever": 1, "quota_used": 1, "recheck_temperature": 1, "revoked": 1,
    }  # fmt: skip
    assert browser.texts("[data-chart=refusals] text[data-value]") == ["1", "1", "1", "1"]
    assert browser.counts("[data-chart=fevers] rect[data-count]", "day", "kind") == {
        ("2024-03-01", "fever"): 1, ("2024-03-01", "recheck"): 0,
        ("2024-03-02", "fever"): 0, ("2024-03-02", "recheck"): 1,
    }  # fmt: skip
    zero = browser.page.locator("[data-chart=fevers] rect[data-day='2024-03-02'][data-kind=fever]")
    assert float(zero.get_attribute("height")) == 0
    people = browser.page.locator("[data-chart=people] tbody tr")
    assert people.nth(1).inner_text().split() == ["2024-03-02", "3", "0", "1"]


def test_gates_sync_state_with_stale_gates_in_red(browser: Browser) -> None:
    browser.open(**WINDOW)
    sync_rows = browser.page.locator("[data-chart=sync] tbody tr")
    assert sync_rows.count() == 4
    fresh = browser.page.locator("[data-chart=sync] tr[data-gate=gate-a]")
    assert fresh.locator("td").nth(0).inner_text() == "5分钟前"
    assert fresh.get_attribute("class") == "fresh"
    backlog = browser.page.locator("[data-chart=sync] tr[data-gate=gate-b] td[data-backlog]")
    assert backlog.get_attribute("data-backlog") == "7" and "7" in backlog.inner_text()
    stale = browser.page.locator("[data-chart=sync] tr[data-gate=gate-z]")
    assert stale.get_attribute("class") == "stale"
    assert stale.locator("td").all_inner_texts()[0::2] == ["从未上传", "超时未上传"]
    assert stale.evaluate("row => getComputedStyle(row).color") == "rgb(198, 40, 40)"
    assert fresh.evaluate("row => getComputedStyle(row).color") != "rgb(198, 40, 40)"


def test_english_labels(browser: Browser) -> None:
    browser.open(lang="en", **WINDOW)
    assert browser.page.locator("[data-chart=hourly] h3").inner_text() == (
        "Entries per hour, by gate"
    )
    assert browser.texts("[data-chart=refusals] text[data-label]") == [
        "Fever: entry refused", "Household exit quota used", "Temperature high: measure again",
        "Pass revoked",
    ]  # fmt: skip
    assert browser.page.locator("[data-chart=sync] tr[data-gate=gate-a] td").first.inner_text() == (
        "5 min ago"
    )


def test_an_empty_window_says_so(browser: Browser) -> None:
    browser.open(lang="en", since="2024-05-01", until="2024-05-02")
    assert browser.page.locator("rect[data-count]").count() == 0
    assert browser.texts(".gate-chart-empty") == [
        "No entries in this period", "No refusals in this period", "No fevers in this period",
        "No entries in this period",
    ]  # fmt: skip
    # The gates are still there: their sync state does not depend on the window.
    assert browser.page.locator("[data-chart=sync] tbody tr").count() == 4


def test_a_refused_load_says_why(browser: Browser) -> None:
    browser.page.goto("about:blank")
    browser.page.goto(f"{browser.url}/test/charts#token=wrong&since=2024-03-01")
    assert browser.page.evaluate("window.loaded") == "error: unauthorized"
    assert "unauthorized" in browser.page.locator(".gate-chart-error").inner_text()


def test_the_words_are_the_consoles(browser: Browser) -> None:
    browser.open(**WINDOW)
    words = browser.page.evaluate("window.GateChartWords")
    assert words["reasons"] == {str(code): list(pair) for code, pair in REASONS.items()}
    assert words["outcomes"] == {str(code): list(pair) for code, pair in OUTCOMES.items()}
    # Only the server under test was asked, for the page, its scripts and the two endpoints.
    assert {"/admin/static/charts.js", "/v1/admin/stats", "/v1/admin/gates"} <= set(browser.asked)
