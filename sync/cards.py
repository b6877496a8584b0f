"""Printable pass cards: which passes get one, and an A4 HTML page of them for the print dialog.

A card carries the pass's QR code (error level M, as the pass format requires) with
the masked name, unit, kind, validity and scope printed beside it. Cards are made
only for passes a gate would accept: a card for a revoked or expired pass misleads
the resident who holds it. The page is self-contained (inline SVG and CSS, no fonts
or scripts from anywhere) so it prints on an office machine with no network.
The phone-screen PNG of one card is in ``sync.card_png``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno

from gate_agent.core.passes import (
    Keyring,
    PassFields,
    PassKind,
    PassRefusal,
    ScopeKind,
    verify,
)
from gate_agent.core.reasons import Reason
from sync.errors import CardRefused
from sync.store.central import IssuerStore, PassRow

#: Cards on one A4 sheet: two columns, three rows of 90 × 86 mm.
CARDS_PER_SHEET = 6
#: The printed QR code's side, quiet zone included: a phone or gate camera reads it.
QR_MM = 46
QR_BORDER = 4
DEFAULT_TZ = "Asia/Shanghai"

KIND_LABELS: dict[PassKind, tuple[str, str]] = {
    PassKind.RESIDENT: ("居民", "Resident"),
    PassKind.TENANT: ("租户", "Tenant"),
    PassKind.WORKER: ("工作人员", "Worker"),
    PassKind.DELIVERY: ("配送", "Delivery"),
    PassKind.VEHICLE: ("车辆", "Vehicle"),
    PassKind.VISITOR: ("访客", "Visitor"),
}
#: A colour per kind, so a guard tells the kinds apart from across the gate.
KIND_COLOURS: dict[PassKind, str] = {
    PassKind.RESIDENT: "#1b7f3b",
    PassKind.TENANT: "#0f7c8c",
    PassKind.WORKER: "#1f4fa8",
    PassKind.DELIVERY: "#c25a00",
    PassKind.VEHICLE: "#555555",
    PassKind.VISITOR: "#7a3fa0",
}
SCOPE_LABELS: dict[ScopeKind, str] = {
    ScopeKind.COMMUNITY: "社区",
    ScopeKind.COMPOUND: "小区",
    ScopeKind.GATES: "门岗",
}
#: The font stack of the page: the CJK fonts Debian, Windows and macOS ship, then any.
FONT_STACK = (
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",'
    ' "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", sans-serif'
)


@dataclass(frozen=True)
class Card:
    """A pass that may be printed: its verified fields and its exact text (the QR content)."""

    fields: PassFields
    text: str


@dataclass(frozen=True)
class Skipped:
    """A pass that gets no card, with the stable code of why."""

    pass_id: str
    code: str
    detail: str


def timezone(name: str) -> tzinfo:
    """The community's timezone by IANA name; ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}, e.g. {DEFAULT_TZ}") from exc


def card_for(row: PassRow, keyring: Keyring, now: datetime) -> Card:
    """The card of a recorded pass; ``CardRefused`` when a gate would not accept it."""
    if row.revoked_at is not None:
        why = f": {row.revoke_reason}" if row.revoke_reason else ""
        raise CardRefused("revoked", f"pass {row.pass_id} was revoked {row.revoked_at}{why}")
    checked = verify(row.text, keyring)
    if isinstance(checked, PassRefusal):
        code = "key-retired" if checked.reason is Reason.KEY_RETIRED else "unverifiable"
        raise CardRefused(
            code, f"pass {row.pass_id} does not verify ({checked.reason}): reissue it"
        )
    if checked.fields.pass_id != row.pass_id:
        raise CardRefused("unverifiable", f"pass {row.pass_id}: its text is another pass's")
    if checked.fields.valid_until <= now:
        raise CardRefused(
            "expired", f"pass {row.pass_id} expired {checked.fields.valid_until.isoformat()}"
        )
    return Card(checked.fields, row.text)


def store_keyring(store: IssuerStore) -> Keyring:
    """The issuer keys as a gate would hold them, retired ones marked."""
    return Keyring.from_raw(
        (row.public_key, row.retired_at is not None) for row in store.issuer_keys()
    )


