"""Tests of the pass renderer and the simulated camera: what it shows is what decoders read."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from gate_agent.hardware.camera import FrameSource
from gate_agent.hardware.decoder import QrDecoder
from gate_agent.hardware.render import (
    HARD,
    PAPER,
    PHONE,
    PRESETS,
    RenderStyle,
    render_blank,
    render_pass,
)
from gate_agent.hardware.simulated import SimulatedCamera
from tests.limits import PATIENCE_S

DECODER = QrDecoder()


def _b32(n: int, seed: int) -> str:
    raw = bytes((i * 37 + seed) % 256 for i in range(n))
    return base64.b32encode(raw).decode("ascii")[:n]


# Shaped like passes: prefix, key id, payload, signature (QR version 10 at level M).
PASSES = ["GP1:ABCDEFGH:" + _b32(150, seed) + ":" + _b32(103, seed + 5) for seed in (1, 2, 3)]


def wait_for(predicate: Callable[[], bool], timeout_s: float = PATIENCE_S) -> None:
    """Poll until `predicate()` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def texts_in(gray: np.ndarray) -> list[str]:
    return [code.text for code in DECODER.decode(gray)]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_renders_passes_the_decoder_reads_back_exactly(preset):
    style = PRESETS[preset]
    for text in PASSES:
        frame = render_pass(text, style)
        assert frame.shape == (720, 1280) and frame.dtype == np.uint8
        assert texts_in(frame) == [text]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_blank_scene_reads_nothing(preset):
    assert texts_in(render_blank(PRESETS[preset])) == []


def test_renders_are_deterministic_for_a_seed():
    first = render_pass(PASSES[0], HARD)
    assert np.array_equal(first, render_pass(PASSES[0], HARD))
    assert not np.array_equal(first, render_pass(PASSES[0], dataclasses.replace(HARD, seed=99)))
    assert np.array_equal(render_blank(PAPER), render_blank(PAPER))


def test_the_frame_size_and_the_look_follow_the_style():
    small = dataclasses.replace(PAPER, frame_size=(640, 480))
    frame = render_pass(PASSES[1], small)
    assert frame.shape == (480, 640)
    assert texts_in(frame) == [PASSES[1]]
    plain = RenderStyle()  # no tilt, blur, noise or glare: the cleanest frame
    assert texts_in(render_pass("HELLO GATE", plain)) == ["HELLO GATE"]


# --- each effect does what it says: none may quietly be a no-op ---------------------------

CLEAN = RenderStyle(seed=5)  # straight on, sharp, no glare, no noise


def _sharpness(gray: np.ndarray) -> float:
    """Mean absolute Laplacian: falls as edges soften."""
    return float(np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)).mean())


def _corners(style: RenderStyle) -> np.ndarray:
    (code,) = DECODER.decode(render_pass(PASSES[0], style))
    assert code.text == PASSES[0]
    return np.array(code.corners, dtype=np.float64)  # TL, TR, BR, BL


@pytest.mark.parametrize("knobs", [{"blur_sigma": 1.5}, {"motion_px": 6, "motion_deg": 30}])
def test_focus_and_motion_blur_soften_the_frame(knobs):
    blurred = render_pass(PASSES[0], dataclasses.replace(CLEAN, **knobs))
    assert _sharpness(blurred) < 0.8 * _sharpness(render_pass(PASSES[0], CLEAN))
    assert texts_in(blurred) == [PASSES[0]]


def test_sensor_noise_has_the_spread_asked_for():
    clean = render_pass(PASSES[0], CLEAN).astype(np.float64)
    noisy = render_pass(PASSES[0], dataclasses.replace(CLEAN, noise_sigma=6.0))
    assert 5.0 < float(np.std(noisy - clean)) < 7.0


def test_glare_brightens_one_patch_over_the_code():
    clean = render_pass(PASSES[0], CLEAN).astype(np.int16)
    glared = render_pass(PASSES[0], dataclasses.replace(CLEAN, glare=0.6)).astype(np.int16)
    lit = (glared - clean) > 40
    assert int((glared - clean).max()) > 80
    assert 0.002 < float(lit.mean()) < 0.2  # a reflection, not the whole frame brighter


