"""Printable pass cards: which passes get one, the A4 page, the phone PNG, the CLI."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from gate_agent.core.passes import PassFields, PassKind, Scope, mask_name
from gate_agent.hardware.decoder import QrDecoder
from sync import cli
from sync.card_png import SIZE, find_cjk_font, render_png
from sync.cards import (
    CARDS_PER_SHEET,
    KIND_LABELS,
    Card,
    card_for,
    grouped_id,
    progress_printer,
    render_sheet,
    select,
    store_keyring,
    timezone,
    validity,
)
from sync.errors import CardRefused, NotFound
from sync.issuer import Issuer
from sync.store import SqliteCentralStore
from tests.sync.stream_helpers import STORES, open_central, store_dsn

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Midnight in Shanghai: whole days there, 16:00 the day before in UTC.
START = datetime(2026, 3, 1, tzinfo=SHANGHAI).astimezone(UTC)
NOW = START + timedelta(days=1)
DECODER = QrDecoder(("zxing-cpp",))


def fields(pass_id: str, **changes: object) -> PassFields:
    base = PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id="H0001",
        scope=Scope.parse("community:LGQ"),
        valid_from=START,
        valid_until=START + timedelta(days=31),
        display_name=mask_name("张三明"),
        unit="3-2-501",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=STORES)
def issuer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuer]:
    """An issuer with a key over each kind of store (for choosing which passes get cards)."""
    store = open_central(tmp_path, store_dsn(request))
    try:
        made = Issuer(tmp_path, store)
        made.new_key(START)
        yield made
    finally:
        store.close()


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Issuer]:
    """An issuer with a key over SQLite (drawing cards does not depend on the store)."""
    with SqliteCentralStore(tmp_path / "central.sqlite3") as store:
        made = Issuer(tmp_path, store)
        made.new_key(START)
        yield made


def decode_svg(svg: str) -> str:
    """Rasterise segno's SVG path (M/m/h lines one module high) and read it with zxing-cpp."""
    view = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    path = re.search(r' d="([^"]+)"', svg)
    assert view and path, svg[:200]
    side = int(view.group(1))
    grid = np.full((side, side), 255, dtype=np.uint8)
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path.group(1)):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            end = x + float(a)
            grid[int(y), int(x) : int(end)] = 0
            x = end
    scale = 8
    image = np.kron(grid, np.ones((scale, scale), dtype=np.uint8))
    codes = DECODER.decode(np.ascontiguousarray(image))
    assert len(codes) == 1, f"{len(codes)} codes read"
    return codes[0].text


def issue(issuer: Issuer, pass_id: str, **changes: object) -> Card:
    made = fields(pass_id, **changes)
    return Card(made, issuer.issue(made, START))


# -- which passes get a card ----------------------------------------------------------------


def test_cards_only_for_passes_a_gate_accepts(issuer: Issuer) -> None:
    live = issue(issuer, "LIVE0001")
    issue(issuer, "LIVE0002", kind=PassKind.VEHICLE, display_name="王*")
    issue(issuer, "GONE0001", valid_until=START + timedelta(hours=20))
    issue(issuer, "LOST0001")
    issuer.store.revoke("LOST0001", "card lost", START)
    issue(issuer, "OTHR0001", household_id="H0002")

    cards, skipped = select(issuer.store, NOW, households=["H0001"], pass_ids=["LIVE0001"])
    assert [card.fields.pass_id for card in cards] == ["LIVE0001", "LIVE0002"]  # named twice
    assert cards[0] == live
    assert [(s.pass_id, s.code) for s in skipped] == [
        ("GONE0001", "expired"),
        ("LOST0001", "revoked"),
    ]
    assert "card lost" in skipped[1].detail

    everyone, none = select(issuer.store, NOW, all_active=True)
    assert [card.fields.pass_id for card in everyone] == ["LIVE0001", "LIVE0002", "OTHR0001"]
    assert none == []
    with pytest.raises(NotFound):
        select(issuer.store, NOW, pass_ids=["NOPE0001"])
    assert select(issuer.store, NOW) == ([], [])


