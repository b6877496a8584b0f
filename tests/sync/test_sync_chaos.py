"""Sync chaos, short: one seeded random schedule per store (the long run is ``make soak``).

``bench.chaos`` mixes the fault proxy's faults, gate restarts, server SIGKILLs (between
requests and inside a held request) and entries appended all along, over several gates
and a real ``gate-sync serve``; it checks exactly-once, no holes, matching hashes and
acked <= stored after every step and at the end. A failure names the seed to replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import run
from bench.chaos_parts import ChaosFailure, Gate
from bench.report_proof import unread
from tests.sync.stream_helpers import STORES

STEPS = 30
#: A seed per store, and the schedule it makes: chosen so that together they mix every
#: proxy fault, gate restarts, and a server killed between requests and mid-request.
SCHEDULES = {
    "sqlite": (4, {
        "append": 14, "drain": 1, "gate_restart": 3, "upload": 6, "server_kill": 1,
        "server_start": 1, "fault_cut": 1, "fault_drop_reply": 1, "fault_duplicate": 1,
        "fault_reset": 1, "fault_stall": 1,
    }),
    "postgres": (5, {
        "append": 12, "drain": 1, "gate_restart": 4, "upload": 5, "server_kill_hold_sent": 1,
        "server_start": 1, "fault_cut": 3, "fault_drop_reply": 2, "fault_reset": 1,
        "fault_stall": 1,
    }),
}  # fmt: skip


@pytest.mark.parametrize("store", STORES)
def test_a_seeded_chaos_run_keeps_every_invariant(
    tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    dsn = str(request.getfixturevalue("postgres_dsn")) if store == "postgres" else None
    seed, schedule = SCHEDULES[store]
    summary = run(tmp_path, seed=seed, store=store, dsn=dsn, gates=2, steps=STEPS)
    # The same seed made the same schedule (reproducible), and the invariants held.
    assert summary["actions"] == dict(sorted(schedule.items()))
    assert summary["entries"] > 0 and summary["checks"] >= STEPS - 2
    assert unread("chaos", {"seed": seed, "runs": [summary], "invariants": "held"}) == []


def test_a_broken_invariant_names_the_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: a gate that remembers another hash for entry 1 stops the run."""
    real = Gate.append

    def misremembered(gate: Gate, count: int) -> None:
        real(gate, count)
        gate.hashes[1] = "0" * 64

    monkeypatch.setattr(Gate, "append", misremembered)
    with pytest.raises(ChaosFailure, match=r"chaos seed 5 \(sqlite\).*hash of 1 is not"):
        run(tmp_path, seed=5, store="sqlite", gates=1, steps=10)
