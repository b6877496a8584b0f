"""glibc's allocator, set by the long-running commands (gate_agent/allocator.py).

Each check runs in a fresh interpreter: mallopt changes the whole process, and the
point is what glibc does with a frame-sized block after one like it was freed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gate_agent import allocator, cli, commands

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="glibc only")

#: Frees one frame-sized block, then reports how much of the next one is its own mapping.
PROBE = """
import ctypes, sys
from gate_agent import allocator
if sys.argv[1] == "tuned":
    print(sorted(allocator.tune().applied), file=sys.stderr)
libc = ctypes.CDLL(None)
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
frame = 1280 * 720  # one grey 720p frame
libc.free(libc.malloc(frame))  # glibc's default raises its threshold past this size
before = libc.mallinfo2().hblkhd
block = libc.malloc(frame)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def _mapped_bytes(mode: str, **environ: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | environ
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout), done.stderr.strip()


def test_a_frame_after_a_freed_frame_gets_its_own_mapping_once_tuned() -> None:
    untuned, _ = _mapped_bytes("default")
    tuned, applied = _mapped_bytes("tuned")
    # glibc's default: the second frame comes from the heap, where it can strand memory
    assert untuned == 0
    # tuned: a mapping of its own, handed back to the kernel when the frame is freed
    assert tuned >= 1280 * 720
    assert applied == "['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_']"


def test_an_operators_own_setting_stands() -> None:
    mapped, applied = _mapped_bytes("tuned", MALLOC_MMAP_THRESHOLD_="4194304")
    assert applied == "['MALLOC_ARENA_MAX']"
    assert mapped == 0  # 4 MiB threshold: the frame stays on the heap, as asked


@pytest.mark.parametrize(("command", "tuned"), [("run", True), ("demo", True), ("decode", False)])
def test_the_long_running_commands_tune_it_first(
    monkeypatch: pytest.MonkeyPatch, command: str, tuned: bool
) -> None:
    calls: list[str] = []

    def tune() -> allocator.Tuning:
        calls.append(command)
        return allocator.Tuning({}, "test")

    monkeypatch.setattr(allocator, "tune", tune)
    monkeypatch.setattr(commands, "run", lambda config, notifier=None: 0)
    monkeypatch.setattr(commands, "demo", lambda *a, **k: 0)
    argv = {
        "run": ["--config", "/nonexistent/gate.toml", "run"],
        "demo": ["--config", "/nonexistent/gate.toml", "demo", "--scenario", "s", "--passes", "p"],
        "decode": ["decode", "/nonexistent.png"],
    }[command]
    cli.main(argv)
    assert calls == ([command] if tuned else [])
