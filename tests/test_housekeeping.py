"""The gate's housekeeping: the retention purge, the free-space watch, the reserve file."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.cli import main
from gate_agent.clock import FakeClock
from gate_agent.config import GateConfig
from gate_agent.housekeeping import MB, Housekeeper, Usage
from gate_agent.ledger import Ledger
from gate_agent.ledger.state import ListChange
from gate_agent.ledger.verify import verify_ledger_file
from gate_agent.uplink import Step, UplinkSettings, Uploader
from sync.protocol import Batch
from sync.store.streams_sqlite import SqliteStreamStore

from .ledger.helpers import T0, draft

GATE = "G1"
NOW = T0 + timedelta(days=40)


def gate_config(tmp_path: Path, *, sync: bool = True, **retention: object) -> GateConfig:
    """A gate whose data folder is under ``tmp_path``; sync on (not enrolled) unless told."""
    section: dict[str, object] = {"enabled": sync}
    if sync:
        section["server_url"] = "http://127.0.0.1:9"
    return GateConfig.model_validate(
        {
            "gate": {"id": GATE, "compound_id": "C1", "community_id": "M1",
                     "data_dir": str(tmp_path / "data")},
            "sync": section,
            "retention": {"reserve_mb": 1, **retention},
        }
    )  # fmt: skip


class FakeDisk:
    """Free space as a test sets it."""

    def __init__(self, free_mb: int = 10_000) -> None:
        self.free = free_mb * MB

    def __call__(self, path: Path) -> Usage:
        return Usage(100_000 * MB, 100_000 * MB - self.free, self.free)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger with six registrations a day apart, from T0: 40 to 35 days before NOW."""
    with Ledger.open(tmp_path / "data" / "ledger.sqlite3", gate_id=GATE) as opened:
        for day in range(6):
            opened.append(
                draft(day, wall_time=T0 + timedelta(days=day), personal={"name": f"访客{day}"})
            )
        yield opened


def personal(ledger: Ledger) -> list[bool]:
    return [entry.personal is not None for entry in ledger.entries()]


def test_old_entries_lose_personal_data_only_once_the_centre_has_them(
    tmp_path: Path, ledger: Ledger
) -> None:
    clock = FakeClock(NOW)
    keeper = Housekeeper(ledger, gate_config(tmp_path), clock, usage=FakeDisk())
    assert keeper.purge().entries == 0  # old, but never uploaded: kept
    ledger.sync.record_ack(3, NOW, {})
    dry = keeper.purge(dry_run=True)
    assert (dry.entries, dry.through_seq, dry.dry_run) == (3, 3, True)
    assert personal(ledger) == [True] * 6  # a dry run changes nothing
    assert keeper.purge().entries == 3
    assert personal(ledger) == [False] * 3 + [True] * 3
    assert [e.personal_digest is not None for e in ledger.entries()] == [True] * 6
    assert ledger.verify().ok
    assert verify_ledger_file(ledger.path).ok
    # Sync off: age alone decides.
    alone = Housekeeper(ledger, gate_config(tmp_path, sync=False), clock, usage=FakeDisk())
    counts = alone.purge()
    assert (counts.entries, counts.through_seq) == (3, None)
    assert personal(ledger) == [False] * 6
    assert ledger.verify().ok


def test_entries_younger_than_the_period_keep_their_data(tmp_path: Path, ledger: Ledger) -> None:
    ledger.sync.record_ack(6, NOW, {})
    clock = FakeClock(T0 + timedelta(days=31, hours=12))  # entries 0-3 are older than 28 days
    keeper = Housekeeper(ledger, gate_config(tmp_path), clock, usage=FakeDisk())
    assert keeper.purge().entries == 4
    assert personal(ledger) == [False] * 4 + [True] * 2


