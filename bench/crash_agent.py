"""The gate the crash harness kills: the real station on simulated cameras, told what it lit.

Run as ``python -m bench.crash_agent --config gate.toml --passes DIR --tap-fd N``
(``bench.crash`` starts it). It opens the gate with ``open_gate`` exactly as
``gate-agent run`` does (real ledger, decoder, verifier, policy and the signals
logic on gpiozero's mock pins) and walks the passes in ``DIR`` past the
simulated cameras, in and out in turn, until it is killed.

The tap: after each decision whose green light is lit, read back from the mock
pins, it writes ``green <seq> <pass_id> <hash>`` to file descriptor ``N``, one
unbuffered ``write`` per line. The station lights the signals only after the
ledger commit returned, so every line is a claim the harness can check against
the ledger after a SIGKILL. The tap lives here, beside the simulation, so a
real gate pays nothing for it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from gate_agent.assemble import open_gate
from gate_agent.clock import SystemClock
from gate_agent.config import load_config
from gate_agent.events import GateEvent
from gate_agent.simulation import Visit, run_visits


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: close the gate as Ctrl-C would


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate until killed, reporting each lit green light on the tap."""
    parser = argparse.ArgumentParser(prog="python -m bench.crash_agent")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--passes", type=Path, required=True, help="folder of <name>.txt passes")
    parser.add_argument("--tap-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    config = load_config(args.config)
    # Each file is named after the pass id it holds (bench.crash issues them so).
    texts = {
        p.stem: p.read_text(encoding="ascii").strip() for p in sorted(args.passes.glob("*.txt"))
    }
    tap = args.tap_fd
    with open_gate(config, clock=SystemClock()) as gate:
        # Each pass goes the other way from its last allowed passage, so a restarted gate
        # keeps letting people through instead of refusing them as already inside.
        inside = {}
        for pass_id in texts:
            last = gate.ledger.last_allowed_for_pass(pass_id)
            inside[pass_id] = last is not None and last.direction == "in"

        def on_decision(visit: Visit, event: GateEvent | None) -> None:
            if event is None or event.data.get("seq") is None:
                return
            seq = int(event.data["seq"])
            if event.data["outcome"] != "allow":
                return
            inside[visit.label] = visit.lane == "in"
            if not gate.signals.state().green:
                os.write(tap, f"dark {seq}\n".encode())
                return
            entry = gate.ledger.get(seq)
            assert entry is not None
            os.write(tap, f"green {seq} {entry.pass_id} {entry.hash}\n".encode())

        try:
            while True:
                visits = [
                    Visit(label=pass_id, text=text, lane="out" if inside[pass_id] else "in")
                    for pass_id, text in texts.items()
                ]
                run_visits(gate, visits, on_decision=on_decision, gap_s=0.0)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
