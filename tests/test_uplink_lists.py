"""The uploader brings the centre's lists down: signed, versioned, as deltas, whatever happens."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.ledger.state import ListChange
from gate_agent.uplink import UplinkSettings, Uploader
from sync.issuer import Issuer
from sync.server.app import create_app
from tests.ledger.helpers import draft
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE, NOW, Centre, centre, serving
from tests.sync.test_issuer import fields


@dataclass
class Site:
    centre: Centre
    url: str
    token: str
    ledger: Ledger
    clock: FakeClock

    @property
    def issuer(self) -> Issuer:
        return self.centre.issuer

    def uploader(self, transport: httpx.BaseTransport | None = None) -> Uploader:
        return Uploader(
            self.ledger,
            base_url=self.url,
            gate_id=GATE,
            token=self.token,
            clock=self.clock,
            transport=transport,
            settings=UplinkSettings(timeout_s=10, lists_poll_s=3600),
        )

    def pin(self, kid: str | None = None, public: bytes | None = None) -> None:
        key = self.issuer.centre_public()
        self.ledger.state.pin_centre_key(
            kid or key["kid"],
            public or base64.b64decode(key["public_key"]),
            by="test",
            at=self.clock.now(),
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with centre(tmp_path / "central") as opened:
        opened.issuer.new_key(NOW)
        for n in range(1, 9):
            opened.issuer.issue(fields(f"PASS00000{n}"), NOW)
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, lambda: NOW)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            reply = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": opened.code()})
            token = reply.json()["token"]
            clock = FakeClock()
            with Ledger.open(tmp_path / "gate.sqlite3", gate_id=GATE, clock=clock.now) as ledger:
                yield Site(opened, url, token, ledger, clock)


def test_without_a_pinned_centre_key_nothing_comes_down(site: Site) -> None:
    with site.uploader() as uploader:
        assert uploader.refresh_lists() is None
        assert uploader.status().last_error is not None
        assert uploader.status().last_error[0] == "no_centre_key"  # type: ignore[index]
    assert site.ledger.state.list_versions()["keys"] == 0


def test_lists_signed_by_another_key_are_refused_and_change_nothing(site: Site) -> None:
    site.pin("AAAAAAAA", bytes(range(32)))
    with site.uploader() as uploader:
        assert uploader.refresh_lists() is None
        error = uploader.status().last_error
    assert error is not None and error[0] == "lists_unknown_key"
    assert site.ledger.state.issuer_keys() == []


def test_lists_come_down_whole_then_as_deltas_when_an_ack_says_so(site: Site) -> None:
    site.pin()
    state = site.ledger.state
    with site.uploader() as uploader:
        assert uploader.lists_due()  # never asked yet
        assert sorted(uploader.refresh_lists() or []) == [
            "directory", "isolations", "keys", "revocations", "settings",
        ]  # fmt: skip
        assert state.directory_status().items == 8
        assert not uploader.lists_due()
        assert uploader.refresh_lists() == []  # nothing newer: confirmed current
        assert site.ledger.sync.status().lists_checked_at == site.clock.now()

        site.issuer.store.revoke("PASS000003", "lost", NOW)
        site.issuer.store.set_setting("", "mode", "lockdown", by="admin", now=NOW)
        site.ledger.append(draft(0))
        uploader.drain()  # the acknowledgement names the newer versions
        assert uploader.lists_due()
        applied = uploader.refresh_lists()
    assert sorted(applied or []) == ["directory", "revocations", "settings"]
    assert state.revoked_pass_ids() == {"PASS000003"}
    assert state.directory_status().items == 7
    assert state.local_mode() is not None and state.local_mode()[0] == "lockdown"  # type: ignore[index]


class ChangingUnderfoot(httpx.BaseTransport):
    """Real HTTP to the centre; before the first lists reply lands, the gate's lists move on."""

    def __init__(self, ledger: Ledger) -> None:
        self.inner = httpx.HTTPTransport()
        self.ledger = ledger
        self.lists_requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/lists"):
            self.lists_requests.append(str(request.url.params["have"]))
            if len(self.lists_requests) == 1:
                # A lists file (v5) imported by hand meanwhile: a delta from v4 no longer fits.
                held = self.ledger.state.list_versions()["revocations"]
                self.ledger.state.apply_changes([ListChange("revocations", held + 1, [])])
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_delta_that_no_longer_fits_is_replaced_by_snapshots(site: Site) -> None:
    site.pin()
    with site.uploader() as uploader:
        uploader.refresh_lists()
    for n in (4, 5, 6):
        site.issuer.store.revoke(f"PASS00000{n}", "moved", NOW)
    with site.uploader() as uploader:
        uploader.refresh_lists()
    # Two versions on: the gate will be sent a delta from v4 to v6.
    site.issuer.store.revoke("PASS000007", "lost", NOW)
    site.issuer.store.revoke("PASS000008", "lost", NOW)
    site.clock.advance(1.0)
    transport = ChangingUnderfoot(site.ledger)
    with site.uploader(transport) as uploader:
        applied = uploader.refresh_lists()
        assert uploader.status().last_error is None
    assert len(transport.lists_requests) == 2
    assert "revocations:0" in transport.lists_requests[1]
    assert applied is not None and "revocations" in applied
    assert site.ledger.state.revoked_pass_ids() == {f"PASS00000{n}" for n in (4, 5, 6, 7, 8)}
