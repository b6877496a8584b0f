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
from collections.abc import Sequence
from pathlib import Path

from bench.ledger import draft
from gate_agent.ledger import Ledger


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
