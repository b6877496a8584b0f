"""The process whose power is cut: appends ledger entries and acknowledges each one.

Run as ``python -m tests.crash.powerloss_writer LEDGER [--synchronous OFF]`` under the
``bench/powerloss.c`` shim. It opens the ledger with the real ``Ledger.open`` (WAL,
synchronous=FULL), appends entries until killed, and after each ``append`` returns
writes ``ack <seq> <hash>`` to stdout: the moment the station would light the green.
``--autocheckpoint N`` checkpoints every N pages, so a cut can land in a checkpoint;
``--synchronous OFF`` lowers the level on the writer's connection, for the test that
shows what the shim catches when SQLite does not sync.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gate_agent.ledger import EntryDraft, Ledger


def draft(i: int) -> EntryDraft:
    """A screened resident walking in or out."""
    return EntryDraft(
        direction="in" if i % 2 else "out",
        outcome="allow",
        reason="ok",
        wall_time=datetime.now(UTC),
        monotonic_ns=time.monotonic_ns(),
        boot_id="0f4c3d1e-9b1a-4c59-8d47-1d6a1c2e3f40",
        clock_synced=True,
        pass_id=f"P{i:09d}",
        pass_kind="resident",
        household_id="LGQ012-H0301",
        temperature_celsius=36.6,
        temperature_raw=(36.5, 36.6, 36.6, 36.7),
        ambient_celsius=4.5,
        temperature_model="v1",
        temperature_source="sensor",
        next_step="let_through",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Append and acknowledge until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--synchronous", default=None, choices=["OFF", "NORMAL", "FULL"])
    parser.add_argument("--autocheckpoint", type=int, default=None, help="pages between")
    args = parser.parse_args(argv)
    ledger = Ledger.open(args.ledger, gate_id="LGQ-012-N")
    if args.synchronous is not None:
        with ledger._store.read() as db:  # the test's deliberate downgrade
            db.execute(f"PRAGMA synchronous = {args.synchronous}")
    if args.autocheckpoint is not None:
        with ledger._store.read() as db:  # checkpoints oftener than a gate
            db.execute(f"PRAGMA wal_autocheckpoint = {args.autocheckpoint}")
    i = 0
    while True:
        i += 1
        entry = ledger.append(draft(i))
        os.write(1, f"ack {entry.seq} {entry.hash}\n".encode())


if __name__ == "__main__":
    sys.exit(main())
