"""The console's API through a real uvicorn server on 127.0.0.1 and a running simulated gate."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.core import messages
from gate_agent.core.reasons import Reason
from gate_agent.housekeeping import MB, Usage
from gate_agent.ledger.state import ListChange
from tests.console.conftest import ConsoleSite, UnsyncedClock
from tests.limits import PATIENCE_S

STATIC = Path(__file__).resolve().parents[2] / "gate_agent" / "console" / "static"


def client(site: ConsoleSite) -> httpx.Client:
    return httpx.Client(base_url=site.url, timeout=10)


@contextmanager
def signed_in(site: ConsoleSite, *, admin: bool = False) -> Iterator[httpx.Client]:
    with client(site) as c:
        if admin:
            r = c.post("/api/session/admin", json={"token": site.admin_token})
        else:
            body = {"name": site.guard_name, "pin": site.guard_pin}
            r = c.post("/api/session/guard", json=body)
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf"]
        yield c


def wait_for(condition: Any, timeout: float = PATIENCE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_guards_sign_in_with_their_pin_and_out_again(console: ConsoleSite) -> None:
    with client(console) as c:
        assert c.get("/api/guards").json() == {"guards": [console.guard_name]}
        assert c.get("/api/session").status_code == 401
        bad = c.post("/api/session/guard", json={"name": console.guard_name, "pin": "000000"})
        assert (bad.status_code, bad.json()["error"]) == (401, "bad_pin")
        ok = c.post("/api/session/guard", json={"name": console.guard_name,
                                                 "pin": console.guard_pin})  # fmt: skip
        assert ok.status_code == 200
        assert ok.json()["role"] == "guard"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/session").json()["name"] == console.guard_name
        assert c.delete("/api/session").status_code == 403  # no CSRF token
        gone = c.delete("/api/session", headers={"X-CSRF-Token": ok.json()["csrf"]})
        assert gone.status_code == 204
        assert c.get("/api/session").status_code == 401


def test_repeated_wrong_pins_lock_the_name(console: ConsoleSite) -> None:
    with client(console) as c:
        for _ in range(5):
            c.post("/api/session/guard", json={"name": console.guard_name, "pin": "111111"})
        locked = c.post("/api/session/guard", json={"name": console.guard_name,
                                                     "pin": console.guard_pin})  # fmt: skip
        assert (locked.status_code, locked.json()["error"]) == (429, "locked")


def test_too_many_attempts_from_one_client_are_refused(console: ConsoleSite) -> None:
    with client(console) as c:
        codes = [
            c.post("/api/session/admin", json={"token": "wrong-token-123"}).json()["error"]
            for _ in range(21)
        ]
    assert codes[0] == "bad_token"
    assert codes[-1] == "too_many_attempts"


PROTECTED = [
    ("GET", "/api/events"), ("GET", "/api/status"), ("GET", "/api/residents?unit=3"),
    ("POST", "/api/entries/manual"), ("POST", "/api/entries/1/temperature"),
    ("POST", "/api/visitors"), ("POST", "/api/returnees"), ("POST", "/api/entries/1/override"),
    ("POST", "/api/mode"), ("DELETE", "/api/session"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_needs_a_signed_in_guard(
    console: ConsoleSite, method: str, path: str
) -> None:
    with client(console) as c:
        response = c.request(method, path, json={})
    assert (response.status_code, response.json()["error"]) == (401, "signed_out")


def test_only_admins_switch_the_mode(console: ConsoleSite) -> None:
    with signed_in(console) as guard:
        refused = guard.post("/api/mode", json={"mode": "lockdown"})
        assert (refused.status_code, refused.json()["error"]) == (403, "admins_only")
    with signed_in(console, admin=True) as admin:
        assert admin.get("/api/status").json()["mode_set"]["source"] == "config"
        assert admin.post("/api/mode", json={"mode": "lockdown"}).json() == {"mode": "lockdown"}
        status = admin.get("/api/status").json()
        assert status["mode"] == "lockdown"
        assert (status["mode_set"]["source"], status["mode_set"]["by"]) == ("gate", "admin")
        assert admin.post("/api/mode", json={"mode": "closed"}).status_code == 422
        # The centre orders screening: the latest instruction holds, and says whose it is.
        console.gate.ledger.state.apply_changes(
            [ListChange("settings", 5, [{"key": "mode", "value": "screening"}])]
        )
        status = admin.get("/api/status").json()
        assert (status["mode"], status["mode_set"]["source"]) == ("screening", "centre")


def test_form_posts_need_the_csrf_token(console: ConsoleSite) -> None:
    with signed_in(console) as c:
        del c.headers["X-CSRF-Token"]
        r = c.post("/api/visitors", json={})
    assert (r.status_code, r.json()["error"]) == (403, "bad_csrf")


def test_every_code_has_words_in_both_languages(console: ConsoleSite) -> None:
    with client(console) as c:
        words = c.get("/api/messages").json()
    assert set(words["reasons"]) == {r.value for r in Reason}
    assert all(set(w) == {"zh", "en"} for w in words["reasons"].values())
    assert set(words["override_reasons"]) == set(messages.OVERRIDE_REASONS)


class EventReader:
    """Reads the SSE stream in a thread and keeps the events."""

    def __init__(self, c: httpx.Client) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._c = c
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = ""
        with self._c.stream("GET", "/api/events", timeout=None) as response:
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, json.loads(line[6:])))

    def decisions(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == "decision"]

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def reader(console: ConsoleSite) -> Iterator[EventReader]:
    with signed_in(console) as c:
        r = EventReader(c)
        yield r
        r.close()
        console.gate.simulated_camera("in").show_pass(console.make_pass("WAKE0001"))


def test_decisions_arrive_live_and_a_late_page_gets_the_last_few(
    console: ConsoleSite, reader: EventReader
) -> None:
    console.gate.simulated_thermometer().set(36.6)
    console.gate.simulated_camera("in").show_pass(console.make_pass("LIVE0001"))
    assert wait_for(reader.decisions)
    first = reader.decisions()[0]
    assert (first["outcome"], first["reason"], first["name"], first["unit"]) == (
        "allow", "ok", "张*明", "3-2-501",
    )  # fmt: skip
    assert first["temperature"]["celsius"] == pytest.approx(36.6, abs=0.2)
    with signed_in(console) as c:
        late = EventReader(c)
        assert wait_for(late.decisions)
        assert late.decisions()[0]["pass_id"] == "LIVE0001"
        assert late.decisions()[0]["replay"] is True
        late.close()


def test_a_handheld_reading_completes_a_scan_without_one(
    console: ConsoleSite, reader: EventReader
) -> None:
    console.gate.simulated_thermometer().clear()
    console.gate.simulated_camera("in").show_pass(console.make_pass("HAND0001"))
    assert wait_for(reader.decisions)
    asked = reader.decisions()[0]
    assert (asked["outcome"], asked["reason"]) == ("recheck", "no_person_at_sensor")
    with signed_in(console) as c:
        answer = c.post(f"/api/entries/{asked['seq']}/temperature",
                        json={"temperature_celsius": 36.7}).json()  # fmt: skip
        assert (answer["outcome"], answer["guard"]) == ("allow", console.guard_name)
        assert answer["temperature"]["source"] == "manual"
        missing = c.post("/api/entries/9999/temperature", json={"temperature_celsius": 36.7})
        assert (missing.status_code, missing.json()["error"]) == (404, "unknown_entry")
        assert c.post(f"/api/entries/{asked['seq']}/temperature",
                      json={"temperature_celsius": 99}).status_code == 422  # fmt: skip
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None
    assert (entry.guard, entry.temperature_source, entry.pass_id) == (
        console.guard_name, "manual", "HAND0001",
    )  # fmt: skip


VISITOR = {
    "name": "刘洋", "phone": "13800138000", "host_household_id": "H0301",
    "reason": "探望老人", "plate": "京A12345", "temperature_celsius": 36.5,
}  # fmt: skip


def test_a_visitor_is_registered_with_personal_data_kept_apart(console: ConsoleSite) -> None:
    with signed_in(console) as c:
        answer = c.post("/api/visitors", json=VISITOR).json()
    assert (answer["outcome"], answer["name"], answer["manual_identity"]) == (
        "allow", "刘*", "visitor",
    )  # fmt: skip
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None and entry.personal is not None
    assert entry.personal["phone"] == "13800138000"
    assert entry.personal_digest is not None
    assert "13800138000" not in json.dumps(answer, ensure_ascii=False)


def test_visitors_are_refused_in_lockdown_and_bad_forms_named(console: ConsoleSite) -> None:
    with signed_in(console, admin=True) as c:
        c.post("/api/mode", json={"mode": "lockdown"})
        answer = c.post("/api/visitors", json=VISITOR).json()
        assert (answer["outcome"], answer["reason"]) == ("deny", "lockdown_residents_only")
        bad = c.post("/api/visitors", json=VISITOR | {"phone": "call me"})
        assert (bad.status_code, bad.json()["error"], bad.json()["field"]) == (
            422, "invalid", "phone",
        )  # fmt: skip


def test_a_returnee_is_recorded(console: ConsoleSite) -> None:
    form = {
        "name": "陈静", "phone": "13900139000", "household_id": "H0305",
        "from_place": "武汉", "returned_on": "2026-02-20", "transport": "G507",
        "health": "well", "temperature_celsius": 36.4,
    }  # fmt: skip
    with signed_in(console) as c:
        answer = c.post("/api/returnees", json=form).json()
    assert (answer["outcome"], answer["manual_identity"]) == ("allow", "returnee")
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None and entry.personal is not None
    assert (entry.personal["from_place"], entry.personal["transport"]) == ("武汉", "G507")


def test_a_guard_overrides_a_refusal_with_a_reason(
    console: ConsoleSite, reader: EventReader
) -> None:
    console.revoke("GONE0001")
    console.gate.simulated_camera("in").show_pass(console.make_pass("GONE0001"))
    assert wait_for(reader.decisions)
    refused = reader.decisions()[0]
    assert (refused["reason"], refused["message_zh"]) == ("revoked", "通行证已作废")
    with signed_in(console) as c:
        answer = c.post(f"/api/entries/{refused['seq']}/override",
                        json={"reason": "medical_emergency", "text": "去医院"}).json()  # fmt: skip
        assert (answer["outcome"], answer["reason"], answer["guard"]) == (
            "allow", "guard_override", console.guard_name,
        )  # fmt: skip
        again = c.post(f"/api/entries/{answer['seq']}/override", json={"reason": "other"})
        assert (again.status_code, again.json()["error"]) == (409, "not_refused")
        assert c.post("/api/entries/1/override", json={"reason": "bribe"}).status_code == 422
    assert console.gate.signals.state().relay_released
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None and entry.pass_id == "GONE0001"
    assert (entry.outcome, entry.reason, entry.guard) == (
        "allow", "guard_override", console.guard_name,
    )  # fmt: skip
    # The chosen reason and the guard's own words, both kept with the entry.
    assert entry.note is not None
    assert "medical_emergency" in entry.note and "去医院" in entry.note
    assert str(refused["seq"]) in entry.note


def test_status_counts_today(console: ConsoleSite) -> None:
    with signed_in(console) as c:
        c.post("/api/visitors", json=VISITOR)
        status = c.get("/api/status").json()
    assert status["today"]["entries_in"] == 1
    assert status["mode"] == "screening"
    assert status["clock"]["synced"] is True
    assert set(status["devices"]["cameras"]) <= {"in", "out"}
    assert status["lists_stale"] is False
    assert status["disk"]["warn_free_mb"] == 200 and status["disk"]["free_mb"] > 0


@pytest.mark.parametrize("console_clock", [UnsyncedClock()], ids=["unsynced"])
def test_status_tells_of_an_unsynced_clock_and_a_disk_nearly_full(console: ConsoleSite) -> None:
    """Entries made meanwhile say their clock was not synced; the disk reading is live."""
    keeper = console.gate.housekeeper
    assert keeper is not None
    keeper.usage = lambda path: Usage(10_000 * MB, 9_950 * MB, 50 * MB)
    with signed_in(console) as c:
        answer = c.post("/api/visitors", json=VISITOR).json()
        status = c.get("/api/status").json()
    assert status["clock"]["synced"] is False
    assert (status["disk"]["low"], status["disk"]["free_mb"]) == (True, 50)
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None and entry.clock_synced is False


def test_status_shows_the_other_gates_alerts_of_the_last_day(console: ConsoleSite) -> None:
    now = datetime.now(UTC)

    def alert(gate: str, seq: int, ago: timedelta, **item: object) -> dict[str, object]:
        return {
            "gate_id": gate, "stream_id": f"{gate}-stream-0000000000000000000000000"[:36],
            "seq": seq, "at": (now - ago).isoformat(), "reason": "quarantined_exit",
            "household_id": "H0301", "unit": "3-2-501", "display_name": "张*明",
            "pass_id": "P7K2M9QX4T", **item,
        }  # fmt: skip

    items = [
        alert("G2", 7, timedelta(minutes=5)),
        alert("G3", 2, timedelta(hours=2), reason="host_in_isolation", pass_id=None),
        alert("G1", 4, timedelta(minutes=1)),  # this gate's own: not news here
        alert("G2", 1, timedelta(hours=25)),  # older than a day
    ]
    console.gate.ledger.state.apply_changes([ListChange("alerts", 40, items)])
    with signed_in(console) as c:
        shown = c.get("/api/status").json()["compound_alerts"]
    assert shown["count"] == 2
    assert [(a["gate_id"], a["seq"]) for a in shown["recent"]] == [("G2", 7), ("G3", 2)]
    first = shown["recent"][0]
    assert (first["unit"], first["display_name"], first["household_id"]) == (
        "3-2-501", "张*明", "H0301",
    )  # fmt: skip
    assert first["message_zh"] == messages.text(Reason.QUARANTINED_EXIT, "zh")
    assert shown["recent"][1]["message_en"] == messages.text(Reason.HOST_IN_ISOLATION, "en")


def test_the_api_is_described_by_openapi(console: ConsoleSite) -> None:
    with client(console) as c:
        schema = c.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/visitors", "/api/returnees", "/api/mode", "/api/events",
            "/api/entries/{seq}/override"} <= paths  # fmt: skip


def test_every_answer_forbids_loading_from_elsewhere(console: ConsoleSite) -> None:
    with client(console) as c:
        page = c.get("/")
        script = c.get("/static/app.js")
    assert page.status_code == script.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["cache-control"] == "no-cache"


def test_the_page_loads_nothing_from_the_internet() -> None:
    external = re.compile(
        r"""(src|href)=["']https?://|@import +url\(https?://|fetch\(["']https?://"""
    )
    for path in STATIC.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            assert not external.search(path.read_text(encoding="utf-8")), path
