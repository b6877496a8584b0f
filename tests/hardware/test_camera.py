"""Tests of the camera port: the latest-frame grabber, its recovery, and the source factory."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from gate_agent.errors import ConfigError, DeviceError
from gate_agent.hardware.camera import Backoff, FrameGrabber, SourceDown
from gate_agent.hardware.camera_factory import CameraSpec, open_source
from gate_agent.hardware.camera_sources import UsbCamera, redact_url
from gate_agent.hardware.simulated import SimulatedCamera


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll until `predicate()` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def gray(level: int) -> np.ndarray:
    """Return a small uniform gray frame."""
    return np.full((4, 6), level, dtype=np.uint8)


class Device:
    """A scripted device: the test queues frames and errors, the grabber's thread takes them."""

    def __init__(self) -> None:
        self.items: queue.Queue[object] = queue.Queue()
        self.opens = 0
        self.releases = 0
        self.open_errors: list[Exception] = []
        self.delays: list[float] = []
        self.stop = threading.Event()

    def open(self) -> None:
        self.opens += 1
        if self.open_errors:
            raise self.open_errors.pop(0)

    def release(self) -> None:
        self.releases += 1

    def grab(self) -> np.ndarray | None:
        try:
            item = self.items.get(timeout=0.01)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, np.ndarray)
        return item

    def sleep(self, seconds: float) -> None:
        """Record a backoff wait and pause only briefly, so tests do not wait it out."""
        self.delays.append(seconds)
        self.stop.wait(0.002)


@pytest.fixture
def device() -> Device:
    return Device()


@pytest.fixture
def grabber(device: Device) -> Iterator[FrameGrabber]:
    ticks = itertools.count(1000)
    g = FrameGrabber(
        "test",
        device.grab,
        open_device=device.open,
        release=device.release,
        backoff=Backoff(first_s=0.1, factor=2.0, max_s=0.4),
        sleep=device.sleep,
        monotonic_ns=lambda: next(ticks),
        max_bad_frames=3,
    )
    g.start()
    yield g
    g.close()
    assert not g.alive


def test_the_newest_frame_wins_and_stale_frames_are_counted(device, grabber):
    for level in (10, 20, 30):
        device.items.put(gray(level))
    wait_for(lambda: grabber.health().frames_total == 3)
    frame = grabber.read(timeout_s=1.0)
    assert frame is not None
    assert frame.seq == 3
    assert int(frame.gray[0, 0]) == 30
    assert grabber.health().frames_dropped == 2
    assert grabber.read(timeout_s=0.01) is None  # nothing new: no frame is returned twice


def test_a_read_waits_for_the_next_frame(device, grabber):
    device.items.put(gray(5))
    frame = grabber.read(timeout_s=5.0)
    assert frame is not None and frame.seq == 1
    health = grabber.health()
    assert health.ok and health.state == "streaming"
    assert (health.frames_total, health.frames_dropped, health.reconnects) == (1, 0, 0)


def test_frames_are_converted_to_gray_and_stamped(device, grabber):
    bgr = np.zeros((4, 6, 3), dtype=np.uint8)
    bgr[:, :, 1] = 200  # pure green
    device.items.put(bgr)
    frame = grabber.read(timeout_s=5.0)
    assert frame is not None
    assert frame.gray.shape == (4, 6) and frame.gray.dtype == np.uint8
    assert 100 < int(frame.gray[0, 0]) < 140  # green's share of luma
    assert frame.captured_ns >= 1000  # from the injected monotonic clock


def test_a_device_error_marks_it_down_backs_off_and_reopens(device, grabber):
    device.items.put(gray(1))
    assert grabber.read(timeout_s=5.0) is not None
    device.items.put(DeviceError("USB disconnect"))
    wait_for(lambda: device.opens == 2)
    assert device.releases >= 1
    assert device.delays[0] == pytest.approx(0.1)
    device.items.put(gray(2))
    frame = grabber.read(timeout_s=5.0)
    assert frame is not None and int(frame.gray[0, 0]) == 2
    health = grabber.health()
    assert health.ok and health.reconnects == 1


def test_the_health_shows_the_failure_until_a_frame_comes(device):
    device.open_errors = [SourceDown("/dev/video0: no such device", state="unplugged")] * 50
    g = FrameGrabber("down", device.grab, open_device=device.open, sleep=device.sleep)
    g.start()
    try:
        wait_for(lambda: g.health().state == "unplugged")
        health = g.health()
        assert not health.ok
        assert "no such device" in health.detail
        assert g.read(timeout_s=0.01) is None
    finally:
        g.close()


