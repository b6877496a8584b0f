"""The card page in a real browser (Debian's chromium): A4 pages as printed, QR codes as drawn."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import PassFields, PassKind, Scope, sign
from gate_agent.hardware.decoder import QrDecoder
from sync.cards import Card, render_sheet, timezone
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium

sync_api = pytest.importorskip("playwright.sync_api")

CSS_PX_PER_MM = 96 / 25.4
START = datetime(2026, 3, 1, tzinfo=UTC)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            opened = chromium.new_page(viewport={"width": 1000, "height": 1400})
            # Every request but the page itself fails the test: cards load nothing.
            opened.route(re.compile(r"^(?!file:).*"), lambda route: pytest.fail(route.request.url))
            yield opened
        finally:
            chromium.close()


def cards(count: int) -> list[Card]:
    key = Ed25519PrivateKey.generate()
    made = []
    for n in range(count):
        fields = PassFields(
            pass_id=f"PRINT{n:04d}",
            kind=list(PassKind)[n % len(PassKind)],
            household_id=f"H{n}",
            scope=Scope.parse("community:LGQ"),
            valid_from=START,
            valid_until=START + timedelta(days=30),
            display_name="欧阳**明",
            unit="12-3-1501",
        )
        made.append(Card(fields, sign(fields, key)))
    return made


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", data))


@pytest.mark.parametrize(("count", "pages"), [(6, 1), (7, 2), (13, 3)])
def test_six_cards_print_on_each_a4_page(page: Any, tmp_path: Path, count: int, pages: int) -> None:
    html = tmp_path / "cards.html"
    html.write_text(render_sheet(cards(count), timezone("Asia/Shanghai")), encoding="utf-8")
    page.goto(html.as_uri())
    assert pdf_pages(page.pdf(format="A4", prefer_css_page_size=True)) == pages


def test_each_drawn_qr_code_is_big_enough_and_reads_back(page: Any, tmp_path: Path) -> None:
    made = cards(3)
    html = tmp_path / "cards.html"
    html.write_text(render_sheet(made, timezone("Asia/Shanghai")), encoding="utf-8")
    page.goto(html.as_uri())
    decoder = QrDecoder(("zxing-cpp",))
    codes = page.locator(".qr")
    assert codes.count() == len(made)
    for n, card in enumerate(made):
        box = codes.nth(n).bounding_box()
        # Without its quiet zone (4 modules each side) the symbol is still ≥ 30 mm across.
        side = segno.make(card.text, error="m", micro=False).symbol_size(scale=1, border=4)[0]
        assert box["width"] == pytest.approx(box["height"])
        assert box["width"] / CSS_PX_PER_MM * (side - 8) / side >= 30
        shot = codes.nth(n).screenshot()
        gray = cv2.imdecode(np.frombuffer(shot, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        assert gray is not None
        assert [c.text for c in decoder.decode(np.asarray(gray, np.uint8))] == [card.text]
