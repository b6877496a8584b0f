"""More of the console's API through a real server: resident lookup by name and by unit,
list freshness and the health the status reports, shifts that end, a console that stops."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.console.conftest import ConsoleSite, JumpingClock
from tests.console.test_api import VISITOR, client, signed_in, wait_for
from tests.limits import PATIENCE_S


def read_events(
    c: httpx.Client, ended: threading.Event, opened: threading.Event | None = None
) -> None:
    """Read /api/events to its end (a page's stream), then set ``ended``."""
    try:
        with c.stream("GET", "/api/events", timeout=PATIENCE_S) as response:
            for _ in response.iter_lines():
                if opened is not None:
                    opened.set()
    except httpx.HTTPError:
        pass
    ended.set()


def test_stopping_the_console_ends_the_pages_event_streams(console: ConsoleSite) -> None:
    """A page's open stream must not keep a stopped console serving (nor its stop waiting)."""
    opened, ended = threading.Event(), threading.Event()
    lines: list[str] = []

    def read(c: httpx.Client) -> None:
        try:
            with c.stream("GET", "/api/events", timeout=PATIENCE_S) as response:
                for line in response.iter_lines():
                    lines.append(line)
                    opened.set()
        except httpx.HTTPError as exc:
            lines.append(repr(exc))
        ended.set()

    with signed_in(console) as c:
        reader = threading.Thread(target=read, args=(c,), daemon=True)
        reader.start()
        assert opened.wait(PATIENCE_S)
        console.stop_serving()
        assert not console.server.running
        assert ended.wait(PATIENCE_S), "the stream outlived the console"
    assert lines[0] == "retry: 2000"


@pytest.mark.parametrize("console_clock", [JumpingClock()], ids=["jumping"])
def test_a_guards_pin_and_session_end_with_the_shift(console: ConsoleSite) -> None:
    """The roster's ``until`` (8 h here) ends the shift, though a sign-in lasts 12 h."""
    clock = console.gate.station.clock
    assert isinstance(clock, JumpingClock)
    assert console.app.state.console.sessions.roster.on_shift(clock.now())[0].until > clock.now()
    stream_ended = threading.Event()
    with signed_in(console) as guard, signed_in(console, admin=True) as admin:
        reader = threading.Thread(target=read_events, args=(guard, stream_ended), daemon=True)
        reader.start()
        clock.offset = timedelta(hours=7, minutes=59)  # still on shift
        assert guard.get("/api/status").status_code == 200
        assert guard.post("/api/visitors", json=VISITOR).json()["guard"] == console.guard_name
        assert not stream_ended.is_set()

        clock.offset = timedelta(hours=8, minutes=1)  # the shift is over
        refused = guard.get("/api/status")
        assert (refused.status_code, refused.json()["error"]) == (401, "signed_out")
        assert guard.post("/api/visitors", json=VISITOR).status_code == 401
        assert guard.get("/api/session").status_code == 401
        assert stream_ended.wait(PATIENCE_S), "the live stream outlived the shift"
        assert admin.get("/api/status").status_code == 200  # an admin's token has no shift
    with client(console) as c:
        assert c.get("/api/guards").json() == {"guards": []}
        body = {"name": console.guard_name, "pin": console.guard_pin}
        late = c.post("/api/session/guard", json=body)
        assert (late.status_code, late.json()["error"]) == (401, "bad_pin")


def directory(site: ConsoleSite) -> None:
    """The centre's resident directory: three households in buildings 3 and 30."""
    now = datetime.now(UTC).replace(microsecond=0)
    common = {
        "kind": "resident", "scope": "compound:C1", "exit_quota": None,
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
    }  # fmt: skip
    people = [
        ("DIRA0001", "H0301", "3-2-501", "张*明"),
        ("DIRA0002", "H0301", "3-2-501", "李*"),
        ("DIRB0001", "H0302", "3-1-101", "张*华"),
        ("DIRC0001", "H3001", "30-1-101", "王*"),
    ]
    items = [
        common | {"pass_id": p, "household_id": h, "unit": u, "display_name": n}
        for p, h, u, n in people
    ]
    site.gate.ledger.state.apply_snapshots({"directory": (1, items)})


def found(c: httpx.Client, **query: str) -> list[tuple[str, str, str]]:
    answer = c.get("/api/residents", params=query)
    assert answer.status_code == 200, answer.text
    return [(r["name"], r["unit"], r["pass_id"]) for r in answer.json()["residents"]]


def test_a_resident_is_found_by_masked_name_or_unit_and_recorded_by_hand(
    console: ConsoleSite,
) -> None:
    directory(console)
    with signed_in(console) as c:
        assert found(c, name="张") == [
            ("张*华", "3-1-101", "DIRB0001"), ("张*明", "3-2-501", "DIRA0001"),
        ]  # fmt: skip
        assert found(c, name="张三明") == [("张*明", "3-2-501", "DIRA0001")]  # typed in full
        assert found(c, name="张*明") == [("张*明", "3-2-501", "DIRA0001")]
        assert found(c, name="赵") == []
        assert [p for _, _, p in found(c, unit="3")] == ["DIRB0001", "DIRA0001", "DIRA0002"]
        assert [p for _, _, p in found(c, unit="3-2")] == ["DIRA0001", "DIRA0002"]
        assert found(c, unit="3-2-501", name="李") == [("李*", "3-2-501", "DIRA0002")]
        assert found(c, unit="30-1-101") == [("王*", "30-1-101", "DIRC0001")]
        whole = c.get("/api/residents", params={"name": "李"}).json()["residents"][0]
        assert whole == {"pass_id": "DIRA0002", "name": "李*", "unit": "3-2-501",
                         "kind": "resident", "household_id": "H0301"}  # fmt: skip
        neither = c.get("/api/residents")
        assert (neither.status_code, neither.json()["error"]) == (422, "unit_or_name")

        # 张*明, found by name, goes out with a handheld 36.4 ℃.
        body = {"pass_id": "DIRA0001", "direction": "out", "temperature_celsius": 36.4}
        answer = c.post("/api/entries/manual", json=body).json()
        unknown = c.post("/api/entries/manual", json=body | {"pass_id": "NOSUCH01"})
        assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_pass")
    assert (answer["outcome"], answer["name"], answer["unit"], answer["guard"]) == (
        "allow", "张*明", "3-2-501", console.guard_name,
    )  # fmt: skip
    assert answer["direction"] == "out"
    assert answer["temperature"]["celsius"] == pytest.approx(36.4)
    entry = console.gate.ledger.get(answer["seq"])
    assert entry is not None
    assert (entry.direction, entry.pass_id, entry.household_id, entry.guard) == (
        "out", "DIRA0001", "H0301", console.guard_name,
    )  # fmt: skip
    assert entry.temperature_celsius == pytest.approx(36.4)
    assert entry.temperature_source == "manual"
    assert console.gate.ledger.count() == 1  # the unknown pass recorded nothing


@pytest.mark.parametrize("console_overrides", [{"gate": {"lists_max_age_hours": 1}}])
@pytest.mark.parametrize("console_clock", [JumpingClock()], ids=["jumping"])
def test_status_says_when_the_lists_are_older_than_allowed(console: ConsoleSite) -> None:
    clock = console.gate.station.clock
    assert isinstance(clock, JumpingClock)
    required = ("revocations", "isolations", "keys")  # the lists a decision depends on
    with signed_in(console) as c:
        fresh = c.get("/api/status").json()
        clock.offset = timedelta(hours=3)  # no word from the centre for three hours
        stale = c.get("/api/status").json()
        console.revoke("LATE0001")  # the centre's next revocations arrive
        one_new = c.get("/api/status").json()
    assert fresh["lists_stale"] is False
    for name in required:
        item = fresh["lists"][name]
        assert (item["version"], item["stale"]) == (1, False)
        assert 0 <= item["age_seconds"] < 3600
    assert stale["lists_stale"] is True
    for name in required:
        item = stale["lists"][name]
        assert (item["version"], item["stale"]) == (1, True)
        assert 3 * 3600 <= item["age_seconds"] < 4 * 3600
    assert one_new["lists"]["revocations"]["version"] == 2
    assert one_new["lists"]["keys"]["stale"] is True  # the others are still old
    assert one_new["lists_stale"] is True


def test_status_tells_of_sync_and_device_health(console: ConsoleSite) -> None:
    """A gate not set up to sync keeps its entries; a device that fails shows as failing."""
    with signed_in(console) as c:
        c.post("/api/visitors", json=VISITOR)
        c.post("/api/visitors", json=VISITOR | {"name": "刘洋洋"})

        def devices() -> dict[str, Any]:
            return dict(c.get("/api/status").json()["devices"])

        assert wait_for(lambda: devices()["thermometer"]["ok"])
        healthy = c.get("/api/status").json()
        console.gate.simulated_camera("out").unplug()
        console.gate.simulated_thermometer().unplug()
        assert wait_for(lambda: not devices()["cameras"]["out"]["ok"])
        assert wait_for(lambda: not devices()["thermometer"]["ok"])
        failing = devices()
        console.gate.simulated_camera("out").plug()
        console.gate.simulated_thermometer().plug()
    assert healthy["sync"] == {
        "configured": False, "running": False, "backlog": 2, "acked_through": 0,
        "last_success": None,
    }  # fmt: skip
    cameras = healthy["devices"]["cameras"]
    assert set(cameras) == {"in", "out"}
    assert all((lane["ok"], lane["state"]) == (True, "streaming") for lane in cameras.values())
    assert healthy["devices"]["thermometer"]["ok"] is True
    assert healthy["devices"]["thermometer"]["state"]
    assert (failing["cameras"]["out"]["state"], failing["cameras"]["in"]["ok"]) == (
        "unplugged", True,
    )  # fmt: skip
    assert failing["cameras"]["out"]["detail"] == "camera unplugged"
    assert failing["thermometer"]["ok"] is False
    assert failing["thermometer"]["state"] != healthy["devices"]["thermometer"]["state"]
