"""Two real gates of one compound learn from each other through a real central server.

Gate A lets a household out and gate B, after its next lists download, refuses the
household's next exit (`quota_used`); two gates that were apart both let a household
out and the centre lists the conflict; gate A refuses an isolated household's exit and
gate B's console status shows the alert. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from gate_agent.assess import Assessor, Evaluation
from gate_agent.clock import FakeClock
from gate_agent.console.status import compound_alerts
from gate_agent.core import messages
from gate_agent.core.passes import PassKind
from gate_agent.core.policy import GateIdentity
from gate_agent.core.reasons import Direction, Reason
from gate_agent.core.temperature import TemperatureReading, TemperatureSource
from gate_agent.ledger import Ledger
from gate_agent.records import entry_draft
from gate_agent.uplink import UplinkSettings, Uploader
from gate_agent.uplink_http import enrol
from sync import cli
from sync.server.app import create_app
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    NOW,
    STORES,
    Centre,
    TickingClock,
    centre,
    serving,
    store_dsn,
)
from tests.sync.test_issuer import fields
from tests.test_station import config

COMPOUND, COMMUNITY = "C1", "M1"
WELL = TemperatureReading(36.5, TemperatureSource.SENSOR)
A, B = "gate-a", "gate-b"


@dataclass
class Gate:
    """One gate: its ledger, clock, uploader and assessor, as `gate-agent run` wires them."""

    gate_id: str
    ledger: Ledger
    clock: FakeClock
    uploader: Uploader
    assessor: Assessor

    def scan(
        self, text: str, direction: Direction, temperature: TemperatureReading | None = None
    ) -> Evaluation:
        """Decide for a scanned pass and commit the entry, as the station does."""
        evaluation = self.assessor.evaluate(
            text, direction, temperature=temperature, now=self.clock.now()
        )
        self.ledger.append(entry_draft(evaluation, self.clock, lane=direction.value))
        return evaluation


@dataclass
class Compound:
    """The centre, its URL and clock, and the two gates."""

    centre: Centre
    url: str
    clock: TickingClock
    gates: dict[str, Gate]
    dsn: str | None

    def tick(self, minutes: float) -> None:
        """Time passes for the centre and both gates alike."""
        self.clock.advance(minutes=minutes)
        for gate in self.gates.values():
            gate.clock.advance(minutes * 60)

    def issue(self, pass_id: str, household: str) -> str:
        """A resident pass of the compound, without a quota rule of its own."""
        return self.centre.issuer.issue(replace(fields(pass_id), household_id=household), NOW)


@pytest.fixture(params=STORES)
def compound(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Compound]:
    dsn = store_dsn(request)
    server_clock = TickingClock()
    with centre(tmp_path / "central", dsn) as opened, ExitStack() as stack:
        opened.issuer.new_key(NOW)
        opened.central.set_compound_quota(COMPOUND, "1/2", by="test", now=NOW)
        url = stack.enter_context(
            serving(create_app(opened.streams, opened.issuer, ADMIN_TOKEN, server_clock))
        )
        gates = {}
        for gate_id in (A, B):
            place = GateIdentity(gate_id, COMPOUND, COMMUNITY)
            enrolment = enrol(url, gate_id, opened.code(gate_id), place=place)
            clock = FakeClock(NOW)
            ledger = stack.enter_context(
                Ledger.open(tmp_path / f"{gate_id}.sqlite3", gate_id=gate_id, clock=clock.now)
            )
            ledger.state.pin_centre_key(
                enrolment.centre_kid, enrolment.centre_public_key, by="test", at=NOW
            )
            uploader = stack.enter_context(
                Uploader(
                    ledger,
                    base_url=url,
                    gate_id=gate_id,
                    token=enrolment.token,
                    clock=clock,
                    settings=UplinkSettings(timeout_s=10, lists_poll_s=3600),
                )
            )
            gate_config = config(
                tmp_path / gate_id, id=gate_id, compound_id=COMPOUND, community_id=COMMUNITY
            )
            gates[gate_id] = Gate(gate_id, ledger, clock, uploader, Assessor(gate_config, ledger))
        yield Compound(opened, url, server_clock, gates, dsn)


def test_a_gate_refuses_an_exit_the_other_gate_already_let_out(compound: Compound) -> None:
    first, second = compound.issue("PASS000001", "H1"), compound.issue("PASS000002", "H1")
    a, b = compound.gates[A], compound.gates[B]
    for gate in (a, b):
        applied = gate.uploader.refresh_lists() or []
        assert {"keys", "settings"} <= set(applied)
        assert gate.ledger.state.settings()["exit_quota"] == "1/2"  # the compound's
    assert compound.centre.streams.compound_gates(COMPOUND) == [A, B]

    compound.tick(5)
    assert a.scan(first, Direction.OUT).decision.reason is Reason.OK
    a.uploader.drain()
    compound.tick(30)
    # Before B hears of it, the other member of the household would get out at B.
    assert b.assessor.evaluate(
        second, Direction.OUT, temperature=None, now=b.clock.now()
    ).decision.allowed
    assert "passages" in (b.uploader.refresh_lists() or [])
    refused = b.scan(second, Direction.OUT)
    assert (refused.decision.reason, refused.decision.allowed) == (Reason.QUOTA_USED, False)
    # A's own exit comes back to A in the passages list and still counts once.
    assert "passages" in (a.uploader.refresh_lists() or [])
    since = a.clock.now() - timedelta(days=2)
    assert len(a.assessor.household_exits("H1", since)) == 1
    assert a.scan(second, Direction.OUT).decision.reason is Reason.QUOTA_USED
    # Two days later the household may go out again, at either gate.
    compound.tick(2 * 24 * 60)
    assert b.assessor.evaluate(
        second, Direction.OUT, temperature=None, now=b.clock.now()
    ).decision.allowed


def test_gates_apart_that_both_let_a_household_out_are_flagged(
    compound: Compound, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = compound.issue("PASS000003", "H2"), compound.issue("PASS000004", "H2")
    a, b = compound.gates[A], compound.gates[B]
    for gate in (a, b):
        gate.uploader.refresh_lists()
    compound.tick(10)
    # The gates cannot reach each other (nor the centre): each lets one member out.
    assert a.scan(first, Direction.OUT).decision.allowed
    compound.tick(20)
    assert b.scan(second, Direction.OUT).decision.allowed
    compound.tick(60)
    for gate in (a, b):
        gate.uploader.drain()

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=compound.url, headers=headers) as admin:
        reply = admin.get("/v1/admin/quota-conflicts", params={"compound": COMPOUND})
        assert reply.status_code == 200, reply.text
        (conflict,) = reply.json()["conflicts"]
        assert (conflict["household_id"], conflict["quota"]) == ("H2", "1/2")
        assert [e["gate_id"] for e in conflict["exits"]] == [A, B]
        assert [e["gate_id"] for e in conflict["over_quota"]] == [B]
        assert (
            admin.get("/v1/admin/quota-conflicts", params={"compound": "C9"}).json()["conflicts"]
            == []
        )
        unauthorised = httpx.get(f"{compound.url}/v1/admin/quota-conflicts")
        assert unauthorised.status_code == 401
        fleet = admin.get("/v1/admin/gates").json()["gates"]
        assert [(g["gate_id"], g["compound"], g["community"]) for g in fleet] == [
            (A, COMPOUND, COMMUNITY), (B, COMPOUND, COMMUNITY),
        ]  # fmt: skip
        listed = admin.get("/v1/admin/compounds").json()["compounds"]
        assert [(c["compound"], c["gates"], c["exit_quota"]) for c in listed] == [
            (COMPOUND, [A, B], "1/2")
        ]

    data_dir = str(compound.centre.data_dir)
    dsn = ["--dsn", compound.dsn] if compound.dsn else []
    argv = [*dsn, "--data-dir", data_dir, "compounds", "conflicts", "--since", "2026-02-01"]
    assert cli.main([*argv, "--json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed == conflict
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "household H2  quota 1/2" in text
    assert text.count("OVER QUOTA") == 1


def test_an_isolated_households_exit_at_one_gate_alerts_the_other(compound: Compound) -> None:
    text = compound.issue("PASS000005", "H3")
    compound.centre.central.isolate(
        "H3", NOW - timedelta(days=1), NOW + timedelta(days=13), "home isolation", NOW
    )
    a, b = compound.gates[A], compound.gates[B]
    for gate in (a, b):
        assert "isolations" in (gate.uploader.refresh_lists() or [])
    compound.tick(15)
    refused = a.scan(text, Direction.OUT)
    assert (refused.decision.reason, refused.decision.alert) == (Reason.QUARANTINED_EXIT, True)
    a.uploader.drain()
    assert compound_alerts(b.ledger.state, B, b.clock.now())["count"] == 0
    assert "alerts" in (b.uploader.refresh_lists() or [])

    shown = compound_alerts(b.ledger.state, B, b.clock.now())
    assert shown["count"] == 1
    (alert,) = shown["recent"]
    assert (alert["gate_id"], alert["household_id"], alert["pass_id"]) == (A, "H3", "PASS000005")
    assert (alert["display_name"], alert["unit"]) == ("王*明", "1-1-101")  # masked, from the pass
    assert alert["at"] == a.clock.now().isoformat()
    assert alert["message_en"] == messages.text(Reason.QUARANTINED_EXIT, "en")
    # Gate A knows it already: its own alerts are not news on its console.
    a.uploader.refresh_lists()
    assert compound_alerts(a.ledger.state, A, a.clock.now())["count"] == 0
    # A day later the alert is no longer shown.
    compound.tick(24 * 60 + 1)
    assert compound_alerts(b.ledger.state, B, b.clock.now())["count"] == 0


def test_enrolment_with_another_place_is_refused_and_changes_nothing(
    compound: Compound,
) -> None:
    code = compound.centre.code(A)
    with httpx.Client(base_url=compound.url) as client:
        wrong = client.post(
            "/v1/gates/enrol", json={"gate_id": A, "code": code, "compound_id": "C2"}
        )
        assert (wrong.status_code, wrong.json()["error"]) == (409, "wrong_place")
        assert compound.centre.streams.gate_place(A) == (COMPOUND, COMMUNITY)
        right = client.post(
            "/v1/gates/enrol",
            json={"gate_id": A, "code": code, "compound_id": COMPOUND, "community_id": COMMUNITY},
        )
        assert right.status_code == 200, right.text


def test_a_one_time_visitor_let_in_at_one_gate_is_refused_at_the_other(
    compound: Compound,
) -> None:
    visitor = replace(
        fields("VISIT00001", days=1), kind=PassKind.VISITOR, household_id="H1", once=True
    )
    text = compound.centre.issuer.issue(visitor, NOW)
    a, b = compound.gates[A], compound.gates[B]
    for gate in (a, b):
        gate.uploader.refresh_lists()
    compound.tick(5)
    assert a.scan(text, Direction.IN, WELL).decision.allowed
    a.uploader.drain()
    compound.tick(10)
    # Until B hears of the visit, B would let the pass in a second time.
    assert b.assessor.evaluate(
        text, Direction.IN, temperature=WELL, now=b.clock.now()
    ).decision.allowed
    assert "passages" in (b.uploader.refresh_lists() or [])
    refused = b.scan(text, Direction.IN, WELL)
    assert (refused.decision.reason, refused.decision.allowed) == (Reason.PASS_USED, False)
    assert b.scan(text, Direction.OUT).decision.allowed  # the visitor may still leave
