"""Tests of the rescue stage: when it runs, what it reads, and that it never reads wrong."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import pytest
import segno

from gate_agent.hardware import rescue as rescue_module
from gate_agent.hardware.decoder import PLAIN_CHAIN, QrDecoder
from gate_agent.hardware.readers import Corners, DecodedCode, Read, ZxingResult, read_zbar
from gate_agent.hardware.rescue import ATTEMPTS, rescue

DECODER = QrDecoder()
ZXING_ONLY = QrDecoder(["zxing-cpp"])
ALL_ATTEMPTS = tuple(f"rescue:{a.name}" for a in ATTEMPTS)


def _b32(n: int, seed: int) -> str:
    raw = bytes((i * 37 + seed) % 256 for i in range(n))
    return base64.b32encode(raw).decode("ascii")[:n]


PASS_TEXT = "GP1:ABCDEFGH:" + _b32(150, 11) + ":" + _b32(103, 29)


def modules(text: str | bytes) -> np.ndarray:
    """The code's modules, 1 dark, with a 4-module quiet zone."""
    return np.pad(np.array(segno.make(text, error="m").matrix, dtype=np.uint8), 4)


def render(mods: np.ndarray, scale: int = 4) -> np.ndarray:
    pixels = np.where(mods == 1, 0, 255).astype(np.uint8)
    return np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))


def hard_frame(text: str, *, module_px: float, blur: float, dark: int, light: int) -> np.ndarray:
    """A 640x480 frame with a small, blurred, low-contrast code at (150, 100)."""
    code = render(modules(text), 1).astype(np.float32)
    side = round(code.shape[0] * module_px)
    canvas = np.full((480, 640), 255, dtype=np.float32)
    canvas[100 : 100 + side, 150 : 150 + side] = cv2.resize(
        code, (side, side), interpolation=cv2.INTER_AREA
    )
    frame: Any = dark + canvas / 255 * (light - dark)
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    out: np.ndarray = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def damaged(text: str, share: float, seed: int) -> np.ndarray:
    """A code with `share` of its modules flipped, finder patterns spared: found, not readable."""
    mods = modules(text)
    inner = mods[4:-4, 4:-4]
    spared = np.zeros(inner.shape, dtype=bool)
    spared[:9, :9] = spared[:9, -9:] = spared[-9:, :9] = True
    flips = (np.random.default_rng(seed).random(inner.shape) < share) & ~spared
    inner ^= flips.astype(np.uint8)
    return render(mods)


