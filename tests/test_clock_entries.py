"""An entry made while the gate's clock is not synced says so, at the gate and at the centre."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gate_agent.assemble import open_gate
from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig
from gate_agent.core.reasons import Direction
from gate_agent.uplink import Step, UplinkSettings, Uploader
from sync.protocol import Ack, Batch
from sync.store.streams_sqlite import SqliteStreamStore

GATE = "G1"
CENTRE_NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_unsynced_entries_are_flagged_at_the_gate_and_corrected_at_the_centre(
    tmp_path: Path,
) -> None:
    config = GateConfig.model_validate(
        {
            "gate": {"id": GATE, "compound_id": "C1", "community_id": "M1",
                     "data_dir": str(tmp_path / "gate")},
            "thermometer": {"kind": "none"},
            "signals": {"kind": "mock"},
        }
    )  # fmt: skip
    # The gate booted without network: its clock is three hours behind and unsynced.
    clock = FakeClock(CENTRE_NOW - timedelta(hours=3), synced=False)
    centre = SqliteStreamStore(tmp_path / "central.sqlite3")
    centre.add_enrol_code(GATE, "code-hash", CENTRE_NOW + timedelta(hours=1))
    assert centre.enrol(GATE, "code-hash", "token-hash", CENTRE_NOW)

    def handle(request: httpx.Request) -> httpx.Response:
        batch = Batch.model_validate_json(gzip.decompress(request.content))
        reply = centre.ingest(
            GATE, request.url.path.split("/")[5], batch, now=CENTRE_NOW, list_versions={}
        )
        return httpx.Response(
            200 if isinstance(reply, Ack) else 409, content=reply.model_dump_json()
        )

    try:
        with open_gate(config, clock=clock, start=False) as gate:
            station = gate.station
            now = clock.now()
            evaluation = station.assessor.evaluate(
                "NOT-A-PASS", Direction.IN, temperature=None, now=now
            )
            entry = station.record(evaluation, lane="in").entry
            assert entry is not None and entry.clock_synced is False
            clock.set_wall(CENTRE_NOW, synced=True)  # NTP caught up
            later = station.record(evaluation, lane="in").entry
            assert later is not None and later.clock_synced is True
            with Uploader(
                gate.ledger, base_url="http://centre.test", gate_id=GATE, token="t", clock=clock,
                transport=httpx.MockTransport(handle), settings=UplinkSettings(),
                sleep=lambda s: None,
            ) as up:  # fmt: skip
                assert up.drain() is Step.IDLE
        first, second = centre.entries_after(0, 10)
        assert (first.content["clock_synced"], second.content["clock_synced"]) == (0, 1)
        assert not first.flagged and not second.flagged
        # The unsynced entry's time is put right by the centre's clock (monotonic time is
        # common to the boot); the synced one keeps the gate's own.
        assert first.corrected_time == CENTRE_NOW
        assert second.corrected_time is None
        assert datetime.fromisoformat(first.wall_time or "") == CENTRE_NOW - timedelta(hours=3)
    finally:
        centre.close()
