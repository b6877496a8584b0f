"""Tests of the Pi camera source, with a stand-in for rpicam-vid writing I420 frames to stdout."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import segno

from gate_agent.hardware.camera import Backoff
from gate_agent.hardware.camera_rpicam import (
    RpiCamera,
    i420_size,
    rpicam_command,
    yuv420_stride,
)
from gate_agent.hardware.decoder import QrDecoder
from tests.limits import PATIENCE_S

DECODER = QrDecoder()
WIDTH, HEIGHT = 200, 160  # 200 is not a multiple of 64: rows arrive padded to 256

# Writes the frames of an .npy file as rpicam-vid does with --codec yuv420: Y rows padded to
# the stride (with junk the reader must crop), then U and V. Modes: "forever" loops until
# killed; "once" writes every frame and exits; "nocamera" fails as rpicam-vid does without
# a camera; "partial" ends in the middle of a frame.
FAKE_RPICAM = """
import sys, time
import numpy as np

frames_path, stride, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frames = np.load(frames_path)
count, height, width = frames.shape
out = sys.stdout.buffer
if mode == "nocamera":
    sys.stderr.write("ERROR: *** no cameras available ***\\n")
    sys.exit(255)
chroma = np.full(2 * (stride // 2) * (height // 2), 128, dtype=np.uint8).tobytes()
def frame(k):
    y = np.full((height, stride), 0xEE, dtype=np.uint8)
    y[:, :width] = frames[k]
    return y.tobytes() + chroma
if mode == "partial":
    out.write(frame(0) + frame(1)[: stride * height // 2])
    out.flush()
    sys.exit(3)
k = 0
while True:
    out.write(frame(k % count))
    out.flush()
    k += 1
    if mode == "once" and k == count:
        break
    time.sleep(0.01)
"""


def wait_for(predicate: Callable[[], bool], timeout_s: float = PATIENCE_S) -> None:
    """Poll until `predicate()` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def qr_y_plane(text: str) -> np.ndarray:
    """A WIDTH x HEIGHT luma plane with a QR code of `text` (segno, error level M)."""
    qr = segno.make_qr(text, error="m")
    code = np.where(np.pad(np.array(qr.matrix, dtype=np.uint8), 4) == 1, 16, 235).astype(np.uint8)
    code = np.kron(code, np.ones((4, 4), dtype=np.uint8))
    y = np.full((HEIGHT, WIDTH), 120, dtype=np.uint8)
    top, left = (HEIGHT - code.shape[0]) // 2, (WIDTH - code.shape[1]) // 2
    y[top : top + code.shape[0], left : left + code.shape[1]] = code
    return y


@pytest.fixture
def frames(tmp_path: Path) -> np.ndarray:
    planes = np.stack([qr_y_plane(f"PICAM-{k}") for k in range(3)])
    np.save(tmp_path / "frames.npy", planes)
    return planes


def fake_command(tmp_path: Path, mode: str, stride: int = 256) -> list[str]:
    script = tmp_path / "fake_rpicam_vid.py"
    script.write_text(FAKE_RPICAM)
    return [sys.executable, str(script), str(tmp_path / "frames.npy"), str(stride), mode]


def quick() -> Backoff:
    return Backoff(first_s=0.02, factor=2.0, max_s=0.1)


def test_the_command_streams_unencoded_yuv420_to_stdout_until_killed():
    assert rpicam_command(1280, 720, 30) == [
        "rpicam-vid", "-t", "0", "-n", "--codec", "yuv420", "--width", "1280",
        "--height", "720", "--framerate", "30", "--flush", "-o", "-",
    ]  # fmt: skip


def test_rows_are_padded_to_64_bytes_and_a_frame_holds_three_planes():
    assert [yuv420_stride(w) for w in (640, 1280, 1920, 200, 1332)] == [640, 1280, 1920, 256, 1344]
    assert i420_size(1280, 720) == 1280 * 720 * 3 // 2
    assert i420_size(256, 160) == 256 * 160 + 2 * 128 * 80


def test_frames_are_the_y_plane_cropped_to_the_width(tmp_path, frames):
    command = fake_command(tmp_path, "forever")
    with RpiCamera(width=WIDTH, height=HEIGHT, command=command, backoff=quick()) as camera:
        assert camera.stride == 256
        seen: set[int] = set()
        while len(seen) < 3:
            frame = camera.read(timeout_s=10.0)
            assert frame is not None
            assert frame.gray.shape == (HEIGHT, WIDTH) and frame.gray.flags.c_contiguous
            matches = [k for k in range(3) if np.array_equal(frame.gray, frames[k])]
            assert len(matches) == 1  # exactly a Y plane: no padding, no chroma
            assert [c.text for c in DECODER.decode(frame.gray)] == [f"PICAM-{matches[0]}"]
            seen.add(matches[0])
        assert camera.health().ok


def test_an_unpadded_stride_can_be_given(tmp_path, frames):
    command = fake_command(tmp_path, "forever", stride=WIDTH)
    with RpiCamera(
        width=WIDTH, height=HEIGHT, stride=WIDTH, command=command, backoff=quick()
    ) as camera:
        frame = camera.read(timeout_s=10.0)
        assert frame is not None
        assert any(np.array_equal(frame.gray, plane) for plane in frames)


def test_when_the_program_ends_it_is_restarted(tmp_path, frames):
    command = fake_command(tmp_path, "once")
    with RpiCamera(width=WIDTH, height=HEIGHT, command=command, backoff=quick()) as camera:
        wait_for(lambda: camera.health().reconnects >= 1 and camera.health().frames_total > 3)
        frame = camera.read(timeout_s=10.0)
        assert frame is not None
        assert any(np.array_equal(frame.gray, plane) for plane in frames)


def test_a_partial_frame_is_dropped_and_the_exit_explained(tmp_path, frames):
    command = fake_command(tmp_path, "partial")
    with RpiCamera(
        width=WIDTH, height=HEIGHT, command=command, backoff=Backoff(5.0, 1.0, 5.0)
    ) as camera:
        wait_for(lambda: "exited with code 3" in camera.health().detail)
        health = camera.health()
        assert health.state == "reconnecting" and not health.ok
        assert health.frames_total == 1  # the half frame never became one


def test_no_camera_shows_as_unplugged(tmp_path, frames):
    command = fake_command(tmp_path, "nocamera")
    with RpiCamera(width=WIDTH, height=HEIGHT, command=command, backoff=quick()) as camera:
        wait_for(lambda: camera.health().state == "unplugged")
        assert "no cameras available" in camera.health().detail
        assert camera.read(timeout_s=0.01) is None


def test_a_missing_program_is_retried_not_raised(tmp_path):
    command = [str(tmp_path / "rpicam-vid")]
    with RpiCamera(command=command, backoff=quick()) as camera:
        wait_for(lambda: "cannot start" in camera.health().detail)
        assert camera.health().state == "reconnecting"


def test_close_kills_and_reaps_the_program(tmp_path, frames):
    camera = RpiCamera(
        width=WIDTH, height=HEIGHT, command=fake_command(tmp_path, "forever"), backoff=quick()
    )
    assert camera.read(timeout_s=10.0) is not None
    pid = camera.pid
    assert pid is not None
    camera.close()
    assert camera.pid is None
    assert not Path(f"/proc/{pid}").exists()  # gone and waited for: no zombie left behind
    assert camera.health().state == "closed"


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        RpiCamera(width=641, height=480, command=["true"])
