"""More of the console's API through a real server: resident lookup by name and by unit,
list freshness and the health the status reports, shifts that end, a console that stops."""

from __future__ import annotations

import threading

import httpx

from tests.console.conftest import ConsoleSite
from tests.console.test_api import signed_in
from tests.limits import PATIENCE_S


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