def scenes() -> dict[str, np.ndarray]:
    """Frames with no code: flat, gradient, textured and noise, at two camera sizes."""
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {}
    for width, height in ((640, 480), (1280, 720)):
        y, x = np.mgrid[0:height, 0:width]
        coarse = rng.integers(0, 256, size=(height // 8, width // 8), dtype=np.uint8)
        out[f"black{width}"] = np.zeros((height, width), dtype=np.uint8)
        out[f"white{width}"] = np.full((height, width), 255, dtype=np.uint8)
        out[f"grey{width}"] = np.full((height, width), 128, dtype=np.uint8)
        out[f"gradient{width}"] = (40 + 150 * x / width + 30 * y / height).astype(np.uint8)
        out[f"texture{width}"] = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        out[f"noise{width}"] = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
    return out


SCENES = scenes()


@pytest.mark.parametrize("name", sorted(SCENES))
def test_frames_without_a_code_never_reach_the_rescue(name: str) -> None:
    codes, trace = DECODER.decode_traced(SCENES[name])
    assert codes == []
    # zxing-cpp's pass and the cheap probe, and nothing else.
    assert trace.steps == ("zxing-cpp", "probe")
    assert not trace.rescued


def test_a_code_read_at_once_needs_no_probe() -> None:
    codes, trace = DECODER.decode_traced(render(modules(PASS_TEXT)))
    assert [c.text for c in codes] == [PASS_TEXT]
    assert trace.steps == ("zxing-cpp",)


def test_a_hard_code_only_the_rescue_reads() -> None:
    frame = hard_frame(PASS_TEXT, module_px=1.5, blur=0.6, dark=110, light=140)
    assert ZXING_ONLY.decode(frame) == []
    assert QrDecoder(PLAIN_CHAIN).decode(frame) == []
    codes, trace = DECODER.decode_traced(frame)
    assert [(c.text, c.engine) for c in codes] == [(PASS_TEXT, "rescue:zxing-cpp")]
    assert trace.rescued
    # Corners come back in frame coordinates, around where the code was drawn.
    side = round(modules(PASS_TEXT).shape[0] * 1.5)
    xs = [x for x, _ in codes[0].corners]
    ys = [y for _, y in codes[0].corners]
    assert min(xs) >= 150 and max(xs) <= 150 + side
    assert min(ys) >= 100 and max(ys) <= 100 + side


def test_a_damaged_code_is_tried_everywhere_and_read_as_nothing() -> None:
    frame = damaged(PASS_TEXT, 0.15, seed=0)
    codes, trace = DECODER.decode_traced(frame)
    assert codes == []
    assert trace.steps == ("zxing-cpp", *ALL_ATTEMPTS)


def test_the_probe_reads_a_code_the_full_pass_cannot_locate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real frame of this kind is a photo (qrcode-2/12 in the photo set); here the full
    # pass is silenced to show the probe's read is taken as it comes, in frame coordinates.
    from gate_agent.hardware import decoder as decoder_module

    monkeypatch.setattr(decoder_module, "read_zxing", lambda gray: ZxingResult())
    frame = np.pad(render(modules("GP1:PROBE"), 6), ((100, 20), (200, 40)), constant_values=255)
    codes, trace = DECODER.decode_traced(frame)
    assert [(c.text, c.engine) for c in codes] == [("GP1:PROBE", "rescue:zxing-cpp")]
    assert trace.steps == ("zxing-cpp", "probe")
    assert min(x for x, _ in codes[0].corners) >= 200


# --- never a false read ---------------------------------------------------------------------


def fake_engines(
    monkeypatch: pytest.MonkeyPatch, zxing: dict[str, list[Read]], zbar: list[DecodedCode]
) -> None:
    """Make each rescue attempt answer as told (by attempt binarizer/scale), pyzbar too."""

    def read_zxing(image: np.ndarray, **kwargs: Any) -> ZxingResult:
        key = "global" if kwargs.get("binarizer") == rescue_module._GLOBAL else "local"
        return ZxingResult(reads=list(zxing.get(f"{key}{image.shape[1]}", [])))

    monkeypatch.setattr(rescue_module, "read_zxing", read_zxing)
    monkeypatch.setattr(rescue_module, "read_zbar", lambda image, **kwargs: list(zbar))


REGION: list[Corners] = [((40, 40), (140, 40), (140, 140), (40, 140))]
FRAME = np.full((200, 200), 255, dtype=np.uint8)
# The region (101 pixels a side) widened by 101 // 4 + 4 = 29 each way: a crop at (11, 11).
CROP = 159


def code(text: str, engine: Any = "rescue:zxing-cpp", at: int = 10) -> DecodedCode:
    return DecodedCode(text, engine, ((at, at), (at + 100, at), (at + 100, at + 100)))


def run(attempts: Any = ATTEMPTS) -> tuple[list[DecodedCode], list[str]]:
    steps: list[str] = []
    return rescue(FRAME, REGION, steps.append, attempts), steps


def test_a_read_with_correction_to_spare_ends_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(monkeypatch, {f"global{CROP}": [Read(code("GP1:OK"), 0.4)]}, [])
    codes, steps = run()
    assert [c.text for c in codes] == ["GP1:OK"]
    assert steps == [ALL_ATTEMPTS[0]]
    # Corners are moved from the crop to the frame.
    assert codes[0].corners[0] == (10 + 11, 10 + 11)


def test_a_read_without_spare_correction_is_checked_by_every_other_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_engines(monkeypatch, {f"global{CROP}": [Read(code("GP1:OK"), 0.0)]}, [])
    codes, steps = run()
    assert [c.text for c in codes] == ["GP1:OK"]
    assert tuple(steps) == ALL_ATTEMPTS


def test_two_texts_at_one_place_cancel_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if pyzbar miscorrected a damaged symbol that zxing-cpp read (without margin).
    fake_engines(
        monkeypatch,
        {f"global{CROP}": [Read(code("GP1:RIGHT"), 0.0)]},
        [code("GP1:WRONG", "rescue:pyzbar", at=12)],
    )
    codes, steps = run()
    assert codes == []
    assert tuple(steps) == ALL_ATTEMPTS


def test_two_texts_at_two_places_are_both_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(
        monkeypatch,
        {f"global{CROP}": [Read(code("GP1:LEFT", at=0), None)]},
        [code("GP1:RIGHT", "rescue:pyzbar", at=120)],
    )
    codes, _ = run()
    assert sorted(c.text for c in codes) == ["GP1:LEFT", "GP1:RIGHT"]


def test_replacement_characters_never_leave_the_rescue(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(monkeypatch, {f"global{CROP}": [Read(code("GP1:\ufffd"), 0.5)]}, [])
    assert run() == ([], list(ALL_ATTEMPTS))


def test_a_damaged_text_still_contradicts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(
        monkeypatch,
        {f"global{CROP}": [Read(code("GP1:OK"), 0.0)]},
        [code("GP1:\ufffd", "rescue:pyzbar")],
    )
    assert run()[0] == []


def test_pyzbar_drops_non_utf8_payloads_when_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    # zbar transcodes what it recognises, so bytes that are not UTF-8 are rare: fake them.
    from pyzbar import pyzbar
    from pyzbar.pyzbar import Decoded, Point, Rect

    symbol = Decoded(b"GP1:\xff\xfe", "QRCODE", Rect(0, 0, 9, 9), [Point(0, 0)] * 4, 1, None)
    monkeypatch.setattr(pyzbar, "decode", lambda image, symbols: [symbol])
    frame = np.zeros((9, 9), dtype=np.uint8)
    assert [c.text for c in read_zbar(frame)] == ["GP1:\ufffd\ufffd"]
    assert read_zbar(frame, strict=True) == []


def test_the_same_text_read_twice_is_returned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(
        monkeypatch,
        {f"global{CROP}": [Read(code("GP1:OK"), 0.0)]},
        [code("GP1:OK", "rescue:pyzbar", at=11)],
    )
    codes, _ = run()
    assert [(c.text, c.engine) for c in codes] == [("GP1:OK", "rescue:zxing-cpp")]


# --- regions and threads --------------------------------------------------------------------


def test_overlapping_outlines_are_one_region_and_tiny_ones_none() -> None:
    located: list[Corners] = [
        ((40, 40), (140, 40), (140, 140), (40, 140)),
        ((60, 60), (100, 60), (100, 100), (60, 100)),  # a "Micro QR" inside the code
        ((180, 180), (185, 180), (185, 185), (180, 185)),  # too small to read
    ]
    steps: list[str] = []
    rescue(FRAME, located, steps.append)
    assert tuple(steps) == ALL_ATTEMPTS


def test_a_large_region_is_not_enlarged() -> None:
    frame = np.full((720, 1280), 255, dtype=np.uint8)
    located: list[Corners] = [((100, 100), (700, 100), (700, 700), (100, 700))]
    steps: list[str] = []
    assert rescue(frame, located, steps.append) == []
    assert steps == [f"rescue:{a.name}" for a in ATTEMPTS if a.scale == 1.0]


def test_decoding_from_several_threads_at_once() -> None:
    frames = {
        "GP1:ONE": render(modules("GP1:ONE")),
        PASS_TEXT: hard_frame(PASS_TEXT, module_px=1.5, blur=0.6, dark=110, light=140),
        "": SCENES["texture640"],
    }

    def decode(text: str) -> tuple[str, list[str]]:
        return text, [c.text for c in DECODER.decode(frames[text])]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(decode, list(frames) * 4))
    for text, texts in results:
        assert texts == ([text] if text else [])
