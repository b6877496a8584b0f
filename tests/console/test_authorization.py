"""Who may call what at the gate console: every route, as anonymous, a guard, an admin,
and a guard signed in at another gate, each answered exactly as declared.

The routes are read from the app (tests/api_routes.py): a new endpoint fails this test
until its door is declared in DOORS. Real uvicorn servers on 127.0.0.1, two gates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.assemble import open_gate
from gate_agent.console.deps import COOKIE
from gate_agent.console.server import ConsoleServer, console_app, roster_path
from tests.api_routes import OK, answer_class, matrix_table, served_routes
from tests.console.conftest import (
    GUARD,
    ConsoleSite,
    SyncedClock,
    site_config,
    trust,
)

# The doors: "open" to anyone; "guard": any signed-in guard or admin of this gate, with
# the session's CSRF token on writes; "admin": an admin of this gate, likewise.
DOORS: dict[tuple[str, str], str] = {
    ("GET", "/"): "open",
    ("GET", "/openapi.json"): "open",
    ("GET", "/static"): "open",
    ("GET", "/healthz"): "open",
    ("GET", "/metrics"): "open",  # no metrics token configured (test_metrics tests one)
    ("GET", "/api/guards"): "open",  # the sign-in page lists who is on shift
    ("GET", "/api/messages"): "open",  # the page's words, before sign-in too
    ("POST", "/api/session/guard"): "open",  # signing in (with a right PIN)
    ("POST", "/api/session/admin"): "open",  # signing in (with the admin token)
    ("GET", "/api/session"): "guard",
    ("DELETE", "/api/session"): "guard",
    ("GET", "/api/events"): "guard",
    ("GET", "/api/status"): "guard",
    ("GET", "/api/residents"): "guard",
    ("POST", "/api/entries/manual"): "guard",
    ("POST", "/api/entries/{seq}/temperature"): "guard",
    ("POST", "/api/entries/{seq}/override"): "guard",
    ("POST", "/api/visitors"): "guard",
    ("POST", "/api/returnees"): "guard",
    ("POST", "/api/mode"): "admin",
}

SIGNED_OUT = (401, "signed_out")
#: door -> principal -> the answer it must get.
EXPECT: dict[str, dict[str, Any]] = {
    "open": {"anonymous": OK, "guard": OK, "admin": OK, "other_gate": OK},
    "guard": {"anonymous": SIGNED_OUT, "guard": OK, "admin": OK, "other_gate": SIGNED_OUT},
    "admin": {
        "anonymous": SIGNED_OUT,
        "guard": (403, "admins_only"),
        "admin": OK,
        "other_gate": SIGNED_OUT,
    },
}


@dataclass
class Principal:
    """Who calls: the headers their browser sends (a cookie and its page's CSRF token)."""

    name: str
    headers: dict[str, str]


def requests_for(site: ConsoleSite) -> dict[tuple[str, str], tuple[str, Any]]:
    """A minimal valid request for each route: its URL and JSON body."""
    visitor = {
        "name": "李雷",
        "phone": "13800000000",
        "host_household_id": "H0301",
        "reason": "探亲",
        "temperature_celsius": 36.5,
    }
    returnee = {"name": "李雷", "phone": "13800000000", "household_id": "H0301",
                "from_place": "武汉", "returned_on": "2026-01-01", "health": "well",
                "temperature_celsius": 36.5}  # fmt: skip
    return {
        ("GET", "/static"): ("/static/index.html", None),
        ("GET", "/api/residents"): ("/api/residents?unit=3", None),
        ("POST", "/api/session/guard"): (
            "/api/session/guard",
            {"name": site.guard_name, "pin": site.guard_pin},
        ),
        ("POST", "/api/session/admin"): ("/api/session/admin", {"token": site.admin_token}),
        ("POST", "/api/entries/manual"): (
            "/api/entries/manual",
            {"pass_id": "NOSUCHPASS", "direction": "in"},
        ),
        ("POST", "/api/entries/{seq}/temperature"): (
            "/api/entries/1/temperature",
            {"temperature_celsius": 36.5},
        ),
        ("POST", "/api/entries/{seq}/override"): (
            "/api/entries/1/override",
            {"reason": "known_resident"},
        ),
        ("POST", "/api/visitors"): ("/api/visitors", visitor),
        ("POST", "/api/returnees"): ("/api/returnees", returnee),
        ("POST", "/api/mode"): ("/api/mode", {"mode": "screening"}),
    }


def signed_in(url: str, body: dict[str, str], path: str) -> dict[str, str]:
    reply = httpx.post(f"{url}{path}", json=body)
    assert reply.status_code == 200, reply.text
    return {"Cookie": f"{COOKIE}={reply.cookies[COOKIE]}", "X-CSRF-Token": reply.json()["csrf"]}


def guard_headers(site: ConsoleSite) -> dict[str, str]:
    body = {"name": site.guard_name, "pin": site.guard_pin}
    return signed_in(site.url, body, "/api/session/guard")


def admin_headers(site: ConsoleSite) -> dict[str, str]:
    return signed_in(site.url, {"token": site.admin_token}, "/api/session/admin")


@pytest.fixture
def other_gate(tmp_path: Path) -> Iterator[ConsoleSite]:
    """A second gate with its own console (same admin token, its own sessions)."""
    (tmp_path / "other").mkdir()
    config = site_config(tmp_path / "other")
    clock = SyncedClock()
    pin = add_guard(config.gate.data_dir, clock)
    with open_gate(config, clock=clock) as gate:
        trust(gate)
        app = console_app(gate, config.console, clock)
        server = ConsoleServer(app, "127.0.0.1", 0)
        server.start()
        try:
            yield ConsoleSite(server.url, gate, GUARD, pin, "", server, app)
        finally:
            server.stop()


def add_guard(data_dir: Path, clock: SyncedClock) -> str:
    from gate_agent.console.auth import Roster

    return Roster(roster_path(data_dir)).add(GUARD, until=clock.now() + timedelta(hours=8))


def call(
    client: httpx.Client, site: ConsoleSite, method: str, path: str, principal: Principal
) -> httpx.Response:
    url, body = requests_for(site).get((method, path), (path, None))
    headers = dict(principal.headers)
    if (method, path) == ("DELETE", "/api/session") and principal.name in ("guard", "admin"):
        # Signing out ends the session: a fresh one of the same principal's, so the
        # other rows keep theirs.
        headers = guard_headers(site) if principal.name == "guard" else admin_headers(site)
    try:
        if path == "/api/events":  # a stream that never ends: its first answer only
            with client.stream(method, url, headers=headers) as reply:
                if reply.status_code != 200:
                    reply.read()  # a refusal is a short JSON body
                return reply
        return client.request(method, url, json=body, headers=headers)
    finally:
        client.cookies.clear()  # a sign-in's cookie is not the next principal's


def test_every_route_has_a_declared_door(console: ConsoleSite, tmp_path: Path) -> None:
    app = console_app(console.gate, site_config(tmp_path).console, SyncedClock())
    assert served_routes(app) == set(DOORS), "declare the new route's door in DOORS"


def test_every_route_answers_each_principal_as_declared(
    console: ConsoleSite, other_gate: ConsoleSite
) -> None:
    principals = [
        Principal("anonymous", {}),
        Principal("guard", guard_headers(console)),
        Principal("admin", admin_headers(console)),
        Principal("other_gate", guard_headers(other_gate)),
    ]
    wrong = []
    with httpx.Client(base_url=console.url, timeout=15) as client:
        for ((method, path), door), principal in itertools.product(
            sorted(DOORS.items()), principals
        ):
            got = answer_class(call(client, console, method, path, principal))
            if got != EXPECT[door][principal.name]:
                wrong.append((method, path, principal.name, got))
    assert wrong == []


def test_writes_from_a_cookie_session_without_its_csrf_token_are_refused(
    console: ConsoleSite,
) -> None:
    writes = [(m, p) for (m, p), door in DOORS.items() if door != "open" and m != "GET"]
    assert len(writes) >= 7
    with httpx.Client(base_url=console.url, timeout=15) as client:
        for principal in ("guard", "admin"):
            headers = guard_headers(console) if principal == "guard" else admin_headers(console)
            for (method, path), csrf in itertools.product(writes, (None, "not-the-token")):
                forged = {"Cookie": headers["Cookie"]}
                if csrf is not None:
                    forged["X-CSRF-Token"] = csrf
                reply = call(client, console, method, path, Principal("forger", forged))
                assert answer_class(reply) == (403, "bad_csrf"), (principal, method, path)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "console.md"
COLUMNS = {"anonymous": "anonymous", "guard": "guard", "admin": "admin",
           "other_gate": "a session of another gate"}  # fmt: skip
ROWS = {"open": "open: the page, its words, sign-in, health, metrics",
        "guard": "guard: session, events, status, residents, every flow",
        "admin": "admin: the gate mode"}  # fmt: skip


def test_the_docs_table_is_the_matrix() -> None:
    table = matrix_table(EXPECT, COLUMNS, ROWS)
    assert table in DOCS.read_text(encoding="utf-8"), f"docs/console.md wants:\n{table}"