def select(
    store: IssuerStore,
    now: datetime,
    *,
    households: Sequence[str] = (),
    pass_ids: Sequence[str] = (),
    all_active: bool = False,
) -> tuple[list[Card], list[Skipped]]:
    """The cards for these households, passes, or every active pass; and what was skipped.

    A pass named twice gets one card. An unknown pass id raises ``NotFound``.
    """
    keyring = store_keyring(store)
    rows: list[PassRow] = list(store.household_passes(households)) if households else []
    rows.extend(store.get_pass(pass_id) for pass_id in pass_ids)
    if all_active:
        rows.extend(store.active_passes(now))
    cards: list[Card] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for row in rows:
        if row.pass_id in seen:
            continue
        seen.add(row.pass_id)
        try:
            cards.append(card_for(row, keyring, now))
        except CardRefused as refusal:
            skipped.append(Skipped(row.pass_id, refusal.code, str(refusal)))
    return cards, skipped


def grouped_id(pass_id: str) -> str:
    """A pass id in groups of four, for reading out over the phone: ``ABCD EFGH JK``."""
    return " ".join(pass_id[i : i + 4] for i in range(0, len(pass_id), 4))


def validity(fields: PassFields, tz: tzinfo) -> tuple[str, str]:
    """First and last moment of validity as local text; whole days show as dates only."""
    start = fields.valid_from.astimezone(tz)
    end = fields.valid_until.astimezone(tz)
    first = start.date().isoformat() if start.time() == time() else _minute(start)
    # A pass valid "until 2026-03-31" ends at the next midnight: print the last whole day.
    last = (end - timedelta(seconds=1)).date().isoformat() if end.time() == time() else _minute(end)
    return first, last


def scope_text(fields: PassFields) -> str:
    """Where the pass is good, in Chinese: ``小区 C1`` or ``门岗 G1, G2``."""
    return f"{SCOPE_LABELS[fields.scope.kind]} {', '.join(fields.scope.ids)}"


def qr_svg(text: str) -> str:
    """The pass as an inline SVG QR code (level M, quiet zone), sized by its container."""
    code = segno.make(text, error="m", boost_error=False, micro=False)
    svg: str = code.svg_inline(border=QR_BORDER, omitsize=True, svgclass="qr-code")
    return svg


