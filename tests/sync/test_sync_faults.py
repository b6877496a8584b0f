"""The real uploader through a faulty network to a real server: every entry arrives once.

A gate ledger of a few hundred entries drains in batches of 30 through the fault proxy to
the sync server under uvicorn on 127.0.0.1. Backoff sleeps are recorded, not slept: the
server stays up, so retrying at once changes nothing but the test's length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, UplinkSettings, Uploader
from sync.protocol import Ack
from sync.server.app import create_app
from tests.ledger.helpers import draft
from tests.sync.conftest import FAULT_ENTRIES
from tests.sync.fault_helpers import ADMIN_TOKEN, assert_exactly_once, sync_results
from tests.sync.faultproxy import Fault, FaultProxy
from tests.sync.stream_helpers import GATE, centre, serving

ENTRIES = FAULT_ENTRIES
BATCH = 30  # 8 batches when nothing goes wrong
TIMEOUT_S = 1.0  # what a stalled request costs the test


@dataclass
class Rig:
    """A server, the proxy in front of it, and a gate ledger with its uploader."""

    url: str
    proxy: FaultProxy
    ledger_path: Path
    ledger: Ledger
    uploader: Uploader
    delays: list[float] = field(default_factory=list)


@pytest.fixture
def rig(tmp_path: Path, gate_ledger: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Rig]:
    """Everything wired: uploader -> proxy -> server, the gate enrolled."""
    caplog.set_level(logging.INFO)
    ledger_path = gate_ledger
    with centre(tmp_path / "central") as opened:
        code = opened.code(now=datetime.now(UTC))
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN)
        with serving(app) as url:
            enrolled = httpx.post(
                f"{url}/v1/gates/enrol", json={"gate_id": GATE, "code": code}, timeout=10
            )
            token = enrolled.json()["token"]
            address = urlsplit(url)
            assert address.hostname is not None and address.port is not None
            delays: list[float] = []
            with (
                FaultProxy((address.hostname, address.port)) as proxy,
                Ledger.open(ledger_path, gate_id=GATE) as ledger,
                Uploader(
                    ledger,
                    base_url=proxy.url,
                    gate_id=GATE,
                    token=token,
                    clock=FakeClock(),
                    settings=UplinkSettings(timeout_s=TIMEOUT_S, max_entries=BATCH),
                    sleep=delays.append,
                ) as uploader,
            ):
                yield Rig(url, proxy, ledger_path, ledger, uploader, delays)
    # A network fault is the normal life of a gate: the server logs it, but not as an error.
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def drain(rig: Rig) -> None:
    """Run the uploader until the backlog is gone, then let late deliveries land."""
    assert rig.uploader.drain() is Step.IDLE
    rig.proxy.release()  # a stalled request now reaches the server, late
    assert rig.proxy.settle()


def acked_through(reply_body: bytes) -> int:
    return Ack.model_validate_json(reply_body).stored_through


def test_without_faults_the_backlog_drains_in_batches(rig: Rig) -> None:
    drain(rig)
    assert assert_exactly_once(rig.url, rig.ledger_path, GATE) == ENTRIES
    assert len(rig.proxy.seen) == ENTRIES // BATCH and rig.delays == []
    assert {s.connection for s in rig.proxy.seen} == {1}  # httpx keeps the connection alive
    assert sync_results(rig.url, GATE) == ["stored"] * (ENTRIES // BATCH)


def test_the_check_finds_an_entry_the_centre_lacks(rig: Rig) -> None:
    drain(rig)
    rig.ledger.append(draft(ENTRIES))
    with pytest.raises(AssertionError, match="missing \\[241\\]"):
        assert_exactly_once(rig.url, rig.ledger_path, GATE)
    assert rig.uploader.drain() is Step.IDLE
    assert assert_exactly_once(rig.url, rig.ledger_path, GATE) == ENTRIES + 1


def test_connections_reset_before_forwarding_are_sent_again(rig: Rig) -> None:
    rig.proxy.program({1: Fault.RESET, 2: Fault.RESET, 5: Fault.RESET})
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    assert len(rig.proxy.faults_of(Fault.RESET)) == 3 and len(rig.delays) >= 3


def test_uploads_cut_midway_store_nothing_and_are_sent_again(rig: Rig) -> None:
    rig.proxy.program({2: Fault.CUT, 4: Fault.CUT, 5: Fault.CUT})
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    assert len(rig.proxy.faults_of(Fault.CUT)) == 3 and len(rig.delays) >= 3
    assert "repeat" not in sync_results(rig.url, GATE)  # half a batch is no batch


def test_replies_lost_after_the_commit_make_harmless_repeats(rig: Rig) -> None:
    rig.proxy.program({3: Fault.DROP_REPLY, 4: Fault.DROP_REPLY, 8: Fault.DROP_REPLY})
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    dropped = rig.proxy.faults_of(Fault.DROP_REPLY)
    # The server committed each: its unheard Ack moved the cursor past the gate's.
    assert [acked_through(s.replies[0].body) for s in dropped] == [3 * BATCH, 3 * BATCH, 6 * BATCH]
    assert sync_results(rig.url, GATE).count("repeat") >= 3 and len(rig.delays) >= 3


def test_duplicated_requests_store_once(rig: Rig) -> None:
    rig.proxy.program({1: Fault.DUPLICATE, 2: Fault.DUPLICATE, 6: Fault.DUPLICATE})
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    for seen in rig.proxy.faults_of(Fault.DUPLICATE):
        # Both copies reached the server at once; both were answered with the same cursor.
        assert [r.status for r in seen.replies] == [200, 200]
        assert len({acked_through(r.body) for r in seen.replies}) == 1
    assert sync_results(rig.url, GATE).count("repeat") >= 3


def test_a_stall_past_the_timeout_is_retried_and_its_late_arrival_is_a_repeat(rig: Rig) -> None:
    rig.proxy.program({2: Fault.STALL})
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    (stalled,) = rig.proxy.faults_of(Fault.STALL)
    assert [r.status for r in stalled.replies] == [200] and not stalled.relayed
    assert acked_through(stalled.replies[0].body) == ENTRIES  # it came after all the rest
    assert sync_results(rig.url, GATE)[-1] == "repeat" and len(rig.delays) >= 1


def test_every_fault_at_once(rig: Rig) -> None:
    plan = {
        1: Fault.RESET,
        2: Fault.DUPLICATE,
        3: Fault.CUT,
        4: Fault.DROP_REPLY,
        5: Fault.STALL,
        6: Fault.DROP_REPLY,
        7: Fault.DUPLICATE,
        8: Fault.CUT,
        9: Fault.RESET,
        11: Fault.DROP_REPLY,
    }
    rig.proxy.program(plan)
    drain(rig)
    assert_exactly_once(rig.url, rig.ledger_path, GATE)
    assert {s.number: s.fault for s in rig.proxy.seen if s.fault is not Fault.PASS} == plan
