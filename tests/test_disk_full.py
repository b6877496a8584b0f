"""A full disk: the reserve is freed so the gate keeps recording; the ledger is never damaged.

One test runs on a real 4 MB tmpfs (needs root and mount(8); skipped, saying why, where
mounting is not permitted); the other fails the ledger's write at its port.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate_agent.assemble import Gate, open_gate
from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig
from gate_agent.core.reasons import Direction
from gate_agent.errors import LedgerFull
from gate_agent.events import EventBus
from gate_agent.ledger import EntryDraft, Ledger, StoredEntry
from gate_agent.ledger.verify import verify_ledger_file
from gate_agent.station import ScanResult

GATE = "G1"


def config(data_dir: Path) -> GateConfig:
    """A gate with no camera or thermometer (decisions come in by hand), mock pins."""
    return GateConfig.model_validate(
        {
            "gate": {"id": GATE, "compound_id": "C1", "community_id": "M1",
                     "data_dir": str(data_dir)},
            "thermometer": {"kind": "none"},
            "signals": {"kind": "mock"},
            "retention": {"reserve_mb": 1, "warn_free_mb": 1},
        }
    )  # fmt: skip


def decide(gate: Gate, clock: FakeClock) -> ScanResult:
    """A scan of a text that is no pass: refused, and recorded like every decision."""
    station = gate.station
    now = clock.now()
    evaluation = station.assessor.evaluate("NOT-A-PASS", Direction.IN, temperature=None, now=now)
    return station.record(evaluation, lane="in")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test, unmounted after."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        done = subprocess.run(
            ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount(8) here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["/usr/bin/umount", str(mount_point)], check=False)


def fill(folder: Path) -> None:
    """Write a file until the file system has no room left."""
    fd = os.open(folder / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 512):  # big blocks, then the last few bytes
            chunk = bytes(size)
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def test_a_real_full_disk_frees_the_reserve_and_never_damages_the_ledger(
    small_disk: Path,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    events = EventBus()
    data = small_disk / "gate"
    with open_gate(config(data), clock=clock, events=events, start=False) as gate:
        keeper = gate.housekeeper
        assert keeper is not None
        keeper.tick()
        assert keeper.disk().reserve_held
        fill(small_disk)
        committed: list[int] = []
        result = decide(gate, clock)
        for _ in range(50_000):
            if result.entry is None:
                break
            committed.append(result.entry.seq)
            clock.advance(1)
            result = decide(gate, clock)
        assert result.entry is None, "the disk never filled"
        assert committed, "nothing was recorded once the disk was full"
        # The reserve was given to the ledger: entries went on being recorded past the
        # moment the disk filled, and the guard is warned.
        state = keeper.disk()
        assert not state.reserve_held and state.reserve_used and state.low
        assert gate.station.stats.ledger_errors >= 1
        # The decision that could not be recorded still reached the console, unrecorded,
        # and the gate stayed locked.
        assert result.event.data["recorded"] is False
        assert not gate.signals.state().relay_released
        assert any(e.data.get("device") == "ledger" for e in events.recent("device"))
        path = gate.ledger.path
        assert gate.ledger.count() == len(committed)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    report = verify_ledger_file(path)
    assert report.ok and report.entries_checked == len(committed)
    with Ledger.open(path, gate_id=GATE) as ledger:
        assert [e.seq for e in ledger.entries(limit=10_000)] == committed
        assert committed == list(range(1, len(committed) + 1))


class FullOnce(Ledger):
    """A ledger whose next append fails as on a full disk (a write that kept nothing)."""

    full_next = False

    def append(self, draft: EntryDraft) -> StoredEntry:
        """Fail once when told to, then write."""
        if self.full_next:
            self.full_next = False
            raise LedgerFull("the disk is full (simulated at the port)")
        return super().append(draft)


def test_a_write_that_meets_a_full_disk_is_made_again_once_the_reserve_is_freed(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    with open_gate(config(tmp_path / "gate"), clock=clock, start=False) as gate:
        keeper = gate.housekeeper
        assert keeper is not None
        keeper.tick()
        path = gate.ledger.path
        with FullOnce.open(path, gate_id=GATE) as full:
            gate.station.ledger = full
            full.full_next = True
            first = decide(gate, clock)
            assert first.entry is not None and first.entry.seq == 1  # written on the retry
            assert keeper.disk().reserve_used
            assert gate.station.stats.ledger_errors == 0
            # No reserve left: the next full disk keeps the gate locked, the guard told.
            full.full_next = True
            second = decide(gate, clock)
            assert second.entry is None and second.event.data["recorded"] is False
            assert gate.station.stats.ledger_errors == 1
            assert full.count() == 1
        keeper.tick()  # space is back (this disk is large): the reserve is made again
        assert keeper.disk().reserve_held and not keeper.disk().low