def test_tilt_and_roll_warp_the_code_as_a_camera_would():
    def side(c: np.ndarray, a: int, b: int) -> float:
        return float(np.linalg.norm(c[a] - c[b]))

    straight = _corners(CLEAN)
    assert side(straight, 1, 2) / side(straight, 0, 3) == pytest.approx(1.0, abs=0.03)
    turned = _corners(dataclasses.replace(CLEAN, yaw_deg=25.0))  # one edge nearer the lens
    assert abs(side(turned, 1, 2) / side(turned, 0, 3) - 1.0) > 0.06
    pitched = _corners(dataclasses.replace(CLEAN, pitch_deg=25.0))
    assert abs(side(pitched, 0, 1) / side(pitched, 3, 2) - 1.0) > 0.06
    rolled = _corners(dataclasses.replace(CLEAN, roll_deg=30.0))
    dx, dy = rolled[1] - rolled[0]
    assert abs(abs(np.degrees(np.arctan2(dy, dx))) - 30.0) < 4.0


@pytest.mark.parametrize(
    "knobs",
    [
        {"frame_size": (32, 32)},
        {"scale": 0.0},
        {"glare": 1.5},
        {"moire": -0.1},
        {"blur_sigma": -1.0},
        {"noise_sigma": -2.0},
    ],
)
def test_styles_out_of_range_are_refused(knobs):
    with pytest.raises(ValueError):
        RenderStyle(**knobs)


# --- the simulated camera, on demand -------------------------------------------------------


def test_the_simulated_camera_is_a_frame_source():
    camera: FrameSource = SimulatedCamera(frame_size=(320, 240))
    with camera:
        assert camera.read(timeout_s=0.0) is not None


def test_on_demand_every_read_is_a_new_frame_of_the_scene():
    with SimulatedCamera() as camera:
        empty = camera.read(timeout_s=1.0)
        assert empty is not None and texts_in(empty.gray) == []
        camera.show_pass(PASSES[0], PHONE)
        frame = camera.read(timeout_s=1.0)
        assert frame is not None and frame.seq == empty.seq + 1
        assert texts_in(frame.gray) == [PASSES[0]]
        camera.show_nothing()
        after = camera.read(timeout_s=1.0)
        assert after is not None and texts_in(after.gray) == []
        health = camera.health()
        assert health.ok and health.state == "streaming" and health.frames_total == 3


def test_show_takes_any_image_and_leaves_the_callers_array_alone():
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # red, in BGR
    with SimulatedCamera(frame_size=(320, 240)) as camera:
        camera.show(image)
        frame = camera.read(timeout_s=1.0)
        assert frame is not None and frame.gray.shape == (240, 320)
        assert 70 < int(frame.gray[0, 0]) < 80  # red's share of luma
        assert image.flags.writeable
        gray = np.full((240, 320), 9, dtype=np.uint8)
        camera.show(gray)
        assert gray.flags.writeable


def test_a_pass_is_rendered_at_the_cameras_frame_size():
    with SimulatedCamera(frame_size=(640, 480)) as camera:
        camera.show_pass(PASSES[2], PAPER)
        frame = camera.read(timeout_s=1.0)
        assert frame is not None and frame.gray.shape == (480, 640)
        assert texts_in(frame.gray) == [PASSES[2]]


def test_unplugging_the_simulated_camera_stops_frames_until_plugged():
    with SimulatedCamera(frame_size=(320, 240)) as camera:
        camera.unplug()
        assert camera.read(timeout_s=5.0) is None
        health = camera.health()
        assert (health.ok, health.state) == (False, "unplugged")
        camera.plug()
        assert camera.read(timeout_s=1.0) is not None
    assert camera.health().state == "closed"
    assert camera.read(timeout_s=5.0) is None


# --- the simulated camera at a frame rate ---------------------------------------------------


def test_at_a_frame_rate_the_next_read_after_show_is_the_new_scene():
    with SimulatedCamera(frame_size=(640, 480), fps=100.0) as camera:
        assert camera.read(timeout_s=5.0) is not None
        camera.show_pass(PASSES[0], dataclasses.replace(PHONE, frame_size=(640, 480)))
        frame = camera.read(timeout_s=5.0)
        assert frame is not None and texts_in(frame.gray) == [PASSES[0]]
        wait_for(lambda: camera.health().frames_dropped >= 2)  # nobody read: frames dropped
        camera.show_nothing()
        frame = camera.read(timeout_s=5.0)
        assert frame is not None and texts_in(frame.gray) == []


def test_at_a_frame_rate_unplugging_is_seen_in_the_health():
    with SimulatedCamera(frame_size=(320, 240), fps=100.0) as camera:
        assert camera.read(timeout_s=5.0) is not None
        camera.unplug()
        wait_for(lambda: camera.health().state == "unplugged")
        camera.plug()
        wait_for(lambda: camera.health().ok)
        assert camera.health().reconnects == 1
        assert camera.read(timeout_s=5.0) is not None
