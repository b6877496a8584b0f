"""Housekeeping on the gate: the retention purge, the free-space watch and the reserve file.

A thread of the agent (started by ``open_gate``) looks every minute and at start:

- **Purge**, at start and then hourly: the personal data (names, phones, where a
  returnee came from) of entries older than ``[retention] days`` is blanked, but only of
  entries the centre has acknowledged, so nothing leaves the gate unrecorded centrally.
  With sync off, age alone decides. The compound's alerts and passages older than the
  period (passages: older than the longest exit-quota window as well) are dropped.
- **Free space** of the data folder: below ``[retention] warn_free_mb`` the console warns
  the guard. The same reading is taken whenever the console asks for the status.
- **Reserve**: ``data_dir/reserve.bin`` (``reserve_mb``) is held while space allows.
  When a ledger write fails because the disk is full, the station frees it and writes
  once more, so the gate keeps recording while the guard is warned; the file is made
  again when the space has come back.

Counts are logged, never the data.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from gate_agent.clock import Clock
from gate_agent.config import GateConfig
from gate_agent.errors import LedgerError
from gate_agent.ledger import Ledger

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: The longest window any rule reads passages for: an exit quota of N exits per 99 days.
LONGEST_PASSAGE_WINDOW = timedelta(days=99)
PURGE_EVERY_S = 3600.0
CHECK_EVERY_S = 60.0
RESERVE_NAME = "reserve.bin"
_NS = 1_000_000_000
_CHUNK = MB


class Usage(NamedTuple):
    """What ``shutil.disk_usage`` answers (bytes)."""

    total: int
    used: int
    free: int


DiskUsage = Callable[[Path], Usage]


def disk_usage(path: Path) -> Usage:
    """``shutil.disk_usage`` of the nearest existing folder at or above ``path``."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    total, used, free = shutil.disk_usage(folder)
    return Usage(total, used, free)


@dataclass(frozen=True)
class PurgeCounts:
    """What one purge did (or, dry, would do): entries blanked, compound rows dropped."""

    entries: int
    alerts: int
    passages: int
    before: datetime
    through_seq: int | None  # None: sync is off, age alone decided
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {**asdict(self), "before": self.before.isoformat()}


@dataclass(frozen=True)
class DiskState:
    """Free space of the data folder against the warning level, and the reserve."""

    free_bytes: int
    warn_free_bytes: int
    reserve_held: bool
    reserve_bytes: int
    reserve_used: bool  # freed for the ledger on a full disk, not made again yet

    @property
    def low(self) -> bool:
        """Below the warning level, or the reserve was used up."""
        return self.free_bytes < self.warn_free_bytes or self.reserve_used

    def as_dict(self) -> dict[str, Any]:
        """The console's ``disk`` status."""
        return {
            "free_mb": self.free_bytes // MB,
            "warn_free_mb": self.warn_free_bytes // MB,
            "low": self.low,
            "reserve_mb": self.reserve_bytes // MB,
            "reserve_held": self.reserve_held,
            "reserve_used": self.reserve_used,
        }


def purge(
    ledger: Ledger, *, now: datetime, days: int, sync_enabled: bool, dry_run: bool = False
) -> PurgeCounts:
    """Purge what is older than ``days`` (acknowledged entries only when sync is on)."""
    before = now - timedelta(days=days)
    through = ledger.sync.acked_through() if sync_enabled else None
    entries = ledger.purge_personal(before, through_seq=through, dry_run=dry_run)
    compound = ledger.state.prune_compound(
        alerts_before=before,
        passages_before=min(before, now - LONGEST_PASSAGE_WINDOW),
        dry_run=dry_run,
    )
    counts = PurgeCounts(
        entries, compound["alerts"], compound["passages"], before, through, dry_run
    )
    log.info(
        "retention purge%s: %d entries' personal data, %d alerts, %d passages (older than %s%s)",
        " (dry run)" if dry_run else "",
        entries,
        counts.alerts,
        counts.passages,
        before.isoformat(timespec="seconds"),
        "" if through is None else f", acknowledged through {through}",
    )
    return counts


