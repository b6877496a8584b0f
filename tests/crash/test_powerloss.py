"""Power loss beneath SQLite: what was acknowledged is what a disk holds after the cut.

The writer (``powerloss_writer``) runs the real ledger under the ``bench/powerloss.c``
LD_PRELOAD shim, which copies a file to a shadow folder only when SQLite syncs
it (and makes unlinks durable only when the folder is synced). After a SIGKILL
at a seeded random moment the shadow folder is what the disk would hold had the
power gone then, every unsynced write lost. The ledger is reopened from that
copy with the real ``Ledger.open`` and must hold every acknowledged entry, pass
``PRAGMA integrity_check`` and verify its chain. The same run with
synchronous=OFF loses acknowledged entries: the shim is what catches it.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gate_agent.ledger import Ledger

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAME = "ledger.sqlite3"


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, built from source for this run (skipped without a C compiler)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc: the power-loss shim cannot be built")
    out = tmp_path_factory.mktemp("shim") / "powerloss.so"
    source = ROOT / "bench" / "powerloss.c"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out), str(source), "-ldl"],
        check=True,
    )
    return out


def _acks(proc: subprocess.Popen[bytes], until: int) -> dict[int, str]:
    """Read acknowledgements until `until` arrived, SIGKILL, then the rest already sent."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    acks: dict[int, str] = {}
    buffer = b""
    killed = False
    while True:
        if not killed and len(acks) >= until:
            proc.send_signal(signal.SIGKILL)
            killed = True
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, "the writer stopped acknowledging"
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            _, seq, hash_ = line.decode().split()
            acks[int(seq)] = hash_
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acks


def _cut_power(
    shim: Path, disk: Path, shadow: Path, until: int, *writer_args: str
) -> dict[int, str]:
    """Write on `disk` until `until` acks, kill: `shadow` then holds what survived."""
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "CRASHSIM_ROOT": str(disk.resolve()),
        "CRASHSIM_SHADOW": str(shadow.resolve()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.powerloss_writer", str(disk / NAME), *writer_args],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    return _acks(proc, until)


def _reboot(shadow: Path, disk: Path) -> None:
    """The disk after the cut: exactly what the shadow holds."""
    shutil.rmtree(disk)
    shutil.copytree(shadow, disk)


def _lost(disk: Path, acks: dict[int, str]) -> list[int]:
    """Acknowledged entries missing or changed; asserts integrity and the chain meanwhile."""
    conn = sqlite3.connect(disk / NAME)  # read-write: it recovers the WAL, as a gate would
    try:
        assert [row[0] for row in conn.execute("PRAGMA integrity_check")] == ["ok"]
    finally:
        conn.close()
    with Ledger.open(disk / NAME, gate_id="LGQ-012-N") as ledger:
        report = ledger.verify()
        assert report.ok, report
        assert [e.seq for e in ledger.entries(limit=10_000)] == list(range(1, ledger.count() + 1))
        lost = []
        for seq, hash_ in sorted(acks.items()):
            entry = ledger.get(seq)
            if entry is None or entry.hash != hash_:
                lost.append(seq)
        return lost


def _fresh(tmp_path: Path) -> tuple[Path, Path]:
    disk, shadow = tmp_path / "disk", tmp_path / "shadow"
    Ledger.open(disk / NAME, gate_id="LGQ-012-N").close()  # made and closed cleanly: synced
    shutil.copytree(disk, shadow)
    return disk, shadow


@pytest.mark.parametrize("autocheckpoint", [None, "8"])
def test_with_synchronous_full_every_acknowledged_entry_survives_power_loss(
    shim: Path, tmp_path: Path, autocheckpoint: str | None
) -> None:
    # None: the ledger's own settings (WAL, FULL, checkpoints every 1000 pages);
    # "8": checkpoints every few entries, so cuts also land inside checkpoints.
    extra = () if autocheckpoint is None else ("--autocheckpoint", autocheckpoint)
    rng = random.Random(f"powerloss-{autocheckpoint}")  # noqa: S311 - cut moments
    disk, shadow = _fresh(tmp_path)
    acknowledged: dict[int, str] = {}
    for _ in range(2):  # cut, reboot from what the disk held, write on, cut again
        acks = _cut_power(shim, disk, shadow, rng.randint(5, 60), *extra)
        assert acks, "nothing was acknowledged"
        acknowledged.update(acks)
        _reboot(shadow, disk)
        assert _lost(disk, acknowledged) == []
        # The checks closed the ledger cleanly (a checkpoint, synced): that is on disk now.
        shutil.rmtree(shadow)
        shutil.copytree(disk, shadow)


def test_with_synchronous_off_acknowledged_entries_vanish(shim: Path, tmp_path: Path) -> None:
    disk, shadow = _fresh(tmp_path)
    acks = _cut_power(shim, disk, shadow, 30, "--synchronous", "OFF")
    _reboot(shadow, disk)
    # Without syncs nothing reached the disk: the shim drops every acknowledged entry.
    assert _lost(disk, acks) == sorted(acks)


def test_the_shim_keeps_only_synced_writes(shim: Path, tmp_path: Path) -> None:
    disk, shadow = tmp_path / "disk", tmp_path / "shadow"
    disk.mkdir()
    shadow.mkdir()
    script = (
        "import os, sys\n"
        "d = sys.argv[1]\n"
        "f = os.open(d + '/a', os.O_WRONLY | os.O_CREAT)\n"
        "os.write(f, b'synced'); os.fsync(f)\n"
        "os.write(f, b' unsynced')\n"
        "g = os.open(d + '/b', os.O_WRONLY | os.O_CREAT); os.write(g, b'never synced')\n"
        "h = os.open(d + '/c', os.O_WRONLY | os.O_CREAT); os.write(h, b'x'); os.fsync(h)\n"
        "os.unlink(d + '/c')\n"
    )
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "CRASHSIM_ROOT": str(disk.resolve()),
        "CRASHSIM_SHADOW": str(shadow.resolve()),
    }
    subprocess.run([sys.executable, "-c", script, str(disk)], env=env, check=True)
    assert (shadow / "a").read_bytes() == b"synced"
    assert not (shadow / "b").exists()
    assert (shadow / "c").read_bytes() == b"x"  # the unlink was never made durable
    dir_sync = "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)\n"
    subprocess.run([sys.executable, "-c", dir_sync, str(disk)], env=env, check=True)
    assert not (shadow / "c").exists()
    assert (shadow / "b").read_bytes() == b""  # the name is durable, its data is not
