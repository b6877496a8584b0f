"""The gate's health and Prometheus metrics, served by the console (``/healthz``, ``/metrics``).

Everything but the two latency histograms is read at scrape time from the
station, the ledger, the uploader and the board (a custom collector), so no code
path has to remember to update a gauge. Labels carry lanes, list names, outcomes
and reason codes only: never a pass id or anything personal.

``/healthz`` answers ``failing`` (HTTP 503) when the gate cannot do its job: the
scan loop is not running or the ledger has failed since its last good write. It
answers ``degraded`` (still 200) for what a guard can work around: a camera or
the thermometer at fault, stale lists, an unsynchronised clock, a disk running
low, an under-powered board.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gate_agent.assemble import Gate
from gate_agent.clock import Clock, ClockWatch
from gate_agent.core.reasons import GateMode
from gate_agent.errors import LedgerError
from gate_agent.hardware.board import THROTTLED_FLAGS, BoardReader, BoardReading
from gate_agent.housekeeping import disk_usage
from gate_agent.ledger.db import sqlite_memory_bytes
from gate_agent.station import ScanResult

log = logging.getLogger(__name__)

#: As `gate-agent doctor` warns: below this the ledger and its WAL may soon lack room.
#: The lists a decision depends on; the same ones the console calls stale.
DECIDING_LISTS = ("revocations", "isolations", "keys")
DECODE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
DECISION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

Level = Literal["ok", "degraded", "failing"]
_RANK: dict[Level, int] = {"ok": 0, "degraded": 1, "failing": 2}


@dataclass(frozen=True)
class Check:
    """One part of the gate's health, with a stable code."""

    status: Level
    code: str
    detail: str = ""


