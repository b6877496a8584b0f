"""More of the console's API through a real server: resident lookup by name and by unit,
list freshness and the health the status reports, shifts that end, a console that stops."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest

from tests.console.conftest import ConsoleSite, JumpingClock
from tests.console.test_api import VISITOR, client, signed_in
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
