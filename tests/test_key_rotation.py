"""A key rotation as a gate lives it: both keys verify during the overlap, then the old
key's passes are refused once the downlink brings the retirement (a new keys version)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from gate_agent.assess import Assessor
from gate_agent.clock import FakeClock
from gate_agent.core.passes import PassRefusal, VerifiedPass
from gate_agent.core.reasons import Direction, Reason
from gate_agent.ledger import Ledger
from sync.server.app import create_app
from tests.ledger.helpers import draft
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE, NOW, TickingClock, centre, serving
from tests.sync.test_issuer import fields
from tests.test_station import config
from tests.test_uplink_lists import Site

OVERLAP = timedelta(days=14)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Site, TickingClock]]:
    """A centre whose clock the test moves, serving a gate that has pinned its centre key."""
    server_clock = TickingClock()
    with centre(tmp_path / "central") as opened:
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, server_clock)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            reply = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": opened.code()})
            token = reply.json()["token"]
            clock = FakeClock()
            with Ledger.open(tmp_path / "gate.sqlite3", gate_id=GATE, clock=clock.now) as ledger:
                made = Site(opened, url, token, ledger, clock)
                made.pin()
                yield made, server_clock


def scanned(assessor: Assessor, text: str) -> VerifiedPass | PassRefusal | None:
    evaluation = assessor.evaluate(text, Direction.IN, temperature=None, now=NOW)
    if isinstance(evaluation.scan, PassRefusal):
        assert evaluation.decision.reason is evaluation.scan.reason
    return evaluation.scan


def test_both_keys_verify_in_the_overlap_then_the_old_ones_passes_are_refused(
    site: tuple[Site, TickingClock], tmp_path: Path
) -> None:
    gate, server_clock = site
    issuer = gate.issuer
    old = issuer.new_key(NOW)
    old_pass = issuer.issue(fields("PASS000001"), NOW)
    rotation = issuer.rotate(NOW, OVERLAP)
    new_pass = issuer.issue(fields("PASS000002"), NOW)
    assert rotation.rotating == {old: 1}
    assessor = Assessor(config(tmp_path), gate.ledger)
    state = gate.ledger.state

    with gate.uploader() as uploader:
        assert "keys" in (uploader.refresh_lists() or [])
        held = state.list_versions()["keys"]
        for text, kid in ((old_pass, old), (new_pass, rotation.kid)):
            scan = scanned(assessor, text)
            assert isinstance(scan, VerifiedPass) and scan.key_id == kid

        server_clock.advance(days=14, seconds=-1)  # the last second of the overlap
        gate.ledger.append(draft(0))
        uploader.drain()
        assert not uploader.lists_due()  # nothing changed by time alone
        assert isinstance(scanned(assessor, old_pass), VerifiedPass)

        server_clock.advance(seconds=1)  # the overlap is over
        gate.ledger.append(draft(1))
        uploader.drain()  # the acknowledgement already names the new keys version
        assert uploader.lists_due()
        assert uploader.refresh_lists() == ["keys"]

    assert state.list_versions()["keys"] == held + 1
    refused = scanned(assessor, old_pass)
    assert isinstance(refused, PassRefusal) and refused.reason is Reason.KEY_RETIRED
    assert isinstance(scanned(assessor, new_pass), VerifiedPass)


def test_a_key_retired_at_once_is_refused_at_the_next_sync(
    site: tuple[Site, TickingClock], tmp_path: Path
) -> None:
    gate, _ = site
    issuer = gate.issuer
    leaked = issuer.new_key(NOW)
    text = issuer.issue(fields("PASS000001"), NOW)
    assessor = Assessor(config(tmp_path), gate.ledger)
    with gate.uploader() as uploader:
        uploader.refresh_lists()
        assert isinstance(scanned(assessor, text), VerifiedPass)
        assert issuer.retire(leaked, NOW, force=True)
        gate.ledger.append(draft(0))
        uploader.drain()
        assert uploader.refresh_lists() == ["keys"]
    refused = scanned(assessor, text)
    assert isinstance(refused, PassRefusal) and refused.reason is Reason.KEY_RETIRED