class Reserve:
    """A file of real blocks held back so that entries can still be written on a full disk."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        """Bind to the file; nothing is made until ``ensure``."""
        self.path = path
        self.size_bytes = size_bytes

    def held(self) -> bool:
        """Whether the whole reserve is on disk."""
        try:
            return self.size_bytes > 0 and self.path.stat().st_size >= self.size_bytes
        except OSError:
            return False

    def ensure(self, free_bytes: int, keep_free_bytes: int) -> bool:
        """Make the reserve when it is missing and ``keep_free_bytes`` stay free after it."""
        if self.size_bytes <= 0 or self.held():
            return False
        if free_bytes - self.size_bytes < keep_free_bytes:
            return False
        partial = self.path.with_name(self.path.name + ".part")
        try:
            _allocate(partial, self.size_bytes)
            partial.replace(self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            log.warning("could not make the reserve %s: %s", self.path, exc)
            return False
        log.info("reserve %s held (%d MB)", self.path, self.size_bytes // MB)
        return True

    def release(self) -> bool:
        """Delete the reserve to give its space to the ledger; whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("could not delete the reserve %s: %s", self.path, exc)
            return False
        log.warning("disk full: reserve %s freed for the ledger", self.path)
        return True


def _allocate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            zeros = bytes(_CHUNK)  # a file system without fallocate: real zeros
            for offset in range(0, size, _CHUNK):
                os.write(fd, zeros[: min(_CHUNK, size - offset)])
        os.fsync(fd)
    finally:
        os.close(fd)


class Housekeeper:
    """Runs the purge and the free-space watch for a gate; see the module docstring."""

    def __init__(
        self,
        ledger: Ledger,
        config: GateConfig,
        clock: Clock,
        *,
        usage: DiskUsage = disk_usage,
    ) -> None:
        """Bind to the gate's ledger; ``usage`` reads free space (tests pass a fake)."""
        self.ledger = ledger
        self.config = config
        self.clock = clock
        self.usage = usage
        section = config.retention
        self.reserve = Reserve(config.gate.data_dir / RESERVE_NAME, section.reserve_mb * MB)
        self._warn_bytes = section.warn_free_mb * MB
        self._last_purge_ns: int | None = None
        self._was_low = False
        self._reserve_used = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def disk(self) -> DiskState:
        """The free space now, and whether the reserve is held."""
        free = self.usage(self.config.gate.data_dir).free
        held = self.reserve.held()
        if held:
            self._reserve_used = False
        state = DiskState(free, self._warn_bytes, held, self.reserve.size_bytes, self._reserve_used)
        if state.low != self._was_low:
            self._was_low = state.low
            if state.low:
                log.warning(
                    "disk nearly full: %d MB free at %s (warning below %d MB, reserve %s)",
                    free // MB,
                    self.config.gate.data_dir,
                    self._warn_bytes // MB,
                    "held" if state.reserve_held else "not held",
                )
            else:
                log.info("disk space back: %d MB free", free // MB)
        return state

    def purge(self, *, dry_run: bool = False) -> PurgeCounts:
        """One retention purge now."""
        with self._lock:
            return purge(
                self.ledger,
                now=self.clock.now(),
                days=self.config.retention.days,
                sync_enabled=self.config.sync.enabled,
                dry_run=dry_run,
            )

    def free_reserve(self) -> bool:
        """The disk is full: give the reserve's space to the ledger; whether any was freed."""
        freed = self.reserve.release()
        if freed:
            self._reserve_used = True
        return freed

    def tick(self) -> None:
        """One look: free space, the reserve made again if space allows, the purge if due."""
        try:
            state = self.disk()
            if not state.reserve_held:
                self.reserve.ensure(state.free_bytes, self._warn_bytes)
        except OSError as exc:
            log.error("free space of %s unknown: %s", self.config.gate.data_dir, exc)
        now_ns = self.clock.monotonic_ns()
        last = self._last_purge_ns
        if last is None or now_ns - last >= PURGE_EVERY_S * _NS:
            self._last_purge_ns = now_ns
            try:
                self.purge()
            except LedgerError as exc:
                log.error("retention purge failed, tried again in an hour: %s", exc)

    # -- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Look now, then every minute, on a thread of its own."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a purge under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("housekeeping failed; next look in a minute")
            self._stop.wait(CHECK_EVERY_S)
