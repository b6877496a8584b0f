"""The Pi's own health from `vcgencmd`: SoC temperature and the throttled flags.

A hot or under-powered Pi (a weak supply, a long thin cable to the gate) drops
frames and corrupts SD cards long before it stops, so the metrics show both.
`vcgencmd` is the firmware's tool and only exists on a Pi: elsewhere the reader
reports nothing. It is asked at most every few seconds (a scrape every second
must not fork a process each time), with a timeout, and an answer it cannot
read is counted, never raised.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

#: `vcgencmd get_throttled` bits (Raspberry Pi documentation, "vcgencmd"): each flag
#: has a "now" bit and an "has occurred since boot" bit 16 places higher.
THROTTLED_FLAGS: dict[str, int] = {
    "under_voltage": 0,
    "frequency_capped": 1,
    "throttled": 2,
    "soft_temperature_limit": 3,
}
_SINCE_BOOT_SHIFT = 16
_TEMP = re.compile(r"^temp=(-?\d+(?:\.\d+)?)'C$")
_THROTTLED = re.compile(r"^throttled=0x([0-9a-fA-F]+)$")


@dataclass(frozen=True)
class BoardReading:
    """One look at the board; a field is None when its answer could not be read."""

    cpu_celsius: float | None
    throttled: int | None  # the raw bit field

    def flag(self, name: str, *, since_boot: bool = False) -> bool | None:
        """Whether a throttled flag is set (now, or at some time since boot)."""
        if self.throttled is None:
            return None
        bit = THROTTLED_FLAGS[name] + (_SINCE_BOOT_SHIFT if since_boot else 0)
        return bool(self.throttled >> bit & 1)


def parse_temperature(text: str) -> float:
    """``temp=48.3'C`` as 48.3; ValueError for anything else."""
    match = _TEMP.match(text.strip())
    if match is None:
        raise ValueError(f"not a vcgencmd temperature: {text.strip()[:60]!r}")
    return float(match.group(1))


def parse_throttled(text: str) -> int:
    """``throttled=0x50005`` as its bit field; ValueError for anything else."""
    match = _THROTTLED.match(text.strip())
    if match is None:
        raise ValueError(f"not a vcgencmd throttled answer: {text.strip()[:60]!r}")
    return int(match.group(1), 16)


@dataclass
class BoardReader:
    """Reads the board through `vcgencmd` when it is on PATH, caching the answer."""

    max_age_s: float = 5.0
    timeout_s: float = 2.0
    monotonic: Callable[[], float] = time.monotonic
    #: Answers that could not be had or read (a timeout, a non-zero exit, odd text).
    errors_total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cached: tuple[float, BoardReading] | None = field(default=None, repr=False)

    @property
    def present(self) -> bool:
        """Whether `vcgencmd` is on PATH (looked up each time: PATH is the test's seam)."""
        return shutil.which("vcgencmd") is not None

    def read(self) -> BoardReading | None:
        """The latest reading, at most ``max_age_s`` old; None where there is no vcgencmd."""
        with self._lock:  # one scrape forks, the others wait for its answer
            now = self.monotonic()
            if self._cached is not None and now - self._cached[0] < self.max_age_s:
                return self._cached[1]
            tool = shutil.which("vcgencmd")
            if tool is None:
                self._cached = None
                return None
            reading = BoardReading(
                cpu_celsius=self._ask(tool, "measure_temp", parse_temperature),
                throttled=self._ask(tool, "get_throttled", parse_throttled),
            )
            self._cached = (now, reading)
            return reading

    def _ask(self, tool: str, command: str, parse: Callable[[str], T]) -> T | None:
        try:
            done = subprocess.run(
                [tool, command],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=True,
            )
            return parse(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.errors_total += 1
            log.warning("vcgencmd %s: %s", command, exc)
            return None
