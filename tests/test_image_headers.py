"""Image files whose headers declare more pixels than a gate decodes are refused unread.

OpenCV allocates what a header claims before it reads the data. Found by fuzzing (the
PNG and JPEG cases) and then by asking the same of every format OpenCV reads: a 34-byte
lossless WebP declaring 16383x16383 took 1.6 GB and 3 s, a 29-byte GIF declaring
30000x30000 took 6.9 GB and 9 s. A Pi has 1 to 8 GB; the agent would be killed.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from fuzz import corpus
from gate_agent.errors import ImageError
from gate_agent.hardware.decoder import QrDecoder, decode_image_file
from gate_agent.hardware.images import MAX_IMAGE_PIXELS, _declared_size, load_gray


def encoded(ext: str, image: np.ndarray | None = None, *params: int) -> bytearray:
    """A real image file made by OpenCV (an 8x8 black square unless given one)."""
    if image is None:
        image = np.zeros((8, 8), np.uint8)
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return bytearray(data.tobytes())


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose start-of-frame is rewritten to declare another size."""
    data = encoded(".jpg")
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    """A real 8x8 BMP whose info header declares another size (negative: top-down rows)."""
    data = encoded(".bmp")
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_lossless_declaring(width: int, height: int) -> bytes:
    """A real 8x8 lossless WebP (VP8L) whose 14-bit sizes are rewritten."""
    data = encoded(".webp")
    assert data[12:16] == b"VP8L"
    bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    data[21:25] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(data)


def webp_lossy_declaring(width: int, height: int) -> bytes:
    """A real 8x8 lossy WebP (VP8) whose frame header declares another size."""
    data = encoded(".webp", None, cv2.IMWRITE_WEBP_QUALITY, 80)
    assert data[12:16] == b"VP8 "
    data[26:30] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_extended_declaring(width: int, height: int) -> bytes:
    """An extended WebP (VP8X) canvas of another size around a real 8x8 lossless frame."""
    frame = encoded(".webp")[12:]
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little") + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_declaring(width: int, height: int) -> bytes:
    """A real 8x8 TIFF whose first directory says another ImageWidth and ImageLength."""
    data = encoded(".tiff")
    start = int.from_bytes(data[4:8], "little")
    for n in range(int.from_bytes(data[start : start + 2], "little")):
        entry = start + 2 + 12 * n
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            data[entry + 8 : entry + 12] = packed
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF of one frame covering a screen of the given size, with a 3-byte LZW body."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + frame + b"\x02\x02\x44\x01\x00\x3b"


#: Found by `make fuzz` (image_decode-oom-b69ecb33...): a 62-byte PNG declaring
#: 100000x100000 with a damaged IHDR checksum; OpenCV 5 spent 15 s and 4 GB on it.
PNG_OOM = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgABhqAAAYagCAAAAACNNlQU9wAADElEQVR4AEAAAbcyfO8AAAAASUVORK5CYII="
)

BUILDERS: dict[str, Callable[[int, int], bytes]] = {
    "jpeg": jpeg_declaring,
    "bmp": bmp_declaring,
    "webp-lossless": webp_lossless_declaring,
    "webp-lossy": webp_lossy_declaring,
    "webp-extended": webp_extended_declaring,
    "tiff": tiff_declaring,
    "gif": gif_declaring,
}


@pytest.mark.parametrize(
    "data",
    [
        PNG_OOM,
        jpeg_declaring(30_000, 30_000),
        jpeg_declaring(65_535, 65_535),
        bmp_declaring(30_000, 30_000),
        bmp_declaring(30_000, -30_000),
        webp_lossless_declaring(16_383, 16_383),
        webp_lossy_declaring(16_383, 16_383),
        webp_extended_declaring(16_383, 16_383),
        tiff_declaring(30_000, 30_000),
        gif_declaring(30_000, 30_000),
    ],
    ids=["png-damaged-header", "jpeg-30000x30000", "jpeg-65535x65535", "bmp-30000x30000",
         "bmp-top-down", "webp-lossless", "webp-lossy", "webp-extended", "tiff", "gif"],
)  # fmt: skip
def test_an_image_declaring_too_many_pixels_is_refused_unread(data: bytes, tmp_path: Path) -> None:
    # Before: the JPEG below 2^30 pixels decoded to a 900 MB frame from a 600-byte file.
    path = tmp_path / "huge"
    path.write_bytes(data)
    result = decode_image_file(path, QrDecoder())
    assert result.error is not None and "header declares" in result.error


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_header_reader_finds_the_size_the_file_declares(name: str) -> None:
    # Read back from what the builder wrote, on both sides of the limit.
    for width, height in ((8, 8), (300, 200), (10_001, 10_000)):
        declared = _declared_size(BUILDERS[name](width, height))
        assert declared is not None and declared[1:] == (width, height)
    assert MAX_IMAGE_PIXELS < 10_001 * 10_000


def qr_image() -> np.ndarray:
    text = "GP1:TESTTEST:ABCDEFGHIJKLMNOP"
    matrix = np.array(list(segno.make(text, error="m").matrix_iter(scale=4, border=4)))
    return np.where(matrix == 1, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff"])
def test_an_ordinary_image_of_each_format_still_decodes(ext: str, tmp_path: Path) -> None:
    path = tmp_path / f"qr{ext}"
    path.write_bytes(encoded(ext, qr_image()))
    assert decode_image_file(path, QrDecoder()).texts == ["GP1:TESTTEST:ABCDEFGHIJKLMNOP"]


def test_an_ordinary_jpeg_pass_from_the_fuzz_corpus_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "qr.jpg"
    path.write_bytes(corpus.seeds("image_decode")[1])
    assert len(decode_image_file(path, QrDecoder()).texts) == 1


def test_a_whole_webp_shorter_than_opencv_will_look_at_still_decodes(tmp_path: Path) -> None:
    # libwebp's 1x1 lossless image is 30 bytes; OpenCV refuses buffers under 32.
    tiny = bytes.fromhex("5249464616000000574542505650384c0a0000002f00000000451723fa1f")
    assert len(tiny) == 30
    path = tmp_path / "1x1.webp"
    path.write_bytes(tiny)
    assert load_gray(path).shape == (1, 1)


def test_a_truncated_header_is_not_a_size(tmp_path: Path) -> None:
    for name, build in BUILDERS.items():
        data = build(30_000, 30_000)
        for cut in (4, 12, 20):
            _declared_size(data[:cut])  # never raises on a short file
        path = tmp_path / name
        path.write_bytes(data[:24])
        with pytest.raises(ImageError):
            load_gray(path)
