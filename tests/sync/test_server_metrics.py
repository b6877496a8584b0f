"""The centre's /healthz and /metrics, over both stream stores, through real uvicorn servers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync import cli
from sync.server.app import create_app
from tests.limits import PATIENCE_S
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    OTHER_GATE,
    STORES,
    Centre,
    TickingClock,
    batch_dict,
    centre,
    fill_ledger,
    gzip_body,
    ledger_entries,
    serving,
    store_dsn,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
METRICS_TOKEN = "metrics-token-0123456789abcdef"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(client: httpx.Client, token: str = ADMIN_TOKEN) -> Samples:
    reply = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return parse(reply.text)


class Site:
    def __init__(self, opened: Centre, client: httpx.Client, clock: TickingClock) -> None:
        self.centre, self.client, self.clock = opened, client, clock

    def enrol(self, gate: str) -> dict[str, str]:
        code = self.centre.code(gate, self.clock())
        reply = self.client.post("/v1/gates/enrol", json={"gate_id": gate, "code": code})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['token']}"}

    def post(self, auth: dict[str, str], stream: str, entries: list[dict[str, Any]]) -> int:
        reply = self.client.post(
            f"/v1/gates/{GATE}/streams/{stream}/batches",
            content=gzip_body(batch_dict(entries)),
            headers={**auth, "Content-Encoding": "gzip"},
        )
        return reply.status_code


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    ledger = tmp_path_factory.mktemp("gate") / "ledger.sqlite3"
    return fill_ledger(ledger, 12), ledger_entries(ledger)


@pytest.fixture(params=STORES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    clock = TickingClock()
    with centre(tmp_path / "central", store_dsn(request)) as opened:
        app = create_app(
            opened.streams, opened.issuer, ADMIN_TOKEN, clock, metrics_token=METRICS_TOKEN
        )
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield Site(opened, client, clock)


def test_metrics_count_batches_by_result_and_show_the_fleet(
    site: Site, stream: tuple[str, list[dict[str, Any]]]
) -> None:
    stream_id, entries = stream
    auth = site.enrol(GATE)
    site.centre.code(OTHER_GATE, site.clock())  # a code made, the gate not yet enrolled
    assert site.post(auth, stream_id, entries[:8]) == 200
    assert site.post(auth, stream_id, entries[:8]) == 200  # the gate's resend: a repeat
    assert site.post(auth, stream_id, entries[10:12]) == 409  # a gap
    assert site.client.get(f"/v1/gates/{GATE}/lists", headers=auth).status_code == 200
    m = scrape(site.client)
    for result, batches, carried in (("stored", 1, 8), ("repeat", 1, 8), ("gap", 1, 2)):
        assert m["gate_sync_batches_total", (("result", result),)] == batches
        assert m["gate_sync_entries_received_total", (("result", result),)] == carried
    assert m["gate_sync_entries_stored_total", ()] == 8
    assert m["gate_sync_gates_known", ()] == 2
    assert m["gate_sync_gates_enrolled", ()] == 1
    assert m["gate_sync_gates_stale", ()] == 0
    assert m["gate_sync_gate_backlog_entries", (("gate", GATE),)] == 0
    seen = m["gate_sync_gate_last_seen_timestamp_seconds", (("gate", GATE),)]
    assert seen == site.clock().timestamp()
    assert m["gate_sync_lists_served_total", ()] == 1
    kind = "sqlite" if "Sqlite" in type(site.centre.streams).__name__ else "postgres"
    assert m["gate_sync_store_info", (("kind", kind),)] == 1
    assert m["gate_sync_store_up", ()] == 1
    # Requests by route template: the gate and stream ids never become labels.
    route = "/v1/gates/{gate}/streams/{stream}/batches"
    posts = (("method", "POST"), ("route", route))
    assert m["gate_sync_request_seconds_count", posts] == 3
    assert m["gate_sync_request_seconds_bucket", (("le", "+Inf"), *posts)] == 3
    assert m["gate_sync_responses_total", (("method", "POST"), ("route", route),
                                           ("status", "409"))] == 1  # fmt: skip
    assert not any(GATE in dict(labels).get("route", "") for _, labels in m)
    # A day later without a word from the gate, it is stale.
    site.clock.advance(hours=25)
    assert scrape(site.client, METRICS_TOKEN)["gate_sync_gates_stale", ()] == 1


def test_metrics_need_a_token_and_healthz_does_not(site: Site) -> None:
    assert site.client.get("/healthz").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
        refused = site.client.get("/metrics", headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
        assert refused.headers["www-authenticate"] == "Bearer"
    assert ("gate_sync_gates_enrolled", ()) in scrape(site.client, METRICS_TOKEN)


def test_healthz_is_503_when_the_store_is_down(site: Site) -> None:
    site.centre.streams.close()  # as good as a database that went away
    reply = site.client.get("/healthz")
    assert (reply.status_code, reply.json()) == (
        503, {"status": "failing", "code": "store_unavailable"},
    )  # fmt: skip
    m = scrape(site.client)  # the process's own counts are still served
    assert m["gate_sync_store_up", ()] == 0
    assert ("gate_sync_gates_enrolled", ()) not in m
    assert m["gate_sync_request_seconds_count", (("method", "GET"), ("route", "/healthz"))] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_workers_counts_are_summed_whichever_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    assert cli.main(["--data-dir", str(data), "gates", "enrol", GATE]) == 0
    code = capsys.readouterr().out.strip()
    script = shutil.which("gate-sync", path=str(Path(sys.executable).parent))
    assert script
    port = _free_port()
    process = subprocess.Popen(
        [script, "--data-dir", str(data), "serve", "--port", str(port), "--workers", "2",
         "--admin-token-file", str(token)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gate-sync serve did not answer"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        enrolled = httpx.post(f"{url}/v1/gates/enrol", json={"gate_id": GATE, "code": code})
        auth = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        for _ in range(8):  # a connection each: the kernel spreads them over the workers
            assert httpx.get(f"{url}/v1/gates/{GATE}/lists", headers=auth).status_code == 200
        served = set()
        for _ in range(6):
            reply = httpx.get(f"{url}/metrics", headers=ADMIN, timeout=10)
            m = parse(reply.text)
            served.add(m["gate_sync_lists_served_total", ()])
            assert m["gate_sync_gates_enrolled", ()] == 1
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
    assert served == {8}, errors
