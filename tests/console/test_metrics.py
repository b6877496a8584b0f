"""/healthz and /metrics on a running simulated gate, through its real console server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gate_agent.clock import SystemClock
from gate_agent.console.server import ConsoleServer, console_app
from tests.console.conftest import ConsoleSite
from tests.console.test_api import wait_for
from tests.hardware.test_board import fake_vcgencmd, on_path

METRICS_TOKEN = "metrics-token-for-tests-0123"


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def health(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/healthz", timeout=10)
    return response.status_code, response.json()


def test_metrics_count_scans_by_outcome_and_reason(console: ConsoleSite) -> None:
    gate = console.gate
    gate.simulated_thermometer().set(36.6)
    console.revoke("GONE0001")
    gate.simulated_camera("in").show_pass(console.make_pass("MTRC0001"))
    assert wait_for(lambda: gate.ledger.count() == 1)
    gate.simulated_camera("in").show_pass(console.make_pass("GONE0001", household="H0404"))
    assert wait_for(lambda: gate.ledger.count() == 2)
    text = httpx.get(f"{console.url}/metrics", timeout=10).text
    assert "MTRC0001" not in text and "GONE0001" not in text  # no pass ids in labels
    m = scrape(console.url)
    assert m["gate_scans_total", ()] == 2
    assert m["gate_decisions_total", (("outcome", "allow"), ("reason", "ok"))] == 1
    assert m["gate_decisions_total", (("outcome", "deny"), ("reason", "revoked"))] == 1
    assert gate.station.stats.decisions == {("allow", "ok"): 1, ("deny", "revoked"): 1}
    # Both decisions in the latency histogram; the buckets are cumulative up to +Inf.
    assert m["gate_decision_latency_seconds_count", ()] == 2
    assert m["gate_decision_latency_seconds_bucket", (("le", "+Inf"),)] == 2
    buckets = [v for (name, _), v in m.items() if name == "gate_decision_latency_seconds_bucket"]
    assert buckets == sorted(buckets)
    assert m["gate_decode_seconds_count", ()] >= 2  # every frame decoded, the idle ones too
    assert m["gate_decode_seconds_sum", ()] > 0
    assert m["gate_ledger_entries", ()] == 2
    assert m["gate_ledger_bytes", ()] > 0
    assert m["gate_sqlite_memory_bytes", ()] > 0  # the ledger connection's cache and schema
    assert m["gate_sync_backlog_entries", ()] == 2  # this gate does not sync
    assert m["gate_sync_configured", ()] == 0
    assert ("gate_sync_last_success_timestamp_seconds", ()) not in m
    assert m["gate_list_version", (("list", "revocations"),)] == 2
    assert m["gate_list_age_seconds", (("list", "keys"),)] >= 0
    for lane in ("in", "out"):
        assert m["gate_camera_up", (("lane", lane),)] == 1
        assert ("gate_camera_frames_dropped_total", (("lane", lane),)) in m
        assert m["gate_camera_frames_total", (("lane", lane),)] > 0
    assert m["gate_sensor_errors_total", ()] == 0
    assert m["gate_mode", (("mode", "screening"),)] == 1
    assert m["gate_mode", (("mode", "lockdown"),)] == 0
    assert m["gate_disk_free_bytes", ()] > 0
    assert m["gate_clock_synced", ()] in (0, 1)
    assert m["gate_scan_loop_running", ()] == 1


def test_healthz_degrades_for_a_camera_and_fails_for_the_ledger(console: ConsoleSite) -> None:
    status, body = health(console.url)
    assert status == 200, body
    checks = body["checks"]
    assert checks["scan_loop"]["code"] == "running"
    assert checks["ledger"] == {"status": "ok", "code": "writable", "detail": ""}
    assert checks["camera:in"]["status"] == "ok"
    assert checks["lists"]["code"] == "current"
    camera = console.gate.simulated_camera("in")
    camera.unplug()
    assert wait_for(lambda: health(console.url)[1]["checks"]["camera:in"]["status"] != "ok")
    status, body = health(console.url)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["camera:in"]["code"] == "camera_fault"
    assert "unplugged" in body["checks"]["camera:in"]["detail"]
    assert scrape(console.url)["gate_camera_up", (("lane", "in"),)] == 0
    camera.plug()
    # The ledger fails (as a dead SD card would): the next scan cannot be recorded.
    console.gate.ledger.close()
    console.gate.simulated_thermometer().set(36.6)
    console.gate.simulated_camera("out").show_pass(console.make_pass("FAIL0001"))
    assert wait_for(lambda: console.gate.station.stats.ledger_errors > 0)
    status, body = health(console.url)
    assert (status, body["status"]) == (503, "failing")
    assert body["checks"]["ledger"]["code"] == "ledger_failing"
    m = scrape(console.url)  # what can still be read is still served
    assert m["gate_ledger_failing", ()] == 1
    assert m["gate_ledger_errors_total", ()] >= 1
    assert ("gate_ledger_entries", ()) not in m
    assert m["gate_metrics_read_errors_total", ()] >= 1


def test_healthz_fails_when_the_scan_loop_stops(console: ConsoleSite) -> None:
    console.gate.station.stop()
    status, body = health(console.url)
    assert (status, body["status"]) == (503, "failing")
    assert body["checks"]["scan_loop"] == {
        "status": "failing", "code": "loop_stopped", "detail": "the scan loop is not running",
    }  # fmt: skip


def test_the_board_is_read_through_vcgencmd(
    console: ConsoleSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = scrape(console.url)
    assert ("gate_cpu_temperature_celsius", ()) not in m  # no vcgencmd on this machine
    folder = fake_vcgencmd(tmp_path / "bin", temp="temp=48.3'C", throttled="throttled=0x50005")
    on_path(monkeypatch, folder)
    # A new console: its reader has not cached the answer of "no vcgencmd".
    server = ConsoleServer(console_app(console.gate, console.gate.config.console, SystemClock()),
                           "127.0.0.1", 0)  # fmt: skip
    server.start()
    try:
        m = scrape(server.url)
        status, body = health(server.url)
    finally:
        server.stop()
    assert m["gate_cpu_temperature_celsius", ()] == pytest.approx(48.3)
    assert m["gate_throttled", (("flag", "under_voltage"), ("when", "now"))] == 1
    assert m["gate_throttled", (("flag", "under_voltage"), ("when", "since_boot"))] == 1
    assert m["gate_throttled", (("flag", "frequency_capped"), ("when", "now"))] == 0
    assert m["gate_board_read_errors_total", ()] == 0
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["board"]["code"] == "under_voltage"


def test_a_metrics_token_guards_metrics_but_not_healthz(
    console: ConsoleSite, tmp_path: Path
) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(METRICS_TOKEN + "\n", encoding="utf-8")
    section = console.gate.config.console.model_copy(update={"metrics_token_file": token_file})
    server = ConsoleServer(console_app(console.gate, section, SystemClock()), "127.0.0.1", 0)
    server.start()
    try:
        bare = httpx.get(f"{server.url}/metrics", timeout=10)
        wrong = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10
        )
        assert health(server.url)[0] == 200
        m = scrape(server.url, Authorization=f"Bearer {METRICS_TOKEN}")
    finally:
        server.stop()
    for refused in (bare, wrong):
        assert (refused.status_code, refused.json()["error"]) == (401, "metrics_token")
        assert refused.headers["www-authenticate"] == "Bearer"
    assert ("gate_scans_total", ()) in m


def test_healthz_degrades_when_the_disk_reserve_is_used(console: ConsoleSite) -> None:
    status, body = health(console.url)
    assert body["checks"]["disk"]["code"] == "room", body
    housekeeper = console.gate.housekeeper
    assert housekeeper is not None
    assert housekeeper.free_reserve()  # as a ledger write meeting a full disk does
    status, body = health(console.url)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["disk"]["code"] == "disk_full_reserve_used"
