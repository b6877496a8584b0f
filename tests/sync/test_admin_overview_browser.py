"""The overview, trace and ledgers panels of the admin page in Debian's chromium: the charts
of entries real gate ledgers synced, a pass's trace as a table and as a CSV download, who
was inside, and a ledger downloaded with the session cookie and opened with openpyxl.

The browser, the page's watch (nothing beyond 127.0.0.1, no page errors) and the site come
from ``test_admin_browser``; the entries from ``test_stats`` (two days in March 2024).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sync.store.central import Household, Person
from tests.chromium import needs_chromium
from tests.sync import test_admin_browser as base
from tests.sync.admin_helpers import Site
from tests.sync.test_admin_browser import Admin, assert_accessible, result_of, shot
from tests.sync.test_stats import GATE_A, GATE_B, GATE_D, sync_gate

sync_api = pytest.importorskip("playwright.sync_api")
openpyxl = pytest.importorskip("openpyxl")
pytestmark = needs_chromium
browser = base.browser
site = base.site
admin = base.admin

#: Entries per gate on 1 and 2 March 2024 (Shanghai days): test_stats.py's gates.
PER_GATE = {"gate-a": 10, "gate-b": 2, "gate-d": 1}


def synced(site: Site, tmp_path: Path) -> None:
    streams = site.centre.streams
    sync_gate(streams, tmp_path / "a.sqlite3", "gate-a", GATE_A)
    sync_gate(streams, tmp_path / "b.sqlite3", "gate-b", GATE_B)
    sync_gate(streams, tmp_path / "d.sqlite3", "gate-d", GATE_D, clock_synced=False)


def workbook(download: Any) -> Any:
    """A downloaded XLSX opened with openpyxl (the download's file has no extension)."""
    return openpyxl.load_workbook(io.BytesIO(Path(download.path()).read_bytes()), read_only=True)


def bars(section: Any) -> dict[str, int]:
    found = section.locator("[data-chart=hourly] rect[data-count]").evaluate_all(
        "nodes => nodes.map((n) => [n.dataset.gate, Number(n.dataset.count)])"
    )
    totals: Counter[str] = Counter()
    for gate, count in found:
        totals[gate] += count
    return dict(totals)


def test_the_overview_is_first_and_draws_the_synced_entries(admin: Admin, tmp_path: Path) -> None:
    synced(admin.site, tmp_path)
    page = admin.page
    admin.sign_in()
    section = page.locator("#panel-overview")
    sync_api.expect(section).to_be_visible()  # the first panel after sign-in
    assert page.locator("#tabs .tab").first.get_attribute("id") == "tab-overview"
    # Today (the site's clock says 2026) has none of them; the gates' sync state is there.
    sync_api.expect(section.locator("[data-chart=sync] tbody tr")).to_have_count(3)
    assert section.locator("[data-chart=hourly] rect[data-count]").count() == 0
    section.locator("#overview-range").select_option("dates")
    section.locator("#overview-since").fill("2024-03-01")
    section.locator("#overview-until").fill("2024-03-02")
    section.locator("#overview-show").click()
    hourly = section.locator("[data-chart=hourly] rect[data-count]").first
    sync_api.expect(hourly).to_be_attached()
    sync_api.expect(section.locator("#overview-loading")).to_be_hidden()
    assert bars(section) == PER_GATE
    title = section.locator("[data-chart=hourly] h3")
    sync_api.expect(title).to_have_text("每小时进出人次（按门岗）")
    shot(page, "overview")
    assert_accessible(page, "overview")
    page.click("#lang")  # the charts are drawn again in English, from the same numbers
    sync_api.expect(section.locator("[data-chart=hourly] h3")).to_have_text(
        "Entries per hour, by gate"
    )
    assert bars(section) == PER_GATE
    # Some gates only.
    section.locator("#overview-gates").fill("gate-b, gate-d")
    section.locator("#overview-show").click()
    sync_api.expect(section.locator("[data-chart=hourly] rect[data-gate=gate-a]")).to_have_count(0)
    assert bars(section) == {"gate-b": 2, "gate-d": 1}
    # A refusal is the code's words: a window the wrong way round.
    section.locator("#overview-since").fill("2024-03-05")
    section.locator("#overview-show").click()
    sync_api.expect(result_of(section)).to_contain_text("The end must be after the start")
    assert section.locator("[data-chart]").count() == 0


def test_a_pass_trace_shows_its_rows_and_its_csv_reads_back(admin: Admin, tmp_path: Path) -> None:
    synced(admin.site, tmp_path)
    page = admin.page
    admin.sign_in()
    section = admin.open("trace")
    section.locator("#trace-kind").select_option("pass")
    section.locator("[name=pass]").fill("P1")
    section.locator("#trace-show").click()
    rows = section.locator("#trace-table tbody tr")
    sync_api.expect(rows).to_have_count(2)
    sync_api.expect(section.locator("#trace-summary")).to_have_text("共 2 条")
    sync_api.expect(section.locator("#trace-table thead")).to_contain_text("通行证号")
    for row in rows.all():
        sync_api.expect(row).to_contain_text("gate-a")
    with page.expect_download() as caught:
        section.locator("#trace-csv").click()
    download = caught.value
    assert download.suggested_filename == "trace-pass-P1.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    read = list(csv.DictReader(io.StringIO(text)))
    assert [(r["gate_id"], r["pass_id"], r["direction"]) for r in read] == [
        ("gate-a", "P1", "in"), ("gate-a", "P1", "in"),
    ]  # fmt: skip
    with page.expect_download() as caught:
        section.locator("#trace-xlsx").click()
    sheet = workbook(caught.value).active
    assert sum(1 for _ in sheet.iter_rows()) == 3  # the header and both entries
    page.click("#lang")
    sync_api.expect(section.locator("#trace-summary")).to_have_text("2 rows")
    sync_api.expect(section.locator("#trace-table thead")).to_contain_text("Pass")


def test_who_was_inside_by_compound_or_by_gates(admin: Admin, tmp_path: Path) -> None:
    synced(admin.site, tmp_path)
    for gate in ("gate-a", "gate-b"):
        admin.site.centre.streams.set_place(gate, "C1", "M1")
    admin.sign_in()
    section = admin.open("trace")
    section.locator("#trace-kind").select_option("inside")
    sync_api.expect(section.locator("[name=pass]")).to_be_hidden()
    section.locator("#trace-show").click()
    sync_api.expect(result_of(section)).to_contain_text("请填写小区或门岗")
    section.locator("[name=compound]").fill("C9")
    section.locator("#trace-show").click()
    sync_api.expect(result_of(section)).to_contain_text("该小区没有已登记的门岗")
    # Compound C1 is its gates a and b: after their last entries (00:40 Shanghai on
    # 2 March), P1, P4 and P5 came in last, P9 was refused the way out, P2 went out.
    section.locator("[name=compound]").fill("C1")
    section.locator("[name=at]").fill("2024-03-02T12:00")
    section.locator("#trace-show").click()
    rows = section.locator("#trace-table tbody tr")
    sync_api.expect(rows.first).to_be_attached()
    passes = {r.locator("td").first.inner_text() for r in rows.all()}
    assert {"P1", "P4", "P5"} <= passes and not {"P2", "P6"} & passes
    href = section.locator("#trace-csv").get_attribute("href")
    assert href == (
        "/v1/admin/trace/inside?at=2024-03-02T12%3A00&compound=C1&gate=gate-a&gate=gate-b"
        "&format=csv"
    )
    by_compound = passes
    section.locator("[name=compound]").fill("")
    section.locator("[name=gates]").fill("gate-a")
    section.locator("#trace-show").click()
    sync_api.expect(section.locator("#trace-csv")).not_to_have_attribute("href", href)
    passes = {r.locator("td").first.inner_text() for r in rows.all()}
    assert "P5" not in passes and passes <= by_compound
    # A refused trace leaves no table and no downloads of an earlier one behind.
    section.locator("[name=at]").fill("")
    section.locator("[name=gates]").fill("not a gate!")
    section.locator("#trace-show").click()
    sync_api.expect(result_of(section)).to_contain_text("门岗编号有误")
    sync_api.expect(section.locator("#trace-csv")).to_be_hidden()
    assert rows.count() == 0


def test_a_ledger_downloads_with_the_session_and_opens(admin: Admin) -> None:
    site = admin.site
    household = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")
    person = Person(household.household_id, "王小明", "13800138000", "resident")
    site.centre.central.import_residents([household], [person], site.clock())
    page = admin.page
    admin.sign_in()
    section = admin.open("ledgers")
    links = section.locator("#ledger-links a")
    sync_api.expect(links).to_have_count(5)
    sync_api.expect(section.locator("#ledger-fevers")).to_have_text("发热台账")
    with page.expect_download() as caught:
        section.locator("#ledger-residents").click()
    download = caught.value
    assert download.suggested_filename == "residents.xlsx"
    book = workbook(download)
    values = [cell for row in book.active.iter_rows(values_only=True) for cell in row]
    assert "王小明" in values and "13800138000" in values
    # The link is a plain GET the session cookie signs in: without it, refused.
    section.locator("#ledgers-since").fill("2024-03-01")
    href = section.locator("#ledger-fevers").get_attribute("href")
    assert href == "/v1/admin/ledgers/fevers.xlsx?since=2024-03-01"
    with site.client() as stranger:
        assert stranger.get(href).json()["error"] == "unauthorized"
    with page.expect_download() as caught:
        section.locator("#ledger-fevers").click()
    assert caught.value.suggested_filename.startswith("fevers-")
    assert workbook(caught.value).active is not None
    shot(page, "ledgers")
    assert_accessible(page, "ledgers")