class GateMetrics:
    """The gate's registry (one per console app, never the global one) and its health."""

    def __init__(
        self,
        gate: Gate,
        clock: Clock,
        board: BoardReader | None = None,
        clock_watch: ClockWatch | None = None,
    ) -> None:
        self.gate = gate
        self.clock = clock
        self.board = board if board is not None else BoardReader()
        self.clock_watch = clock_watch if clock_watch is not None else ClockWatch(clock)
        self.registry = CollectorRegistry()
        self.decode_seconds = Histogram(
            "gate_decode_seconds",
            "Seconds to decode one camera frame (with the rescue stage where a code was seen)",
            buckets=DECODE_BUCKETS,
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "gate_decision_latency_seconds",
            "Frame grabbed to decision made (before its entry is written), forehead wait excluded",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(GateCollector(self))
        gate.station.on_decoded = self.decode_seconds.observe
        gate.station.on_scanned = self._scanned

    def _scanned(self, result: ScanResult) -> None:
        self.decision_seconds.observe(result.latency_ms / 1000)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

    def health(self) -> tuple[Level, dict[str, Check]]:
        """The overall level and every check behind it."""
        checks = dict(self._checks())
        worst: Level = "ok"
        for check in checks.values():
            if _RANK[check.status] > _RANK[worst]:
                worst = check.status
        return worst, checks

    def health_json(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``'s status code and body."""
        level, checks = self.health()
        body = {
            "status": level,
            "checks": {
                name: {"status": c.status, "code": c.code, "detail": c.detail}
                for name, c in checks.items()
            },
        }
        return (503 if level == "failing" else 200), body

    def _checks(self) -> Iterator[tuple[str, Check]]:
        gate, station = self.gate, self.gate.station
        if station.running:
            yield "scan_loop", Check("ok", "running")
        else:
            yield "scan_loop", Check("failing", "loop_stopped", "the scan loop is not running")
        stale: list[str] | None = None
        if station.stats.ledger_failing:
            detail = "entries cannot be written: the gate stays locked"
            yield "ledger", Check("failing", "ledger_failing", detail)
        else:
            try:
                stale = self._stale_lists()
            except (LedgerError, OSError) as exc:
                yield "ledger", Check("failing", "ledger_unreadable", str(exc))
            else:
                yield "ledger", Check("ok", "writable")
        for lane in station.lanes:
            health = lane.source.health()
            if health.ok:
                yield f"camera:{lane.name}", Check("ok", health.state)
            else:
                detail = f"{health.state}: {health.detail}".rstrip(": ")
                yield f"camera:{lane.name}", Check("degraded", "camera_fault", detail)
        if gate.sampler is None:
            yield "thermometer", Check("ok", "none", "no thermometer: guards measure by hand")
        else:
            state = gate.sampler.state()
            if state.ok:
                yield "thermometer", Check("ok", state.state)
            else:
                detail = f"{state.state}: {state.detail}"
                yield "thermometer", Check("degraded", "sensor_fault", detail)
        if stale is not None:
            if stale:
                detail = "old or missing: " + ", ".join(stale)
                yield "lists", Check("degraded", "lists_stale", detail)
            else:
                yield "lists", Check("ok", "current")
        jumped = self.clock_watch.look()
        if jumped is not None:
            detail = f"{jumped.words()}: entry times around it are off"
            yield "clock", Check("degraded", "clock_jumped", detail)
        elif self.clock.synced():
            yield "clock", Check("ok", "synced")
        else:
            detail = "the clock is not synchronised: entries are flagged"
            yield "clock", Check("degraded", "clock_unsynced", detail)
        yield "disk", _disk_check(gate)
        reading = self.board.read()
        if reading is not None:
            yield "board", _board_check(reading)

    def _stale_lists(self) -> list[str]:
        limit = timedelta(hours=self.gate.config.gate.lists_max_age_hours)
        ages = self.gate.ledger.state.list_ages(self.clock.now())
        return [n for n in DECIDING_LISTS if ages.get(n) is None or ages[n] > limit]  # type: ignore[operator]


def _board_check(reading: BoardReading) -> Check:
    if reading.flag("under_voltage"):
        return Check("degraded", "under_voltage", "the power supply is too weak now")
    if reading.flag("throttled") or reading.flag("frequency_capped"):
        return Check("degraded", "throttled", "the CPU is slowed (heat or power)")
    return Check("ok", "powered")


def _disk_check(gate: Gate) -> Check:
    """The console's disk warning, as a check: below ``[retention] warn_free_mb``, or
    the reserve was freed for the ledger on a full disk."""
    if gate.housekeeper is not None:
        disk = gate.housekeeper.disk()
        free, warn, reserve_used = disk.free_bytes, disk.warn_free_bytes, disk.reserve_used
    else:
        free = disk_usage(gate.config.gate.data_dir).free
        warn, reserve_used = gate.config.retention.warn_free_mb * 2**20, False
    detail = f"{free // 2**20} MB free"
    if reserve_used:
        return Check("degraded", "disk_full_reserve_used", f"{detail}; the reserve is in use")
    if free < warn:
        return Check("degraded", "disk_low", f"{detail}, below {warn // 2**20} MB")
    return Check("ok", "room", detail)


def ledger_bytes(path: Path) -> int:
    """The ledger's size on disk: the database file and its write-ahead log."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


class GateCollector(Collector):
    """Reads the gate at scrape time; a part that cannot be read is left out and counted."""

    def __init__(self, metrics: GateMetrics) -> None:
        self._metrics = metrics
        self._read_errors = 0

    def collect(self) -> Iterator[Metric]:
        """Every metric read now."""
        gate = self._metrics.gate
        yield from self._station(gate)
        for part in (self._ledger, self._sync, self._lists, self._mode):
            try:
                yield from part(gate)
            except (LedgerError, OSError) as exc:
                self._read_errors += 1
                log.warning("metrics: %s", exc)
        yield from self._host(gate)
        yield _counter(
            "gate_metrics_read_errors", "Scrapes that could not read a part", self._read_errors
        )

    def _station(self, gate: Gate) -> Iterator[Metric]:
        stats = gate.station.stats
        yield _counter("gate_scans", "Pass texts the scan loop took up", stats.scans)
        decisions = CounterMetricFamily(
            "gate_decisions", "Decisions committed or refused, by outcome and reason code",
            labels=["outcome", "reason"],
        )  # fmt: skip
        for (outcome, reason), count in sorted(dict(stats.decisions).items()):
            decisions.add_metric([outcome, reason], count)
        yield decisions
        yield _counter("gate_bad_frames", "Frames the decoder could not take", stats.bad_frames)
        yield _counter("gate_ledger_errors", "Failed ledger reads or writes", stats.ledger_errors)
        yield _gauge(
            "gate_ledger_failing", "1 while the ledger cannot be written", stats.ledger_failing
        )
        yield _gauge("gate_scan_loop_running", "1 while the scan loop runs", gate.station.running)
        dropped = CounterMetricFamily(
            "gate_camera_frames_dropped", "Frames grabbed but replaced before read", labels=["lane"]
        )
        frames = CounterMetricFamily("gate_camera_frames", "Frames grabbed", labels=["lane"])
        up = GaugeMetricFamily("gate_camera_up", "1 while the camera streams", labels=["lane"])
        for lane in gate.station.lanes:
            health = lane.source.health()
            dropped.add_metric([lane.name], health.frames_dropped)
            frames.add_metric([lane.name], health.frames_total)
            up.add_metric([lane.name], float(health.ok))
        yield from (dropped, frames, up)
        if gate.sampler is not None:
            state = gate.sampler.state()
            yield _counter(
                "gate_sensor_errors", "Thermometer reads that failed", state.errors_total
            )
            yield _gauge("gate_sensor_up", "1 while the thermometer samples", state.ok)

    def _ledger(self, gate: Gate) -> Iterator[Metric]:
        yield _gauge("gate_ledger_entries", "Entries in the ledger", gate.ledger.count())
        size = ledger_bytes(gate.ledger.path)
        yield _gauge("gate_ledger_bytes", "Ledger file and write-ahead log, bytes", size)
        held = sqlite_memory_bytes()
        if held is not None:
            yield _gauge(
                "gate_sqlite_memory_bytes",
                "Bytes SQLite holds in the agent (page caches, schemas, statements)",
                held,
            )

    def _sync(self, gate: Gate) -> Iterator[Metric]:
        if gate.uploader is not None:
            status = gate.uploader.status()
            backlog, last = status.backlog, status.last_success_at
        else:
            state = gate.ledger.sync.status()
            backlog, last = state.backlog, state.last_success_at
        yield _gauge(
            "gate_sync_backlog_entries", "Entries not yet acknowledged by the centre", backlog
        )
        if last is not None:
            yield _gauge(
                "gate_sync_last_success_timestamp_seconds",
                "When the centre last acknowledged an upload (Unix time)",
                last.timestamp(),
            )
        yield _gauge("gate_sync_configured", "1 when the gate uploads", gate.uploader is not None)

    def _lists(self, gate: Gate) -> Iterator[Metric]:
        state = gate.ledger.state
        age = GaugeMetricFamily(
            "gate_list_age_seconds", "Since the list was known current", labels=["list"]
        )
        for name, value in sorted(state.list_ages(self._metrics.clock.now()).items()):
            if value is not None:  # a list never loaded has no age: its version is 0
                age.add_metric([name], value.total_seconds())
        version = GaugeMetricFamily("gate_list_version", "The list's version", labels=["list"])
        for name, number in sorted(state.list_versions().items()):
            version.add_metric([name], number)
        yield from (age, version)

    def _mode(self, gate: Gate) -> Iterator[Metric]:
        current = gate.station.assessor.mode()  # the centre's or an admin's, in the ledger
        mode = GaugeMetricFamily("gate_mode", "1 for the mode the gate is in", labels=["mode"])
        for each in GateMode:
            mode.add_metric([each.value], float(each is current))
        yield mode

    def _host(self, gate: Gate) -> Iterator[Metric]:
        clock = self._metrics.clock
        yield _gauge(
            "gate_clock_synced", "1 when NTP keeps the wall clock synchronised", clock.synced()
        )
        free = disk_usage(gate.config.gate.data_dir).free
        yield _gauge("gate_disk_free_bytes", "Free bytes where the ledger lives", free)
        board = self._metrics.board
        reading = board.read()
        if reading is not None:
            if reading.cpu_celsius is not None:
                yield _gauge("gate_cpu_temperature_celsius", "SoC temperature", reading.cpu_celsius)
            if reading.throttled is not None:
                flags = GaugeMetricFamily(
                    "gate_throttled",
                    "vcgencmd get_throttled flags: now, or at some time since boot",
                    labels=["flag", "when"],
                )
                for flag in THROTTLED_FLAGS:
                    flags.add_metric([flag, "now"], float(bool(reading.flag(flag))))
                    since = bool(reading.flag(flag, since_boot=True))
                    flags.add_metric([flag, "since_boot"], float(since))
                yield flags
        if board.errors_total or reading is not None:
            yield _counter(
                "gate_board_read_errors", "vcgencmd answers not had or not read", board.errors_total
            )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))