def test_backoff_doubles_and_is_capped(device):
    assert [Backoff(0.5, 2.0, 3.0).delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    device.open_errors = [DeviceError("busy")] * 4
    g = FrameGrabber(
        "backoff",
        device.grab,
        open_device=device.open,
        backoff=Backoff(first_s=0.1, factor=2.0, max_s=0.4),
        sleep=device.sleep,
    )
    g.start()
    try:
        device.items.put(gray(9))
        assert g.read(timeout_s=5.0) is not None
        assert device.delays == pytest.approx([0.1, 0.2, 0.4, 0.4])
        assert g.health().reconnects == 0  # never lost once open: no reconnect
    finally:
        g.close()


def test_one_bad_frame_does_not_end_the_thread(device, grabber):
    device.items.put(ValueError("corrupt JPEG"))
    device.items.put(np.zeros((4, 4), dtype=np.float64))  # a layout to_gray refuses
    device.items.put(gray(7))
    frame = grabber.read(timeout_s=5.0)
    assert frame is not None and int(frame.gray[0, 0]) == 7
    assert grabber.alive
    assert device.opens == 1  # two bad frames are not a broken device


def test_a_run_of_bad_frames_reopens_the_device(device, grabber):
    for _ in range(3):
        device.items.put(RuntimeError("garbage"))
    wait_for(lambda: device.opens == 2)
    assert grabber.health().state == "reconnecting"
    assert "bad frames" in grabber.health().detail


def test_an_end_of_stream_stops_the_thread_and_keeps_the_last_frame(device, grabber):
    device.items.put(gray(1))
    device.items.put(gray(2))
    device.items.put(SourceDown("end of file", state="ended", retry=False))
    wait_for(lambda: not grabber.alive)
    health = grabber.health()
    assert (health.state, health.ok, health.detail) == ("ended", False, "end of file")
    frame = grabber.read(timeout_s=5.0)
    assert frame is not None and int(frame.gray[0, 0]) == 2
    started = time.monotonic()
    assert grabber.read(timeout_s=30.0) is None  # ended: returns at once, not after 30 s
    assert time.monotonic() - started < 10.0


def test_close_stops_the_thread_and_is_idempotent(device, grabber):
    device.items.put(gray(1))
    assert grabber.read(timeout_s=5.0) is not None
    grabber.close()
    grabber.close()
    assert not grabber.alive
    assert grabber.health().state == "closed"
    assert grabber.read(timeout_s=30.0) is None
    assert device.releases == 1


def test_close_interrupts_a_blocked_grab():
    unblock = threading.Event()

    def grab() -> np.ndarray | None:
        unblock.wait(30.0)  # a read on a pipe that never delivers
        return None

    g = FrameGrabber("blocked", grab, interrupt=unblock.set)
    g.start()
    g.close()
    assert not g.alive


def test_close_before_start_releases_nothing_and_reads_nothing(device):
    g = FrameGrabber("idle", device.grab, open_device=device.open, release=device.release)
    g.close()
    assert g.read(timeout_s=5.0) is None
    assert (device.opens, device.releases) == (0, 0)
    assert g.health().state == "closed"


def test_a_published_frame_is_seen_by_a_waiting_reader():
    def idle() -> None:
        time.sleep(0.002)  # a device with nothing to give

    g = FrameGrabber("publish", idle)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(getattr(g.read(5.0), "seq", -1)))
    g.start()
    try:
        reader.start()
        g.publish(gray(3))
        reader.join(10.0)
        assert got == [1]
    finally:
        g.close()
    assert g.publish(gray(4)) is None  # closed: nothing more is published
    assert g.health().frames_total == 1


# --- the factory --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("v4l2:0", "v4l2", "0"),
        ("v4l2:", "v4l2", "0"),
        ("v4l2:/dev/v4l/by-id/usb-cam-video-index0", "v4l2", "/dev/v4l/by-id/usb-cam-video-index0"),
        ("rpicam:", "rpicam", ""),
        ("rpicam", "rpicam", ""),
        (
            "rtsp://admin:secret@192.0.2.7:554/stream1",
            "ip",
            "rtsp://admin:secret@192.0.2.7:554/stream1",
        ),
        ("http://192.0.2.7/video.mjpg", "ip", "http://192.0.2.7/video.mjpg"),
        ("file:/srv/demo/gate.avi", "file", "/srv/demo/gate.avi"),
        ("file:///srv/demo/gate.avi", "file", "/srv/demo/gate.avi"),
        ("/srv/demo/gate.MP4", "file", "/srv/demo/gate.MP4"),
        ("folder:/srv/demo/passes", "folder", "/srv/demo/passes"),
        ("sim:", "sim", ""),
    ],
)
def test_source_strings_parse(text, kind, target):
    spec = CameraSpec.parse(text)
    assert (spec.kind, spec.target) == (kind, target)


def test_parse_takes_the_other_fields_as_options():
    spec = CameraSpec.parse("file:/x.avi", loop=True, realtime=False, width=640, height=480)
    assert (spec.loop, spec.realtime, spec.width, spec.height) == (True, False, 640, 480)


@pytest.mark.parametrize(
    "text", ["", "webcam", "/srv/demo/notes.txt", "folder:", "file:", "ftp://cam/x"]
)
def test_unknown_or_incomplete_sources_are_config_errors(text):
    with pytest.raises(ConfigError):
        CameraSpec.parse(text)


def test_bad_fields_are_config_errors():
    with pytest.raises(ConfigError, match="fps"):
        CameraSpec(kind="v4l2", fps=0)
    with pytest.raises(ConfigError, match="kind"):
        CameraSpec(kind="webcam")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="URL"):
        CameraSpec(kind="ip", target="cam.local/stream")
    with pytest.raises(ConfigError, match="options"):
        CameraSpec.parse("sim:", colour=True)


def test_a_password_never_shows_in_messages():
    assert redact_url("rtsp://admin:secret@192.0.2.7:554/s") == "rtsp://admin:***@192.0.2.7:554/s"
    assert redact_url("http://192.0.2.7/video") == "http://192.0.2.7/video"


def test_open_source_opens_the_simulated_camera():
    with open_source(CameraSpec(kind="sim", width=320, height=240, fps=50.0)) as source:
        assert isinstance(source, SimulatedCamera)
        frame = source.read(timeout_s=5.0)
        assert frame is not None and frame.gray.shape == (240, 320)


def test_open_source_on_a_missing_webcam_is_unplugged_not_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "video7"
    with open_source(f"v4l2:{missing}", sleep=lambda s: time.sleep(0.001)) as source:
        assert isinstance(source, UsbCamera)
        wait_for(lambda: source.health().state == "unplugged")
        assert not source.health().ok
        assert source.read(timeout_s=0.01) is None