def test_a_pass_whose_text_no_longer_verifies_gets_no_card(issuer: Issuer) -> None:
    issue(issuer, "LIVE0001")
    row = issuer.store.get_pass("LIVE0001")
    keyring = store_keyring(issuer.store)
    assert card_for(row, keyring, NOW).text == row.text

    tampered = replace(row, text=row.text[:-2] + ("AA" if row.text[-2:] != "AA" else "BB"))
    with pytest.raises(CardRefused) as refused:
        card_for(tampered, keyring, NOW)
    assert refused.value.code == "unverifiable"
    other = issue(issuer, "LIVE0002")
    with pytest.raises(CardRefused, match="another pass"):
        card_for(replace(row, text=other.text), keyring, NOW)
    # A retired key's passes are refused at the gate: reissue them.
    (key,) = issuer.store.issuer_keys()
    retired = type(keyring).from_raw([(key.public_key, True)])
    with pytest.raises(CardRefused) as refused:
        card_for(row, retired, NOW)
    assert refused.value.code == "key-retired"


# -- the A4 page ------------------------------------------------------------------------------


def test_the_page_has_one_scannable_card_per_pass_and_nothing_from_outside(
    lite: Issuer,
) -> None:
    cards = [
        issue(lite, f"KIND{i:04d}", kind=kind, household_id=f"H{i}")
        for i, kind in enumerate(PassKind)
    ]
    cards.append(issue(lite, "ESCAPED01", display_name="&**>"))
    progress: list[tuple[int, int]] = []
    page = render_sheet(
        cards, SHANGHAI, progress=lambda done, total: progress.append((done, total))
    )

    articles = re.findall(r'<article class="card".*?</article>', page, re.S)
    assert len(articles) == len(cards) == 7
    assert progress[-1] == (7, 7)
    for article, card in zip(articles, cards, strict=True):
        (svg,) = re.findall(r"<svg.*?</svg>", article, re.S)
        assert decode_svg(svg) == card.text  # the card's own QR carries its own pass
        assert grouped_id(card.fields.pass_id) in article
        chinese, english = KIND_LABELS[card.fields.kind]
        assert f"{chinese} <small>{english}</small>" in article
        assert "社区 LGQ" in article
        assert "2026-03-01<br>至 2026-03-31" in article
    assert "&amp;**&gt;" in articles[-1]
    assert "&**>" not in page
    # Two sheets for seven cards, each one printed page.
    assert page.count('<section class="sheet">') == -(-7 // CARDS_PER_SHEET) == 2
    assert re.search(r"@page \{ size: A4", page)
    assert "break-inside: avoid" in page
    assert '"Noto Sans CJK SC"' in page and "WenQuanYi" in page
    assert not re.search(r"https?:|//[a-z]|<link|<script|@import|url\(", page, re.I)


def test_validity_is_shown_in_the_community_timezone() -> None:
    whole = fields("AAAAAA1")
    assert validity(whole, SHANGHAI) == ("2026-03-01", "2026-03-31")
    # The same instants in UTC are not whole days there: the times show.
    assert validity(whole, timezone("UTC")) == ("2026-02-28 16:00", "2026-03-31 16:00")
    partial = fields("AAAAAA1", valid_from=START + timedelta(hours=9, minutes=30))
    assert validity(partial, SHANGHAI) == ("2026-03-01 09:30", "2026-03-31")
    with pytest.raises(ValueError, match="unknown timezone"):
        timezone("Mars/Olympus")


def test_grouped_ids_and_progress_lines() -> None:
    assert grouped_id("ABCDEFGHJK") == "ABCD EFGH JK"
    assert grouped_id("ABCDEFGH") == "ABCD EFGH"
    lines: list[str] = []
    report = progress_printer(lines.append)
    for done in range(1, 6):
        report(done, 5)  # few cards: no noise
    assert lines == []
    for done in range(1, 41):
        report(done, 40)
    assert lines == [f"cards {n}/40\n" for n in range(4, 41, 4)]


# -- the phone PNG ----------------------------------------------------------------------------


def test_the_phone_card_has_its_size_and_its_qr_reads_back(lite: Issuer) -> None:
    from PIL import Image

    card = issue(lite, "PHONE0001", display_name="欧**明")
    data = render_png(card, SHANGHAI, find_cjk_font())
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.size == SIZE == (720, 1280)
    gray = np.asarray(image.convert("L"))
    (code,) = DECODER.decode(np.ascontiguousarray(gray))
    assert code.text == card.text
    # The kind's colour band is at the top, the text below the code is drawn (not blank).
    assert image.getpixel((10, 10)) == (0x1B, 0x7F, 0x3B)
    assert gray[1000:1150].min() < 100


def test_long_names_and_gate_lists_shrink_to_fit_the_phone(lite: Issuer) -> None:
    from PIL import Image

    gates = Scope.parse("gates:LGQ-012-NORTH,LGQ-012-SOUTH,LGQ-012-EAST")
    card = issue(lite, "LONG0001", display_name=mask_name("Maximilian Oberwalder"), scope=gates)
    assert len(card.fields.display_name) == 16
    image = Image.open(io.BytesIO(render_png(card, SHANGHAI, find_cjk_font())))
    gray = np.asarray(image.convert("L"))
    body = gray[160:1170]  # below the kind band, above the pass id band
    assert body[:, :12].min() == 255 and body[:, -12:].min() == 255  # nothing runs off the edge
    (code,) = DECODER.decode(np.ascontiguousarray(gray))
    assert code.text == card.text


def test_no_chinese_font_is_a_clear_refusal(tmp_path: Path, lite: Issuer) -> None:
    with pytest.raises(CardRefused) as refused:
        find_cjk_font([tmp_path / "missing.ttc"], fontconfig=False)
    assert refused.value.code == "no-cjk-font"
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font")
    assert find_cjk_font([tmp_path / "missing.ttc", bogus], fontconfig=False) == bogus
    card = issue(lite, "FONT0001")
    with pytest.raises(CardRefused) as refused:
        render_png(card, SHANGHAI, bogus)
    assert refused.value.code == "no-cjk-font"


# -- the CLI ----------------------------------------------------------------------------------


def run(data: Path, *argv: str) -> int:
    return cli.main(["--data-dir", str(data), *argv])


def cli_issue(data: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert run(data, "passes", "issue", "--scope", "compound:C1", "--days", "30", *argv) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_cli_writes_the_page_and_says_what_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    assert run(data, "keys", "new") == 0
    for n in range(24):
        cli_issue(data, capsys, "--kind", "resident", "--household", "H1", "--name", "李四",
                  "--pass-id", f"BULK{n:04d}")  # fmt: skip
    cli_issue(data, capsys, "--kind", "visitor", "--household", "H2", "--name", "赵六",
              "--pass-id", "GUEST001")  # fmt: skip
    assert run(data, "passes", "revoke", "BULK0003", "--reason", "moved out") == 0
    capsys.readouterr()

    out = tmp_path / "print" / "cards.html"
    code = run(data, "passes", "cards", "--out", str(out), "--household", "H1",
               "--pass", "GUEST001", "--tz", "Asia/Shanghai")  # fmt: skip
    said = capsys.readouterr()
    assert code == 0, said.err
    assert "24 cards on 4 A4 pages" in said.out and "1 skipped" in said.out
    assert "skipped BULK0003: pass BULK0003 was revoked" in said.err
    assert "moved out (revoked)" in said.err
    assert "cards 24/24" in said.err  # progress for many cards
    page = out.read_text(encoding="utf-8")
    assert page.count('<article class="card"') == 24
    assert "访客 <small>Visitor</small>" in page
    assert not list(out.parent.glob(".*.tmp"))

    assert run(data, "passes", "cards", "--out", str(out)) == 1
    assert "--household H, --pass P" in capsys.readouterr().err
    assert run(data, "passes", "cards", "--out", str(out), "--pass", "BULK0003") == 1
    assert "no pass to print a card for (no-cards)" in capsys.readouterr().err
    assert page == out.read_text(encoding="utf-8")  # the earlier page is left as it was
    assert run(data, "passes", "cards", "--out", str(out), "--all-active", "--tz", "X/Y") == 1
    assert "unknown timezone" in capsys.readouterr().err


def test_cli_writes_the_phone_card_and_refuses_a_revoked_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    data = tmp_path / "central"
    assert run(data, "keys", "new") == 0
    text = cli_issue(data, capsys, "--kind", "worker", "--household", "H1", "--name", "王五",
                     "--pass-id", "WORK0001")  # fmt: skip
    png = tmp_path / "phone" / "card.png"
    assert run(data, "passes", "card", "WORK0001", "--png", str(png)) == 0
    assert "written to" in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.size == SIZE
        gray = np.asarray(image.convert("L"))
    assert [c.text for c in DECODER.decode(np.ascontiguousarray(gray))] == [text]

    assert run(data, "passes", "revoke", "WORK0001", "--reason", "left the job") == 0
    capsys.readouterr()
    assert run(data, "passes", "card", "WORK0001", "--png", str(tmp_path / "dead.png")) == 1
    assert "(revoked)" in capsys.readouterr().err
    assert not (tmp_path / "dead.png").exists()
    assert run(data, "passes", "card", "NOPE0001", "--png", str(tmp_path / "x.png")) == 1
    assert "no pass NOPE0001" in capsys.readouterr().err
    missing = tmp_path / "none.ttc"
    assert run(data, "passes", "card", "WORK0001", "--png", str(png), "--font", str(missing)) == 1
    assert "no such file" in capsys.readouterr().err
