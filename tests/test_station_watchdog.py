"""The watchdog is fed only while the scan loop turns; `gate-agent run` under a fake systemd."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig
from gate_agent.core.reasons import Direction
from gate_agent.events import EventBus
from gate_agent.hardware.decoder import DecodedCode
from gate_agent.hardware.images import Gray
from gate_agent.hardware.signals import mock_signals
from gate_agent.hardware.simulated import SimulatedCamera
from gate_agent.ledger import EntryDraft, Ledger, StoredEntry
from gate_agent.service import Notifier, Watchdog
from gate_agent.station import Lane, ScanRequest, Station, StationSettings
from tests.limits import PATIENCE_S
from tests.systemd_fakes import NotifyListener, short_dir
from tests.test_doctor_and_run import write_config
from tests.test_gate_syncs import free_port
from tests.test_station import config as station_config


class GatedLedger(Ledger):
    """A ledger whose writes wait while its gate is shut: a disk that hangs."""

    gate: threading.Event
    entered: threading.Event

    def append(self, draft: EntryDraft) -> StoredEntry:
        self.entered.set()
        assert self.gate.wait(timeout=60), "the test never opened the ledger's gate"
        return super().append(draft)


class GatedDecoder:
    """A decoder that hangs inside decode() while its gate is shut (a stuck native call)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.die = False

    def decode(self, gray: Gray) -> list[DecodedCode]:
        if self.die:
            raise SystemExit  # ends the lane's thread, quietly
        if not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(timeout=60), "the test never opened the decoder's gate"
        return []


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    with short_dir() as folder:
        sock = NotifyListener(folder / "notify")
        yield sock
        sock.close()


@contextmanager
def station(config: GateConfig, clock: FakeClock, decoder: GatedDecoder) -> Iterator[Station]:
    ledger = GatedLedger.open(config.ledger_path, gate_id=config.gate.id)
    assert isinstance(ledger, GatedLedger)
    ledger.gate, ledger.entered = threading.Event(), threading.Event()
    ledger.gate.set()
    shown = SimulatedCamera(frame_size=(160, 120), fps=20)
    unplugged = SimulatedCamera(frame_size=(160, 120), fps=20)
    unplugged.unplug()  # its lane still turns: a fault the guard sees, not a hang
    signals = mock_signals()
    s = Station(
        config,
        ledger,
        lanes=[Lane("in", Direction.IN, shown), Lane("out", Direction.OUT, unplugged)],
        decoder=decoder,
        signals=signals,
        sampler=None,
        clock=clock,
        events=EventBus(),
        settings=StationSettings(),
    )
    s.start()
    try:
        yield s
    finally:
        ledger.gate.set()
        decoder.gate.set()
        s.stop()
        for closing in (shown, unplugged, signals, ledger):
            closing.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Station, FakeClock, GatedDecoder]]:
    clock, decoder = FakeClock(), GatedDecoder()
    with station(station_config(tmp_path, thermometer="none"), clock, decoder) as s:
        yield s, clock, decoder


def pings_stop(watchdog: Watchdog, listener: NotifyListener) -> None:
    """Wait until the watchdog sees the problem, then through three turns: no ping."""
    assert watchdog.wait_until(lambda: watchdog.problem is not None, timeout_s=20)
    listener.drain()
    assert watchdog.wait_turns(watchdog.turns + 3, timeout_s=20)
    assert b"WATCHDOG=1" not in listener.drain()


def test_a_blocked_worker_stops_the_pings_and_its_release_resumes_them(
    parts: tuple[Station, FakeClock, GatedDecoder], listener: NotifyListener
) -> None:
    s, clock, _ = parts
    ledger = s.ledger
    assert isinstance(ledger, GatedLedger)
    notifier = Notifier(str(listener.path), watchdog_s=0.1)
    with Watchdog(notifier, lambda: "; ".join(s.stalled(30)) or None) as watchdog:
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        ledger.gate.clear()
        s.submit(ScanRequest("not a pass", Direction.IN, "in", clock.monotonic_ns()))
        assert ledger.entered.wait(20)
        clock.advance(31)  # the lanes turn on, the worker does not
        pings_stop(watchdog, listener)
        assert watchdog.problem == "worker stuck for 31 s"
        ledger.gate.set()
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
    assert ledger.count() == 1  # the refusal was recorded once the disk came back


def test_a_lane_stuck_in_the_decoder_stops_the_pings(
    parts: tuple[Station, FakeClock, GatedDecoder], listener: NotifyListener
) -> None:
    s, clock, decoder = parts
    notifier = Notifier(str(listener.path), watchdog_s=0.1)
    with Watchdog(notifier, lambda: "; ".join(s.stalled(30)) or None) as watchdog:
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        decoder.gate.clear()
        assert decoder.entered.wait(20)
        clock.advance(45)
        pings_stop(watchdog, listener)
        assert watchdog.problem == "lane-in stuck for 45 s"
        decoder.gate.set()
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_stopped_or_dead_loop_is_a_problem(
    parts: tuple[Station, FakeClock, GatedDecoder],
) -> None:
    s, _, decoder = parts
    assert s.stalled(30) == []
    decoder.die = True
    deadline = time.monotonic() + PATIENCE_S
    while s.stalled(30) != ["lane-in thread ended"]:
        assert time.monotonic() < deadline, s.stalled(30)
        time.sleep(0.05)
    s.stop()
    assert s.stalled(30) == ["the scan loop is not running"]


def test_gate_agent_run_tells_systemd_ready_status_watchdog_and_stopping(
    tmp_path: Path, listener: NotifyListener
) -> None:
    path = write_config(tmp_path)
    with path.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[console]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    script = shutil.which("gate-agent", path=str(Path(sys.executable).parent))
    assert script
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen(
        [script, "--config", str(path), "run"], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        seen = listener.wait_for(lambda m: m[0] == "READY=1")
        status = seen[-1][1]
        assert status.startswith("STATUS=gate G1: 1 lane, ledger seq 0, console http://")
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        process.send_signal(signal.SIGTERM)
        listener.wait_for(lambda m: m[0] == "STOPPING=1")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert "WARNING" not in errors and "ERROR" not in errors, errors
