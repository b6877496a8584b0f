"""The admin page in Debian's chromium (Playwright, never a downloaded browser): every flow,
nothing loaded from beyond the server, and a printed card page that reads back.

Screenshots go to ``test-artifacts/admin/`` for people to look at.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import launch_browser, needs_chromium
from tests.limits import PATIENCE_S
from tests.sync.admin_helpers import NAME, PASSWORD, Site, admin_site
from tests.sync.stream_helpers import GATE, NOW, TickingClock

sync_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
LAPTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}
WAIT_MS = int(PATIENCE_S * 1000)  # reached only when something is wrong
EXPECTED_REFUSAL = re.compile(r"^Failed to load resource: the server responded with a status of 4")
GATE_AGENT = Path(sys.executable).with_name("gate-agent")

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


class Admin:
    """The page in a fresh browser context, with what it asked for and what went wrong."""

    def __init__(self, context: Any, site: Site) -> None:
        self.context = context
        self.site = site
        self.outside: list[str] = []
        self.errors: list[str] = []
        # Every request beyond the server fails, and fails the test: the page loads nothing.
        context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), self._outside)
        self.page = self.watch(context.new_page())

    def _outside(self, route: Any) -> None:
        self.outside.append(route.request.url)
        route.abort()

    def watch(self, page: Any) -> Any:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # CSP refusals and failed scripts show up as console errors; refusals the page
        # asked for (401 before sign-in, 422 of a bad form) are answers, not errors.
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        if message.type == "error" and not EXPECTED_REFUSAL.match(message.text):
            self.errors.append(message.text)

    def check(self) -> None:
        assert self.outside == [], "the page reached beyond the server"
        assert self.errors == [], "the page raised or logged errors"

    def sign_in(self, password: str = PASSWORD) -> None:
        page = self.page
        page.goto(f"{self.site.url}/admin/")
        page.fill("#signin-name", NAME)
        page.fill("#signin-password", password)
        page.click("#signin-form button[type=submit]")

    def open(self, panel: str) -> Any:
        self.page.click(f"#tab-{panel}")
        section = self.page.locator(f"#panel-{panel}")
        sync_api.expect(section).to_be_visible()
        return section


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with admin_site(tmp_path / "central", clock=TickingClock(NOW)) as opened:
        opened.centre.issuer.new_key(NOW)
        yield opened


def admin_in(browser: Any, site: Site, viewport: dict[str, int] = LAPTOP, **options: Any) -> Admin:
    context = browser.new_context(viewport=viewport, service_workers="block", **options)
    context.set_default_timeout(WAIT_MS)
    return Admin(context, site)


@pytest.fixture
def admin(browser: Any, site: Site) -> Iterator[Admin]:
    opened = admin_in(browser, site)
    try:
        yield opened
        opened.check()
    finally:
        opened.context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_accessible(page: Any, state: str) -> None:
    """axe-core (the installed package's script, injected) finds nothing serious."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe.axe_script)
    results = page.evaluate("() => axe.run({resultTypes: ['violations']})")
    violations = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"axe-{state}.json").write_text(
        json.dumps(violations, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{state}: {serious}"


def result_of(section: Any) -> Any:
    return section.locator(".result:not([hidden])").first


def test_sign_in_wrong_password_language_and_sign_out(admin: Admin) -> None:
    page = admin.page
    admin.sign_in("wrong-password")
    error = page.locator("#signin-error")
    sync_api.expect(error).to_contain_text("用户名或密码错误")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("#lang")
    sync_api.expect(page.locator("#signin h2")).to_have_text("Admin sign-in")
    admin.sign_in()  # a reload: the language is remembered
    sync_api.expect(page.locator("#who")).to_have_text(NAME)
    sync_api.expect(page.locator("#tab-fleet")).to_have_text("Gates")
    shot(page, "fleet-en")
    page.click("#lang")
    sync_api.expect(page.locator("#tab-fleet")).to_have_text("门岗状态")
    page.reload()  # the session survives a reload
    sync_api.expect(page.locator("#who")).to_have_text(NAME)
    page.click("#sign-out")
    sync_api.expect(page.locator("#signin")).to_be_visible()
    page.reload()
    sync_api.expect(page.locator("#signin")).to_be_visible()


def test_fleet_shows_each_gates_sync_state(admin: Admin) -> None:
    admin.site.centre.code(GATE)
    admin.sign_in()
    section = admin.open("fleet")
    row = section.locator("tbody tr").filter(has_text=GATE)
    sync_api.expect(row).to_contain_text("失联")  # never seen: stale


def test_residents_import_checks_first_names_bad_rows_then_imports(
    admin: Admin, tmp_path: Path
) -> None:
    header = "社区,小区,楼号,单元,房号,户号,姓名,电话,身份\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "LGQ,C1,3,2,501,H0301,张三,138001380000,居民\n", encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text(
        header + "LGQ,C1,3,2,501,H0301,张三,13800138000,居民\nLGQ,C1,3,2,502,H0302,李四,,业主\n",
        encoding="utf-8",
    )
    admin.sign_in()
    section = admin.open("residents")
    importer = section.locator("button.danger")
    section.locator("input[type=file]").set_input_files(str(bad))
    section.locator("button[data-t=check_file]").click()
    sync_api.expect(section.locator(".problems li").first).to_contain_text("row 2, column phone")
    sync_api.expect(importer).to_be_disabled()
    section.locator("input[type=file]").set_input_files(str(good))
    section.locator("button[data-t=check_file]").click()
    sync_api.expect(result_of(section)).to_contain_text("检查通过")
    assert admin.site.centre.central.residents() == []  # a dry run writes nothing
    importer.click()
    sync_api.expect(result_of(section)).to_contain_text("已导入")
    assert len(admin.site.centre.central.residents("C1")) == 2
    admin.page.fill("#residents-compound", "C1")
    section.locator("button:has-text('查看')").click()
    listed = admin.page.locator("#residents-list tbody tr")
    sync_api.expect(listed).to_have_count(2)
    sync_api.expect(listed.last).to_contain_text("李四")


def test_passes_issue_revoke_reissue_expire_and_bulk_with_progress(admin: Admin) -> None:
    page = admin.page
    admin.sign_in()
    section = admin.open("passes")
    form = section.locator("#issue-form")
    form.locator("[name=household]").fill("H0301")
    form.locator("[name=name]").fill("张三明")
    form.locator("[name=scope]").fill("compound:C1")
    form.locator("button[type=submit]").click()
    issued = form.locator("xpath=following-sibling::div[1]")
    sync_api.expect(issued).to_contain_text("已签发")
    sync_api.expect(issued).to_contain_text("张*明")
    for count in (2, 3):  # two more for the same household, through the form too
        before = issued.inner_text()
        form.locator("button[type=submit]").click()
        sync_api.expect(issued).not_to_have_text(before)  # a new pass id
        assert len(admin.site.centre.central.household_passes(["H0301"])) == count
    page.fill("#lookup-household", "H0301")
    section.locator("button:has-text('查看')").click()
    rows = page.locator("#household-passes tbody tr")
    sync_api.expect(rows).to_have_count(3)
    first, second, third = (rows.nth(n).locator("td").first.inner_text() for n in range(3))
    # Revoking needs a reason: refused in the page, nothing sent.
    page.click(f"button[data-action=revoke][data-pass='{first}']")
    sync_api.expect(section.locator(".result.error")).to_contain_text("注销需要填写原因")
    page.fill("#revoke-reason", "搬走了")
    page.click(f"button[data-action=revoke][data-pass='{first}']")
    sync_api.expect(rows.filter(has_text=first)).to_contain_text("已注销")
    page.click(f"button[data-action=expire][data-pass='{second}']")
    sync_api.expect(rows.filter(has_text=second)).to_contain_text("已注销")
    page.click(f"button[data-action=reissue][data-pass='{third}']")
    sync_api.expect(rows).to_have_count(4)
    store = admin.site.centre.central
    assert store.get_pass(first).revoke_reason == "搬走了"
    assert store.get_pass(second).revoke_reason == "expired early"
    assert (store.get_pass(third).revoke_reason or "").startswith("reissued as ")
    assert {row.by for row in store.audit_rows()} == {NAME}

    residents(admin.site, 30)
    bulk = section.locator("#bulk-form")
    bulk.locator("[name=compound]").fill("C9")
    bulk.locator("[name=days]").fill("30")
    bulk.locator("button[type=submit]").click()
    sync_api.expect(page.locator("#bulk-count")).to_have_text("30 / 30")
    sync_api.expect(section.locator(".result.ok").last).to_contain_text("签发 30")
    bulk.locator("button[type=submit]").click()  # again: everyone holds one now
    sync_api.expect(section.locator(".result.ok").last).to_contain_text("跳过（已持有） 30")
    bulk.locator("[name=compound]").fill("NOWHERE")
    bulk.locator("button[type=submit]").click()
    sync_api.expect(section.locator(".result.error").last).to_contain_text("找不到")
    shot(page, "passes")


def residents(site: Site, count: int) -> None:
    from sync.store.central import Household, Person

    homes = [Household(f"C9-H{n:03d}", "LGQ", "C9", "1", "1", str(100 + n)) for n in range(count)]
    people = [Person(home.household_id, f"住户{n}", "", "resident") for n, home in enumerate(homes)]
    site.centre.central.import_residents(homes, people, site.clock())


def test_keys_new_rotate_and_retire(admin: Admin) -> None:
    page = admin.page
    admin.sign_in()
    section = admin.open("keys")
    rows = section.locator("tbody tr")
    sync_api.expect(rows).to_have_count(1)
    page.fill("[name=overlap_days]", "7")
    page.click("#key-rotate")
    sync_api.expect(rows).to_have_count(2)
    sync_api.expect(rows.first).to_contain_text("过渡中")
    newest = admin.site.centre.central.issuer_keys()[-1].kid
    page.click(f"button[data-kid='{newest}']")  # the last active key: refused without force
    sync_api.expect(result_of(section)).to_contain_text("最后一个有效密钥")
    page.click("#key-new")
    sync_api.expect(rows).to_have_count(3)
    page.click(f"button[data-kid='{newest}']")
    sync_api.expect(rows.filter(has_text=newest)).to_contain_text("已停用")


def test_isolation_ordered_lifted_and_kept_in_the_history(admin: Admin) -> None:
    page = admin.page
    admin.sign_in()
    section = admin.open("isolations")
    form = section.locator("#isolate-form")
    form.locator("[name=household]").fill("H0404")
    form.locator("[name=until]").fill("2026-03-14")
    form.locator("[name=note]").fill("隔离通知 17 号")
    form.locator("button[type=submit]").click()
    row = section.locator("tbody tr").filter(has_text="H0404")
    sync_api.expect(row).to_contain_text("隔离中")
    form.locator("[name=household]").fill("H0405")
    form.locator("[name=until]").fill("2026-02-01")  # before it starts
    form.locator("button[type=submit]").click()
    sync_api.expect(result_of(section)).to_contain_text("输入有误")
    admin.site.clock.advance(minutes=10)  # within the session's idle time
    page.click("button[data-lift=H0404]")
    sync_api.expect(row).to_contain_text("已解除")
    assert admin.site.centre.central.isolations(admin.site.clock()) == []
    assert len(admin.site.centre.central.isolation_history(None, None)) == 1
    trail = admin.open("audit")
    sync_api.expect(trail.locator("tbody tr")).to_have_count(2)
    sync_api.expect(trail.locator("tbody tr").first).to_contain_text("解除隔离")
    sync_api.expect(trail.locator("tbody tr").last).to_contain_text(NAME)


def test_the_page_works_at_tablet_size(browser: Any, site: Site) -> None:
    admin = admin_in(browser, site, TABLET)
    with closing(admin.context):
        admin.sign_in()
        section = admin.open("passes")
        width = admin.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= TABLET["width"]  # nothing runs off the side
        for button in section.locator("button").all():
            box = button.bounding_box()
            assert box is not None and box["height"] >= 44  # a finger's target
        shot(admin.page, "passes-tablet")
        assert_accessible(admin.page, "passes-tablet")
        admin.page.click("#sign-out")
        sync_api.expect(admin.page.locator("#signin")).to_be_visible()
        assert_accessible(admin.page, "signin")
        admin.check()


def test_the_printed_card_page_opened_from_the_page_reads_back(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    from sync import admin_ops

    texts = {
        admin_ops.issue_pass(
            site.centre.issuer, site.clock(), kind=kind, household="H-PRINT",
            name=name, scope="compound:C1", unit="12-3-1501", days=30,
        )[1]
        for kind, name in (("resident", "欧阳志明"), ("tenant", "李四"), ("worker", "王五"))
    }  # fmt: skip
    revoked, _ = admin_ops.issue_pass(
        site.centre.issuer, site.clock(), kind="resident", household="H-PRINT",
        name="赵六", scope="compound:C1", days=30,
    )  # fmt: skip
    site.centre.central.revoke(revoked.pass_id, "moved out", site.clock())
    admin = admin_in(browser, site, device_scale_factor=2)
    with closing(admin.context):
        admin.sign_in()
        section = admin.open("cards")
        section.locator("[name=household]").fill("H-PRINT")
        with admin.context.expect_page() as opened:
            section.locator("#cards-household").click()
        cards = admin.watch(opened.value)
        cards.wait_for_load_state()
        sync_api.expect(cards.locator(".card")).to_have_count(3)  # not the revoked one
        cards.emulate_media(media="print")
        sync_api.expect(cards.locator(".hint")).to_be_hidden()
        picture = tmp_path / "printed.png"
        cards.screenshot(path=str(picture), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "printed-cards.png").write_bytes(picture.read_bytes())
        admin.check()
    decoded = subprocess.run(
        [str(GATE_AGENT), "decode", "--json", str(picture)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    read = [json.loads(line) for line in decoded.stdout.splitlines() if line.strip()]
    assert len(read) == 1 and "error" not in read[0]
    assert sorted(read[0]["texts"]) == sorted(texts)


def test_a_card_png_for_a_phone(admin: Admin) -> None:
    from sync import admin_ops

    fields, _ = admin_ops.issue_pass(
        admin.site.centre.issuer, admin.site.clock(), kind="resident", household="H1",
        name="张三", scope="compound:C1", days=30,
    )  # fmt: skip
    admin.sign_in()
    section = admin.open("cards")
    section.locator("[name=pass_id]").fill(fields.pass_id)
    href = section.locator("#card-png").get_attribute("href")
    reply = admin.page.request.get(f"{admin.site.url}{href}")
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    assert reply.body().startswith(b"\x89PNG")
    admin.site.centre.central.revoke(fields.pass_id, "lost", admin.site.clock())
    late = admin.page.request.get(f"{admin.site.url}{href}")
    assert late.status == 422 and late.json()["error"] == "revoked"  # no card misleads


def test_the_flows_on_postgresql(browser: Any, tmp_path: Path, postgres_dsn: str) -> None:
    with admin_site(tmp_path / "central", postgres_dsn, TickingClock(NOW)) as site:
        site.centre.issuer.new_key(NOW)
        admin = admin_in(browser, site)
        with closing(admin.context):
            page = admin.page
            admin.sign_in()
            section = admin.open("passes")
            form = section.locator("#issue-form")
            form.locator("[name=household]").fill("PG-H1")
            form.locator("[name=name]").fill("钱七")
            form.locator("[name=scope]").fill("compound:C1")
            form.locator("button[type=submit]").click()
            sync_api.expect(form.locator("xpath=following-sibling::div[1]")).to_contain_text("钱*")
            page.fill("#lookup-household", "PG-H1")
            page.fill("#revoke-reason", "丢失")
            section.locator("button:has-text('查看')").click()
            page.locator("button[data-action=revoke]").click()
            sync_api.expect(page.locator("#household-passes tbody tr")).to_contain_text("已注销")
            isolations = admin.open("isolations")
            isolations.locator("[name=household]").fill("PG-H1")
            isolations.locator("[name=until]").fill("2026-03-14")
            isolations.locator("button[type=submit]").click()
            sync_api.expect(isolations.locator("tbody tr")).to_contain_text("隔离中")
            keys = admin.open("keys")
            page.click("#key-rotate")
            sync_api.expect(keys.locator("tbody tr")).to_have_count(2)
            admin.check()
        trail = site.centre.central.audit_rows()
        assert [row.action for row in reversed(trail)] == [
            "pass.issue", "pass.revoke", "isolation.order", "key.rotate",
        ]  # fmt: skip
        assert {row.by for row in trail} == {NAME}
