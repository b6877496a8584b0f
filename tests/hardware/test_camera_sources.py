"""Tests of the OpenCV sources: USB webcam setup and replugging, a real HTTP MJPEG stream
served on 127.0.0.1, video files written here, and image folders."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from gate_agent.errors import DeviceError
from gate_agent.hardware.camera import Backoff
from gate_agent.hardware.camera_sources import (
    ImageFolderSource,
    IpCamera,
    UsbCamera,
    VideoFileSource,
    device_path,
)
from gate_agent.hardware.decoder import QrDecoder
from tests.limits import PATIENCE_S

DECODER = QrDecoder()


def wait_for(predicate: Callable[[], bool], timeout_s: float = PATIENCE_S) -> None:
    """Poll until `predicate()` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def qr_frame(text: str, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Return a gray frame of `size` (width, height) with a QR code of `text` in the middle."""
    qr = segno.make_qr(text, error="m")
    code = np.where(np.pad(np.array(qr.matrix, dtype=np.uint8), 4) == 1, 0, 255).astype(np.uint8)
    scale = max(1, min(size) // code.shape[0])
    code = np.kron(code, np.ones((scale, scale), dtype=np.uint8))
    frame = np.full((size[1], size[0]), 160, dtype=np.uint8)
    top, left = (size[1] - code.shape[0]) // 2, (size[0] - code.shape[1]) // 2
    frame[top : top + code.shape[0], left : left + code.shape[1]] = code
    return frame


def texts_in(gray: np.ndarray) -> list[str]:
    return [code.text for code in DECODER.decode(gray)]


def quick_sleep(seconds: float) -> None:
    """Stand in for backoff waits: short enough for tests, long enough not to spin."""
    time.sleep(min(seconds, 0.01))


# --- USB webcam ----------------------------------------------------------------------------


class FakeCapture:
    """Stands in for cv2.VideoCapture on a V4L2 node: records the property calls."""

    def __init__(self, node: Path, frames: list[np.ndarray]) -> None:
        self.node = node
        self.frames = frames
        self.calls: list[tuple[int, float]] = []
        self.released = False

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float, /) -> bool:
        self.calls.append((prop, value))
        return True

    def get(self, prop: int, /) -> float:
        return next((v for p, v in reversed(self.calls) if p == prop), 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.node.exists():
            return False, None  # the driver's read fails once the device is gone
        time.sleep(0.002)  # a camera delivers at its own pace
        return True, self.frames[0]

    def release(self) -> None:
        self.released = True


def test_device_indexes_map_to_video_nodes():
    assert device_path(0) == "/dev/video0"
    assert device_path("2") == "/dev/video2"
    assert device_path("/dev/v4l/by-id/cam") == "/dev/v4l/by-id/cam"


def test_a_missing_webcam_is_unplugged_and_retried(tmp_path):
    with UsbCamera(str(tmp_path / "video0"), sleep=quick_sleep) as camera:
        wait_for(lambda: camera.health().state == "unplugged")
        health = camera.health()
        assert not health.ok and "no such device" in health.detail
        assert camera.read(timeout_s=0.01) is None


def test_the_webcam_is_set_up_for_mjpg_size_rate_and_a_one_frame_queue(tmp_path):
    node = tmp_path / "video0"
    node.touch()
    opened: list[tuple[str, int]] = []
    captures: list[FakeCapture] = []
    bgr = cv2.cvtColor(qr_frame("USB-1"), cv2.COLOR_GRAY2BGR)

    def factory(device: str, api: int) -> FakeCapture:
        opened.append((device, api))
        captures.append(FakeCapture(node, [bgr]))
        return captures[-1]

    with UsbCamera(
        str(node), width=640, height=480, fps=15, capture_factory=factory, sleep=quick_sleep
    ) as camera:
        frame = camera.read(timeout_s=10.0)
        assert frame is not None
        assert frame.gray.shape == (240, 320)  # converted to gray at the edge
        assert texts_in(frame.gray) == ["USB-1"]
        assert opened == [(str(node), cv2.CAP_V4L2)]
        assert captures[0].calls == [
            (cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG")),
            (cv2.CAP_PROP_FRAME_WIDTH, 640),
            (cv2.CAP_PROP_FRAME_HEIGHT, 480),
            (cv2.CAP_PROP_FPS, 15),
            (cv2.CAP_PROP_BUFFERSIZE, 1),
        ]
        # Unplug: reads fail and the node is gone; replug: the camera comes back by itself.
        node.unlink()
        wait_for(lambda: camera.health().state == "unplugged")
        assert captures[0].released
        node.touch()
        wait_for(lambda: camera.health().ok)
        assert camera.health().reconnects == 1
        assert len(opened) == 2
        assert camera.read(timeout_s=10.0) is not None


def test_a_webcam_that_cannot_be_opened_is_retried(tmp_path):
    node = tmp_path / "video0"
    node.touch()

    class Busy(FakeCapture):
        def isOpened(self) -> bool:
            return False

    with UsbCamera(
        str(node), capture_factory=lambda d, a: Busy(node, []), sleep=quick_sleep
    ) as camera:
        wait_for(lambda: "cannot open" in camera.health().detail)
        assert camera.health().state == "reconnecting"


# --- IP camera over HTTP MJPEG ---------------------------------------------------------------


class MjpegServer:
    """A multipart/x-mixed-replace MJPEG stream on 127.0.0.1, stoppable and restartable."""

    def __init__(self, text: str) -> None:
        ok, jpeg = cv2.imencode(".jpg", qr_frame(text), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        self.jpeg = jpeg.tobytes()
        self.port = 0
        self.stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.connections = 0

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=gateframe")
                self.end_headers()
                part = (
                    b"--gateframe\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(outer.jpeg)}\r\n\r\n".encode()
                    + outer.jpeg
                    + b"\r\n"
                )
                try:
                    while not outer.stopping.is_set():
                        self.wfile.write(part)
                        self.wfile.flush()
                        outer.stopping.wait(0.02)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the camera source hung up

        self.stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = False  # server_close() joins the streaming threads
        self.port = server.server_address[1]
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None and self.thread is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10.0)
            self.server = self.thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    server = MjpegServer("IPCAM-GATE-3")
    server.start()
    yield server
    server.stop()


def test_an_ip_camera_streams_reconnects_after_a_drop_and_streams_again(mjpeg):
    camera = IpCamera(
        mjpeg.url,
        open_timeout_s=2.0,
        read_timeout_s=2.0,
        backoff=Backoff(first_s=0.05, factor=2.0, max_s=0.2),
    )
    with camera:
        frame = camera.read(timeout_s=10.0)
        assert frame is not None
        assert texts_in(frame.gray) == ["IPCAM-GATE-3"]  # a real frame, decoded by FFmpeg
        assert camera.health().ok

        mjpeg.stop()  # the camera goes away: connection dropped, then refused
        wait_for(lambda: camera.health().state == "reconnecting")
        assert not camera.health().ok

        mjpeg.start()  # back on the same port
        wait_for(lambda: camera.health().ok and camera.health().reconnects >= 1)
        again = camera.read(timeout_s=10.0)
        assert again is not None and again.seq > frame.seq
        assert texts_in(again.gray) == ["IPCAM-GATE-3"]
        assert mjpeg.connections >= 2
    assert camera.health().state == "closed"


def test_an_unreachable_ip_camera_is_reconnecting_not_an_error(mjpeg):
    url = mjpeg.url
    mjpeg.stop()
    with IpCamera(url, open_timeout_s=1.0, read_timeout_s=1.0, sleep=quick_sleep) as camera:
        wait_for(lambda: "cannot connect" in camera.health().detail)
        assert camera.health().state == "reconnecting"


# --- video files ------------------------------------------------------------------------------


def write_video(path: Path, texts: list[str], fps: float = 10.0) -> list[np.ndarray]:
    """Write an MJPG .avi whose frames show `texts` as QR codes; return the frames."""
    frames = [qr_frame(text) for text in texts]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return frames


def test_a_video_file_plays_to_the_end(tmp_path):
    texts = [f"FRAME-{i}" for i in range(6)]
    frames = write_video(tmp_path / "gate.avi", texts)
    seen: list[int] = []
    with VideoFileSource(tmp_path / "gate.avi") as source:
        wait_for(lambda: source.health().state == "ended")
        last = source.read(timeout_s=5.0)
        assert last is not None
        seen.append(last.seq)
        health = source.health()
        assert (health.frames_total, health.ok) == (6, False)
        assert health.frames_dropped == 5  # read nothing until the end: only the last is left
        assert "end of file" in health.detail
        assert texts_in(last.gray) == ["FRAME-5"]
        assert np.abs(last.gray.astype(int) - frames[-1]).mean() < 3  # JPEG, nearly exact
        assert source.read(timeout_s=5.0) is None


def test_a_looping_video_file_starts_again(tmp_path):
    write_video(tmp_path / "loop.avi", ["A", "B", "C"])
    with VideoFileSource(tmp_path / "loop.avi", loop=True) as source:
        wait_for(lambda: source.health().frames_total > 7)
        assert source.health().state == "streaming"
        assert source.read(timeout_s=5.0) is not None


def test_realtime_paces_frames_at_the_file_rate_on_the_injected_clock(tmp_path):
    write_video(tmp_path / "paced.avi", ["P0", "P1", "P2", "P3"], fps=10.0)
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    source = VideoFileSource(
        tmp_path / "paced.avi", realtime=True, clock=lambda: now[0], sleep=sleep
    )
    with source:
        wait_for(lambda: source.health().state == "ended")
    # Each frame after the first waits its turn, and the last one is shown for its full
    # period before the end of the file is noticed.
    assert waits == pytest.approx([0.1, 0.1, 0.1, 0.1])
    assert now[0] == pytest.approx(100.4)


def test_a_file_that_is_not_a_video_fails_and_a_missing_one_is_refused(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with VideoFileSource(junk) as source:
        wait_for(lambda: source.health().state == "failed")
        assert not source.health().ok
    with pytest.raises(DeviceError, match="no such video file"):
        VideoFileSource(tmp_path / "missing.avi")


# --- image folders ----------------------------------------------------------------------------


def test_an_image_folder_shows_each_image_in_order_and_skips_a_broken_one(tmp_path):
    for name, text in (("a.png", "IMG-A"), ("b.jpg", "IMG-B"), ("d.png", "IMG-D")):
        cv2.imwrite(str(tmp_path / name), qr_frame(text))
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "notes.txt").write_text("not an image")
    step = threading.Semaphore(0)
    intervals: list[float] = []

    def sleep(seconds: float) -> None:
        intervals.append(seconds)
        step.acquire(timeout=10.0)  # the test says when the interval is over

    with ImageFolderSource(tmp_path, interval_s=0.5, sleep=sleep) as source:
        assert [p.name for p in source.files] == ["a.png", "b.jpg", "c.png", "d.png"]
        read = []
        for _ in range(3):
            frame = source.read(timeout_s=10.0)
            assert frame is not None
            read.append(texts_in(frame.gray))
            step.release()
            if len(read) == 2:
                step.release()  # past the broken c.png
        wait_for(lambda: source.health().state == "ended")
        assert read == [["IMG-A"], ["IMG-B"], ["IMG-D"]]
        assert source.health().frames_total == 3
        assert intervals == [0.5, 0.5, 0.5, 0.5]


def test_a_looping_image_folder_starts_again(tmp_path):
    cv2.imwrite(str(tmp_path / "only.png"), qr_frame("ONLY"))
    with ImageFolderSource(tmp_path, interval_s=0.001, loop=True) as source:
        wait_for(lambda: source.health().frames_total >= 3)
        frame = source.read(timeout_s=5.0)
        assert frame is not None and texts_in(frame.gray) == ["ONLY"]


def test_an_empty_or_missing_folder_is_refused(tmp_path):
    with pytest.raises(DeviceError, match="no image files"):
        ImageFolderSource(tmp_path)
    with pytest.raises(DeviceError, match="no such folder"):
        ImageFolderSource(tmp_path / "missing")
