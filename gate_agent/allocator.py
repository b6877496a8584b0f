"""glibc's allocator, set for a process that runs for weeks handling ~1 MB camera frames.

With its defaults, glibc raises its mmap threshold to the size of every large block
freed (up to 32 MiB), so after the first frame every later frame comes from the heap
instead of its own mapping; and each thread that allocates gets an arena of its own.
Frames of changing sizes, freed out of order by the camera lanes, the decoder and the
console's threads, then leave holes that the heaps keep: the gate's resident memory
crept about 10 MB an hour in the hour-long soak while Python's own heap stayed flat
(docs/proof.md). A fixed 128 KiB threshold keeps every frame in a mapping that goes
back to the kernel when it is freed, and two arenas bound the per-thread heaps.

The same can be had with the environment (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_ARENA_MAX``); an operator who sets either keeps their choice. Elsewhere than
glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger("gate_agent")

#: mallopt(3) parameters, from glibc's <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Blocks from this size up get their own mapping, returned to the kernel on free.
MMAP_THRESHOLD_BYTES = 128 * 1024
#: Heaps shared by all threads (glibc's default is 8 per core).
ARENA_MAX = 2
#: Environment variables through which an operator sets the same by hand.
ENVIRONMENT = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_ARENA_MAX: "MALLOC_ARENA_MAX"}


@dataclass(frozen=True, slots=True)
class Tuning:
    """What `tune` set, by mallopt parameter name; empty when it set nothing."""

    applied: dict[str, int]
    reason: str = ""


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def tune() -> Tuning:
    """Fix glibc's mmap threshold and cap its arenas; call before threads start."""
    libc = _glibc()
    if libc is None:
        return Tuning({}, "not glibc")
    settings = {M_MMAP_THRESHOLD: MMAP_THRESHOLD_BYTES, M_ARENA_MAX: ARENA_MAX}
    applied: dict[str, int] = {}
    for parameter, value in settings.items():
        name = ENVIRONMENT[parameter]
        if name in os.environ:
            continue  # the operator's own setting stands
        if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) == 1:
            applied[name] = value
        else:
            log.warning("mallopt(%d, %d) refused", parameter, value)
    return Tuning(applied, "" if applied else "set by the environment")
