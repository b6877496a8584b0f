"""The gate's clocks: wall time for the ledger, monotonic time for intervals, sync state.

Everything that needs time takes a ``Clock``; tests pass a ``FakeClock`` and move it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)


class Clock(Protocol):
    """Wall time, monotonic time, whether the wall clock is synchronised, and the boot id."""

    boot_id: str

    def now(self) -> datetime:
        """The wall time, timezone-aware UTC."""
        ...

    def monotonic_ns(self) -> int:
        """Nanoseconds on a clock that never goes back (not comparable across boots)."""
        ...

    def synced(self) -> bool:
        """Whether NTP (or another source) keeps the wall clock synchronised."""
        ...


class SystemClock:
    """The machine's clocks; sync state from the kernel (adjtimex), as chrony or timesyncd set it.

    Read through adjtimex(2) because it answers the same whichever NTP client runs.
    """

    def __init__(self, boot_id_path: Path = BOOT_ID_PATH) -> None:
        self.boot_id = _read_boot_id(boot_id_path)
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None

    def now(self) -> datetime:
        """The wall time, UTC."""
        return datetime.now(UTC)

    def monotonic_ns(self) -> int:
        """time.monotonic_ns()."""
        return time.monotonic_ns()

    def synced(self) -> bool:
        """False when the kernel reports TIME_ERROR (unsynchronised) or cannot be asked."""
        if self._libc is None:
            return False
        # struct timex is about 208 bytes; modes=0 (the first field) only reads the state.
        buffer = ctypes.create_string_buffer(512)
        state = int(self._libc.adjtimex(buffer))
        return 0 <= state != _TIME_ERROR


class FakeClock:
    """A clock tests move by hand."""

    def __init__(
        self,
        now: datetime | None = None,
        *,
        synced: bool = True,
        boot_id: str = "00000000-0000-4000-8000-000000000000",
    ) -> None:
        self._now = now or datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
        self._mono = 1_000_000_000_000
        self._synced = synced
        self._lock = threading.Lock()
        self.boot_id = boot_id

    def now(self) -> datetime:
        """The fake wall time."""
        with self._lock:
            return self._now

    def monotonic_ns(self) -> int:
        """The fake monotonic time."""
        with self._lock:
            return self._mono

    def synced(self) -> bool:
        """As set."""
        return self._synced

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += int(seconds * 1e9)

    def set_wall(self, now: datetime, *, synced: bool | None = None) -> None:
        """Jump the wall clock (as NTP or a wrong RTC would); monotonic time is unaffected."""
        with self._lock:
            self._now = now
            if synced is not None:
                self._synced = synced


def _read_boot_id(path: Path) -> str:
    try:
        return str(uuid.UUID(path.read_text(encoding="ascii").strip()))
    except (OSError, ValueError):
        # Not Linux, or /proc not mounted: one id per process still separates restarts.
        fallback = str(uuid.uuid4())
        log.warning("no boot id at %s; using %s for this process", path, fallback)
        return fallback


#: A wall clock that moves this far against monotonic time between two looks has jumped.
CLOCK_JUMP_S = 300
#: For so long after a jump it is reported (then the new time is the normal one).
CLOCK_JUMP_SHOWN_S = 3600


@dataclass(frozen=True)
class ClockJump:
    """The wall clock moved ``moved_s`` seconds against monotonic time (+ forward, - back)."""

    moved_s: int
    seen_monotonic_ns: int

    def words(self) -> str:
        """Which way and how far, as ``/healthz`` says it."""
        way = "forward" if self.moved_s > 0 else "back"
        return f"the wall clock jumped {way} by {abs(self.moved_s) // 60} min"


class ClockWatch:
    """Notices the wall clock jumping against monotonic time, and remembers it for an hour.

    Decisions do not depend on it (the policy's windows run on monotonic time within a
    boot); entries keep the wall time they were made at, which is what a guard or an
    admin reading the logs must know to be off. Each look compares with the last one, so
    NTP's small corrections never add up to a jump. ``/healthz`` and the console's status
    share one watch: whichever looks first after a jump sees it, and both report it.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._offset_ns = self._wall_minus_monotonic()
        self._jump: ClockJump | None = None

    def _wall_minus_monotonic(self) -> int:
        wall_ns = int(self._clock.now().timestamp() * 1e9)
        return wall_ns - self._clock.monotonic_ns()

    def look(self) -> ClockJump | None:
        """The last jump of the past hour, or None."""
        with self._lock:
            offset = self._wall_minus_monotonic()
            moved_s = int((offset - self._offset_ns) / 1_000_000_000)
            now_ns = self._clock.monotonic_ns()
            self._offset_ns = offset
            if abs(moved_s) >= CLOCK_JUMP_S:
                log.warning("the wall clock jumped by %+d s against monotonic time", moved_s)
                self._jump = ClockJump(moved_s, now_ns)
            jump = self._jump
            if jump is not None and now_ns - jump.seen_monotonic_ns > CLOCK_JUMP_SHOWN_S * 10**9:
                self._jump = jump = None
            return jump
