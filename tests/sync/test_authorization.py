"""Who may call what at the centre: every route, as anonymous, with the admin token,
in an admin's session, with gate A's token and with gate B's token (on gate A's routes),
each answered exactly as declared.

The routes are read from the app (tests/api_routes.py): a new endpoint fails this test
until its door is declared in ``door``. Real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.server.admin_web import COOKIE
from sync.server.app import create_app
from tests.api_routes import OK, answer_class, matrix_table, served_routes
from tests.sync.admin_helpers import NAME, PASSWORD, Site, admin_site
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE, OTHER_GATE

#: Routes open to anyone: the page's shell and assets (no data in them), health, and the
#: two doors that take their own credential in the body (a one-time code, a password).
OPEN = {
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/static"),
    ("GET", "/healthz"),
    ("POST", "/v1/gates/enrol"),
    ("POST", "/v1/admin/session"),
}


def door(method: str, path: str) -> str:
    """The door of a route: open, admin, gate (its own gate's token) or metrics."""
    if (method, path) in OPEN:
        return "open"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/admin/"):
        return "admin"
    if path.startswith("/v1/gates/{gate}/"):
        return "gate"
    raise AssertionError(f"{method} {path}: declare its door in this test")


UNAUTHORIZED = (401, "unauthorized")
#: door -> principal -> the answer it must get.
EXPECT: dict[str, dict[str, Any]] = {
    "open": dict.fromkeys(("anonymous", "admin_token", "admin_session", "gate_a", "gate_b"), OK),
    "admin": {
        "anonymous": UNAUTHORIZED,
        "admin_token": OK,
        "admin_session": OK,
        "gate_a": UNAUTHORIZED,  # a gate's token is not the admin's
        "gate_b": UNAUTHORIZED,
    },
    "gate": {
        "anonymous": UNAUTHORIZED,
        "admin_token": UNAUTHORIZED,  # the admin token is no gate's token
        "admin_session": UNAUTHORIZED,
        "gate_a": OK,
        "gate_b": (403, "forbidden"),  # another gate's token on gate A's routes
    },
    "metrics": {
        "anonymous": UNAUTHORIZED,
        "admin_token": OK,
        "admin_session": UNAUTHORIZED,  # scrapers carry a token; a browser has no use for it
        "gate_a": UNAUTHORIZED,
        "gate_b": UNAUTHORIZED,
    },
}


@dataclass
class Principal:
    """Who calls: the headers they send."""

    name: str
    headers: dict[str, str]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with admin_site(tmp_path / "central") as opened:
        yield opened


def enrol(site: Site, gate_id: str) -> str:
    code = site.centre.code(gate_id, site.clock())
    reply = httpx.post(f"{site.url}/v1/gates/enrol", json={"gate_id": gate_id, "code": code})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def session(site: Site) -> dict[str, str]:
    client, csrf = site.signed_in()
    with closing(client):
        return {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}", "X-CSRF-Token": csrf}


STREAM = str(uuid.UUID(int=7))
_enrolments = itertools.count()


def request_for(site: Site, method: str, path: str) -> tuple[str, Any]:
    """A request for the route: its URL (path parameters filled) and JSON body.

    Gate routes are gate A's; admin routes get ids that fit every path pattern and an
    empty body (past the door, the flow's own answer, often 404 or 422, is what comes).
    """
    if (method, path) == ("POST", "/v1/gates/enrol"):
        gate_id = f"enrol-{next(_enrolments)}"  # a new gate each time: A keeps its token
        return path, {"gate_id": gate_id, "code": site.centre.code(gate_id, site.clock())}
    if (method, path) == ("POST", "/v1/admin/session"):
        return path, {"name": NAME, "password": PASSWORD}
    if path == "/admin/static":
        return "/admin/index.html", None
    url = path.replace("{gate}", GATE).replace("{stream}", STREAM)
    return re.sub(r"\{[^}]+\}", "0123456789abcdef", url), ({} if method != "GET" else None)


def call(
    client: httpx.Client, site: Site, method: str, path: str, principal: Principal
) -> httpx.Response:
    url, body = request_for(site, method, path)
    headers = principal.headers
    if (method, path) == ("DELETE", "/v1/admin/session") and principal.name == "admin_session":
        headers = session(site)  # signing out ends a session: a fresh one, not the row's
    try:
        return client.request(method, url, json=body, headers=headers)
    finally:
        client.cookies.clear()  # a sign-in's cookie is not the next principal's


def routes(site: Site) -> list[tuple[str, str]]:
    app = create_app(site.centre.streams, site.centre.issuer, ADMIN_TOKEN, site.clock)
    return sorted(served_routes(app))


def test_every_route_has_a_declared_door(site: Site) -> None:
    found = routes(site)
    assert len(found) >= 40
    assert {door(m, p) for m, p in found} == set(EXPECT)


def test_every_route_answers_each_principal_as_declared(site: Site) -> None:
    principals = [
        Principal("anonymous", {}),
        Principal("admin_token", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        Principal("admin_session", session(site)),
        Principal("gate_a", {"Authorization": f"Bearer {enrol(site, GATE)}"}),
        Principal("gate_b", {"Authorization": f"Bearer {enrol(site, OTHER_GATE)}"}),
    ]
    wrong = []
    with site.client() as client:
        for (method, path), principal in itertools.product(routes(site), principals):
            got = answer_class(call(client, site, method, path, principal))
            if got != EXPECT[door(method, path)][principal.name]:
                wrong.append((method, path, principal.name, got))
    assert wrong == []


DOCS = Path(__file__).resolve().parents[2] / "docs" / "sync-protocol.md"
COLUMNS = {"anonymous": "anonymous", "admin_token": "admin token",
           "admin_session": "admin session", "gate_a": "gate A's token",
           "gate_b": "gate B's token"}  # fmt: skip
ROWS = {"open": "open: the page, health, enrol (a code), sign-in (a password)",
        "admin": "`/v1/admin/...`", "gate": "gate A's `/v1/gates/A/...`",
        "metrics": "`/metrics`"}  # fmt: skip


def test_the_docs_table_is_the_matrix() -> None:
    table = matrix_table(EXPECT, COLUMNS, ROWS)
    assert table in DOCS.read_text(encoding="utf-8"), f"docs/sync-protocol.md wants:\n{table}"
