"""What the console's browser tests share: Debian's chromium, a watched page, the verbs.

Playwright and axe-playwright-python are imported when a browser is first wanted, so the
API tests beside these run where they are not installed. Screenshots and axe-core
reports go to ``test-artifacts/console/`` for people to look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.limits import PATIENCE_S
from tests.test_station import person_at_sensor

if TYPE_CHECKING:
    from tests.console.conftest import ConsoleSite

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PHONE = {"width": 360, "height": 640}
MONITOR = {"width": 1920, "height": 1080}
#: Playwright's waits poll until this: reached only when something is wrong.
WAIT_MS = int(PATIENCE_S * 1000)


class Watched:
    """A page with what it asked for and what went wrong in it, checked when the test ends."""

    def __init__(self, page: Any, site: ConsoleSite) -> None:
        self.page = page
        self.site = site
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def check(self) -> None:
        outside = [url for url in self.requests if not url.startswith(self.site.url)]
        assert outside == [], "the page reached beyond the gate"
        assert self.errors == [], "the page raised"


def watch(browser: Any, site: ConsoleSite) -> Iterator[Watched]:
    """A fresh context (no cookies, no stored language) at monitor size (a fixture's body)."""
    context = browser.new_context(viewport=MONITOR, service_workers="block")
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        seen = Watched(page, site)
        yield seen
        seen.check()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    """Keep a screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


_AXE: list[Any] = []


def _axe_script() -> str:
    # The script is the package's axe.min.js: nothing comes from a network.
    if not _AXE:
        axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright")
        _AXE.append(axe_sync.Axe())
    return str(_AXE[0].axe_script)


def assert_accessible(page: Any, state: str) -> None:
    """axe-core (from the installed package, injected by Playwright) finds nothing serious."""
    # Axe().run() evaluates all of axe.min.js on every call; once per page is enough.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_script())
    results = page.evaluate("() => axe.run({resultTypes: ['violations']})")
    violations = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = {"state": state, "violations": violations}
    (ARTIFACTS / f"axe-{state}.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{state}: {serious}"


def sign_in(page: Any, site: ConsoleSite) -> None:
    """Tap the guard's name, then the PIN on the keypad."""
    page.goto(site.url)
    page.get_by_role("button", name=site.guard_name).click()
    for digit in site.guard_pin:
        page.locator(f".keypad [data-key='{digit}']").click()
    page.locator("#pin-submit").click()
    page.locator("#app-view").wait_for(state="visible")
    page.locator("body[data-live='open']").wait_for(state="attached")


def sign_in_admin(page: Any, site: ConsoleSite) -> None:
    """The admin link, then the token."""
    page.goto(site.url)
    page.locator("#admin-link").click()
    page.locator("#admin-token").fill(site.admin_token)
    page.locator("#admin-form button[type=submit]").click()
    page.locator("#app-view").wait_for(state="visible")
    page.locator("body[data-live='open']").wait_for(state="attached")


def show_pass(site: ConsoleSite, pass_id: str, *, celsius: float = 36.6) -> None:
    """A person with this pass and temperature steps up to the in-lane: at the sensor
    first (a few samples taken now, so a loaded machine's slow sampler thread cannot
    leave the gate without a reading), then the pass before the camera."""
    person_at_sensor(site.gate, celsius)
    site.gate.simulated_camera("in").show_pass(site.make_pass(pass_id))


def add_residents(site: ConsoleSite) -> None:
    """The centre's resident directory: two people of household H0301 at 3-2-501."""
    now = datetime.now(UTC).replace(microsecond=0)
    common = {
        "kind": "resident", "household_id": "H0301", "scope": "compound:C1",
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
        "unit": "3-2-501", "exit_quota": None,
    }  # fmt: skip
    items = [
        common | {"pass_id": "DIRA0001", "display_name": "张*明"},
        common | {"pass_id": "DIRA0002", "display_name": "李*"},
    ]
    site.gate.ledger.state.apply_snapshots({"directory": (1, items)})


def result_for(page: Any, outcome: str) -> Any:
    """The big result once it shows this outcome."""
    result = page.locator(f"#result.result-{outcome}")
    result.wait_for()
    return result
