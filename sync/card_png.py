"""A pass card as a PNG for a phone screen: the QR code big, the kind, name, unit and validity.

Pillow draws the text with a CJK font found on this machine (Noto Sans CJK, WenQuanYi,
or whatever fontconfig knows for Chinese); without one the card is refused rather than
drawn with boxes where the characters should be.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import segno

from sync.cards import KIND_COLOURS, KIND_LABELS, QR_BORDER, Card, grouped_id, scope_text, validity
from sync.errors import CardRefused

if TYPE_CHECKING:
    from PIL import Image
    from PIL.ImageFont import FreeTypeFont

#: A phone screen in portrait, 9:16.
SIZE = (720, 1280)
#: Where Debian, Fedora and Arch put the CJK fonts; fontconfig is asked after these.
KNOWN_FONTS: tuple[Path, ...] = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
_FC_TIMEOUT_S = 10
_MARGIN_PX = 24


def find_cjk_font(candidates: Sequence[Path] = KNOWN_FONTS, *, fontconfig: bool = True) -> Path:
    """A font file that has Chinese glyphs; ``CardRefused("no-cjk-font")`` when none is found."""
    for path in candidates:
        if path.is_file():
            return path
    fc_list = shutil.which("fc-list") if fontconfig else None
    if fc_list:
        listed = subprocess.run(
            [fc_list, ":lang=zh", "file"],
            capture_output=True,
            text=True,
            check=False,
            timeout=_FC_TIMEOUT_S,
        ).stdout
        files = sorted(Path(line.split(":")[0].strip()) for line in listed.splitlines() if line)
        # Sans faces first: thin serif strokes blur on a cheap phone screen.
        files.sort(key=lambda path: "serif" in path.name.lower())
        for path in files:
            if path.is_file():
                return path
    raise CardRefused(
        "no-cjk-font",
        "no Chinese font found: install fonts-noto-cjk (Debian) or give --font PATH",
    )


def render_png(card: Card, tz: tzinfo, font_path: Path) -> bytes:
    """The phone card of one pass as PNG bytes, ``SIZE`` pixels."""
    from PIL import Image, ImageDraw  # noqa: PLC0415 - only the phone card needs Pillow

    width, height = SIZE
    fields = card.fields
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    colour = KIND_COLOURS[fields.kind]
    chinese, english = KIND_LABELS[fields.kind]

    def line(y: int, text: str, size: int, fill: str, anchor: str = "mt") -> None:
        # Shrunk to fit: a long Latin name or a list of gates must not run off the screen.
        font = _font(font_path, size)
        while size > 16 and draw.textlength(text, font=font) > width - 2 * _MARGIN_PX:
            size -= 2
            font = _font(font_path, size)
        draw.text((width // 2, y), text, font=font, fill=fill, anchor=anchor)

    draw.rectangle((0, 0, width, 150), fill=colour)
    line(40, f"{chinese} {english}", 60, "white")
    line(175, scope_text(fields), 36, "#444")
    qr = _qr_image(card.text, max_px=620)
    image.paste(qr, ((width - qr.width) // 2, 235))
    top = 235 + qr.height + 30
    line(top, fields.display_name, 84, "#111")
    line(top + 120, f"房号 {fields.unit}" if fields.unit else f"户号 {fields.household_id}", 48,
         "#111")  # fmt: skip
    first, last = validity(fields, tz)
    line(top + 190, "有效期 Valid", 30, "#555")
    line(top + 232, f"{first} 至 {last}", 36, "#111")
    draw.rectangle((0, height - 110, width, height), fill="#f2f2f2")
    line(height - 55, grouped_id(fields.pass_id), 44, colour, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _qr_image(text: str, *, max_px: int) -> Image.Image:
    """The pass's QR code (level M, quiet zone) at the largest whole-pixel scale that fits."""
    from PIL import Image  # noqa: PLC0415

    code = segno.make(text, error="m", boost_error=False, micro=False)
    side = code.symbol_size(scale=1, border=QR_BORDER)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=max(1, max_px // side), border=QR_BORDER)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _font(path: Path, size: int) -> FreeTypeFont:
    """The font at ``size``: its Simplified Chinese face when it is a collection (.ttc)."""
    from PIL import ImageFont  # noqa: PLC0415

    try:
        return ImageFont.truetype(str(path), size, index=_face_index(str(path)))
    except OSError as exc:
        raise CardRefused("no-cjk-font", f"{path} is not a usable font: {exc}") from exc


@functools.cache
def _face_index(path: str) -> int:
    """Which face of a font collection is for Simplified Chinese (0 when none says so)."""
    from PIL import ImageFont  # noqa: PLC0415

    for index in range(16):
        try:
            family = ImageFont.truetype(path, 12, index=index).getname()[0] or ""
        except OSError:
            break  # past the last face of the collection
        if family.endswith(" SC") or "Micro Hei" in family or "Zen Hei" in family:
            return index
    return 0