def test_the_loop_purges_at_start_and_then_hourly(tmp_path: Path, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    keeper = Housekeeper(ledger, gate_config(tmp_path, sync=False), clock, usage=FakeDisk())
    keeper.tick()
    assert personal(ledger) == [False] * 6
    ledger.append(draft(7, wall_time=T0, personal={"name": "迟到"}))
    clock.advance(30 * 60)
    keeper.tick()
    assert personal(ledger)[-1]  # not an hour yet
    clock.advance(31 * 60)
    keeper.tick()
    assert not personal(ledger)[-1]
    assert ledger.verify().ok


def test_the_compounds_old_alerts_and_passages_are_dropped(tmp_path: Path, ledger: Ledger) -> None:
    def alert(seq: int, days_ago: int) -> dict[str, Any]:
        return {
            "gate_id": "G2", "stream_id": "s2", "seq": seq,
            "at": (NOW - timedelta(days=days_ago)).isoformat(), "reason": "quarantined_exit",
            "household_id": "H1", "unit": "1-1-101", "display_name": "张*", "pass_id": None,
        }  # fmt: skip

    def passage(seq: int, days_ago: int) -> dict[str, Any]:
        return {
            "gate_id": "G2", "stream_id": "s2", "seq": seq, "pass_id": f"P{seq}",
            "household_id": "H1", "kind": "resident", "direction": "out",
            "at": (NOW - timedelta(days=days_ago)).isoformat(),
        }  # fmt: skip

    ledger.state.apply_changes(
        [
            ListChange("alerts", 5, [alert(1, 30), alert(2, 1)]),
            ListChange("passages", 5, [passage(1, 100), passage(2, 30), passage(3, 2)]),
        ]
    )
    keeper = Housekeeper(ledger, gate_config(tmp_path), FakeClock(NOW), usage=FakeDisk())
    counts = keeper.purge()
    # Passages are kept for the longest exit-quota window (99 days), past the period.
    assert (counts.alerts, counts.passages) == (1, 1)
    assert [a["seq"] for a in ledger.state.alerts(NOW - timedelta(days=400))] == [2]
    assert ledger.state.compound_versions() == {"alerts": 5, "passages": 5}


def test_gate_agent_purge_prints_counts_and_a_dry_run_changes_nothing(
    tmp_path: Path, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        '[gate]\nid = "G1"\ncompound_id = "C1"\ncommunity_id = "M1"\ndata_dir = "data"\n'
        "[retention]\ndays = 30\n",
        encoding="utf-8",
    )
    ledger.close()
    assert main(["--config", str(path), "purge", "--dry-run", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["entries"], counts["through_seq"], counts["dry_run"]) == (6, None, True)
    assert main(["--config", str(path), "purge"]) == 0
    out = capsys.readouterr().out
    assert "purged the personal data of 6 entries older than 30 days" in out
    assert "访客" not in out
    assert main(["--config", str(path), "verify-ledger"]) == 0


# -- the uploader sends purged entries without their personal data ---------------------------


def test_purged_entries_resent_to_a_restored_centre_are_stored_sound(
    tmp_path: Path, ledger: Ledger
) -> None:
    """The centre restored an old backup after the gate purged: the resent entries go
    without personal data, and a real central store takes them unflagged."""

    def restored() -> SqliteStreamStore:
        store = SqliteStreamStore(tmp_path / "central.sqlite3")
        store.add_enrol_code(GATE, "code-hash", NOW + timedelta(hours=1))
        assert store.enrol(GATE, "code-hash", "token-hash", NOW)
        return store

    centre = restored()
    clock = FakeClock(NOW)

    def handle(request: httpx.Request) -> httpx.Response:
        batch = Batch.model_validate_json(gzip.decompress(request.content))
        stream_id = request.url.path.split("/")[5]
        reply = centre.ingest(GATE, stream_id, batch, now=NOW, list_versions={})
        status = 200 if reply.__class__.__name__ == "Ack" else 409
        return httpx.Response(status, content=reply.model_dump_json())

    def uploader() -> Uploader:
        return Uploader(
            ledger, base_url="http://centre.test", gate_id=GATE, token="t", clock=clock,
            transport=httpx.MockTransport(handle), settings=UplinkSettings(), sleep=lambda s: None,
        )  # fmt: skip

    try:
        with uploader() as up:
            assert up.drain() is Step.IDLE
        keeper = Housekeeper(ledger, gate_config(tmp_path), clock, usage=FakeDisk())
        assert keeper.purge().entries == 6
        centre.close()
        (tmp_path / "central.sqlite3").unlink()  # the centre's disk lost, an empty restore
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"central.sqlite3{suffix}").unlink(missing_ok=True)
        centre = restored()
        ledger.append(draft(7))  # its upload meets a gap: the centre's cursor went back to 0
        with uploader() as up:
            assert up.drain() is Step.IDLE
        stored = centre.entries_after(0, 100)
        assert [r.seq for r in stored] == [1, 2, 3, 4, 5, 6, 7]
        assert all(not r.flagged and r.content["personal"] is None for r in stored)
        assert all(r.content["personal_digest"] for r in stored[:6])
    finally:
        centre.close()


# -- free space and the reserve ---------------------------------------------------------------


def test_low_free_space_is_reported_and_the_reserve_comes_back(
    tmp_path: Path, ledger: Ledger
) -> None:
    disk = FakeDisk(free_mb=10_000)
    keeper = Housekeeper(ledger, gate_config(tmp_path), FakeClock(NOW), usage=disk)
    keeper.tick()
    reserve = tmp_path / "data" / "reserve.bin"
    assert reserve.stat().st_size == MB
    state = keeper.disk().as_dict()
    assert (state["low"], state["reserve_held"], state["reserve_used"]) == (False, True, False)
    disk.free = 150 * MB
    assert keeper.disk().as_dict()["low"]
    assert keeper.free_reserve()
    assert not reserve.exists()
    disk.free = 10_000 * MB
    assert keeper.disk().as_dict()["reserve_used"]  # still warned until it is back
    keeper.tick()
    assert reserve.stat().st_size == MB
    assert keeper.disk().as_dict() == {
        "free_mb": 10_000, "warn_free_mb": 200, "low": False,
        "reserve_mb": 1, "reserve_held": True, "reserve_used": False,
    }  # fmt: skip


def test_no_reserve_is_made_where_it_would_leave_too_little(tmp_path: Path, ledger: Ledger) -> None:
    keeper = Housekeeper(ledger, gate_config(tmp_path), FakeClock(NOW), usage=FakeDisk(200))
    keeper.tick()
    assert not (tmp_path / "data" / "reserve.bin").exists()
    assert not keeper.disk().low  # 200 MB free is not below 200 MB