def render_sheet(
    cards: Sequence[Card],
    tz: tzinfo,
    *,
    title: str = "通行证 Pass cards",
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """An A4 HTML page of cards, six to a sheet, for the browser's print dialog."""
    sheets: list[str] = []
    rendered: list[str] = []
    for done, card in enumerate(cards, start=1):
        rendered.append(_card_html(card, tz))
        if progress is not None:
            progress(done, len(cards))
    for start in range(0, len(rendered), CARDS_PER_SHEET):
        sheets.append(
            '<section class="sheet">\n'
            + "\n".join(rendered[start : start + CARDS_PER_SHEET])
            + "\n</section>"
        )
    count = len(cards)
    return _PAGE.format(
        title=html.escape(title),
        css=_CSS.replace("$FONTS", FONT_STACK).replace("$QR", str(QR_MM)),
        hint=html.escape(
            f"{count} 张通行证，{len(sheets)} 页 A4。打印时选择“实际大小/100%”，沿角标裁剪。"
            f" {count} cards on {len(sheets)} A4 pages: print at 100% (no fit to page),"
            " cut along the corner marks."
        ),
        sheets="\n".join(sheets),
    )


def _card_html(card: Card, tz: tzinfo) -> str:
    fields = card.fields
    chinese, english = KIND_LABELS[fields.kind]
    first, last = validity(fields, tz)
    e = html.escape
    unit = e(fields.unit) if fields.unit else "—"
    return f"""<article class="card" style="--kind: {KIND_COLOURS[fields.kind]}">
<i class="cut tl"></i><i class="cut tr"></i><i class="cut bl"></i><i class="cut br"></i>
<header><span class="kind">{e(chinese)} <small>{e(english)}</small></span>\
<span class="scope">{e(scope_text(fields))}</span></header>
<div class="body">
<div class="qr" role="img" aria-label="{e(f"pass {fields.pass_id}")}">{qr_svg(card.text)}</div>
<dl>
<dt>姓名 Name</dt><dd class="name">{e(fields.display_name)}</dd>
<dt>房号 Unit</dt><dd class="unit">{unit}</dd>
<dt>有效期 Valid</dt><dd class="valid">{e(first)}<br>至 {e(last)}</dd>
<dt>户号 Household</dt><dd class="household">{e(fields.household_id)}</dd>
</dl>
</div>
<footer class="pid">{e(grouped_id(fields.pass_id))}</footer>
</article>"""


def _minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def progress_printer(
    write: Callable[[str], object], *, every_percent: int = 10, at_least: int = 20
) -> Callable[[int, int], None]:
    """A progress callback writing ``cards 40/400`` lines each ``every_percent`` of many cards."""

    def report(done: int, total: int) -> None:
        if total < at_least:
            return
        step = max(1, total * every_percent // 100)
        if done % step == 0 or done == total:
            write(f"cards {done}/{total}\n")

    return report


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<p class="hint">{hint}</p>
{sheets}
</body>
</html>
"""

# Sizes in millimetres so the print is true to size; the sheet is a fixed grid, one per
# page, so no card is ever split across pages whatever the browser does with grids.
_CSS = """@page { size: A4 portrait; margin: 10mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; font-family: $FONTS; color: #111; background: #fff; }
.hint { margin: 4mm 10mm; font-size: 11pt; color: #444; }
.sheet {
  display: grid; grid-template-columns: repeat(2, 90mm); grid-template-rows: repeat(3, 86mm);
  gap: 6mm; justify-content: center; align-content: start;
  width: 190mm; margin: 0 auto;
  break-after: page; page-break-after: always;
}
.sheet:last-of-type { break-after: auto; page-break-after: auto; }
.card {
  position: relative; display: flex; flex-direction: column; width: 90mm; height: 86mm;
  border: 0.2mm solid #bbb; border-radius: 2mm; overflow: visible;
  break-inside: avoid; page-break-inside: avoid;
}
.card header {
  display: flex; justify-content: space-between; align-items: center; gap: 2mm;
  height: 9mm; padding: 0 3mm; overflow: hidden; background: var(--kind); color: #fff;
  border-radius: 2mm 2mm 0 0;
}
.kind { font-size: 4.6mm; font-weight: 700; white-space: nowrap; }
.kind small { font-size: 3mm; font-weight: 400; }
.scope { font-size: 3.4mm; line-height: 1.1; text-align: right; overflow-wrap: anywhere; }
.body { display: flex; gap: 2mm; padding: 2mm 2mm 0 1mm; flex: 1; }
.qr { flex: none; width: $QRmm; height: $QRmm; }
.qr svg { display: block; width: 100%; height: 100%; background: #fff; }
.qr path { shape-rendering: crispEdges; }
dl { margin: 0; min-width: 0; flex: 1; }
dt { font-size: 2.6mm; color: #555; margin-top: 1.2mm; }
dd { margin: 0; font-size: 3.6mm; overflow-wrap: anywhere; }
dd.name { font-size: 6mm; font-weight: 700; line-height: 1.15; }
.pid {
  height: 9mm; padding: 0 3mm; font-size: 4.4mm; letter-spacing: 0.4mm;
  font-family: "DejaVu Sans Mono", "Noto Sans Mono CJK SC", monospace; text-align: right;
}
.cut { position: absolute; width: 3mm; height: 3mm; border: 0 solid #000; }
.tl { top: -3mm; left: -3mm; border-right-width: 0.2mm; border-bottom-width: 0.2mm; }
.tr { top: -3mm; right: -3mm; border-left-width: 0.2mm; border-bottom-width: 0.2mm; }
.bl { bottom: -3mm; left: -3mm; border-right-width: 0.2mm; border-top-width: 0.2mm; }
.br { bottom: -3mm; right: -3mm; border-left-width: 0.2mm; border-top-width: 0.2mm; }
@media print {
  .hint { display: none; }
  .card, .card header { border-color: transparent; border-radius: 0; }
}
@media screen {
  body { background: #e8e8e8; }
  .sheet { background: #fff; margin-bottom: 8mm; padding-top: 2mm; }
}"""
