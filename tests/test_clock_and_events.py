"""The gate's clocks and its event bus."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate_agent.clock import FakeClock, SystemClock
from gate_agent.events import EventBus, GateEvent

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_the_system_clock_reads_the_boot_id_and_kernel_sync_state() -> None:
    clock = SystemClock()
    assert uuid.UUID(clock.boot_id)
    assert clock.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert clock.now().tzinfo is UTC
    assert isinstance(clock.synced(), bool)
    a, b = clock.monotonic_ns(), clock.monotonic_ns()
    assert b >= a


def test_a_missing_boot_id_falls_back_to_one_per_process(tmp_path: Path) -> None:
    clock = SystemClock(boot_id_path=tmp_path / "absent")
    assert uuid.UUID(clock.boot_id)


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(NOW)
    mono = clock.monotonic_ns()
    clock.advance(2.5)
    assert clock.now() == NOW + timedelta(seconds=2.5)
    assert clock.monotonic_ns() - mono == 2_500_000_000
    clock.set_wall(NOW - timedelta(hours=3), synced=False)
    assert (clock.now(), clock.synced()) == (NOW - timedelta(hours=3), False)
    assert clock.monotonic_ns() - mono == 2_500_000_000


def event(n: int, kind: str = "decision") -> GateEvent:
    return GateEvent(kind, NOW, {"n": n})


def test_subscribers_get_events_and_late_joiners_get_recent_ones() -> None:
    bus = EventBus(history=3)
    early = bus.subscribe()
    for n in range(5):
        bus.publish(event(n, "decision" if n % 2 else "device"))
    assert [e.data["n"] for e in bus.recent()] == [2, 3, 4]
    assert [e.data["n"] for e in bus.recent("decision")] == [3]
    assert [early.get(0).data["n"] for _ in range(5)] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    assert early.get(0.01) is None
    early.close()
    bus.publish(event(9))
    assert early.get(0) is None


def test_a_slow_subscriber_loses_its_oldest_events_and_never_blocks_the_publisher() -> None:
    bus = EventBus()
    slow = bus.subscribe(size=2)
    for n in range(10):
        bus.publish(event(n))
    assert slow.dropped == 8
    assert [slow.get(0).data["n"] for _ in range(2)] == [8, 9]  # type: ignore[union-attr]


def test_publishing_from_several_threads_loses_nothing() -> None:
    bus = EventBus()
    sub = bus.subscribe(size=1000)

    def burst(t: int) -> None:
        for i in range(100):
            bus.publish(event(t * 100 + i))

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted(sub.get(0).data["n"] for _ in range(400))  # type: ignore[union-attr]
    assert got == sorted(t * 100 + i for t in range(4) for i in range(100))
