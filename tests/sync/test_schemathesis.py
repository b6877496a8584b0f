"""Schemathesis against the central server's OpenAPI document (real uvicorn, 127.0.0.1).

Anonymous, with the admin token, and with a gate's token on its own routes: no 5xx, and
every answer (status, content type, body) is one the document declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.server.app import create_app
from tests.schemathesis_run import failures
from tests.sync.admin_helpers import Site, admin_site
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with admin_site(tmp_path_factory.mktemp("centre")) as opened:
        yield opened


def spec(site: Site) -> dict[str, Any]:
    """The document the server's app describes itself with (it does not serve it)."""
    centre = site.centre
    return create_app(centre.streams, centre.issuer, ADMIN_TOKEN, site.clock).openapi()


def test_anonymous_calls_get_only_documented_answers(site: Site) -> None:
    assert failures(spec(site), site.url, max_examples=1) == []


def test_the_admin_token_gets_only_documented_answers(site: Site) -> None:
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    only = lambda method, path: path.startswith("/v1/admin")  # noqa: E731
    assert failures(spec(site), site.url, headers=bearer, only=only) == []


def test_a_gate_token_on_its_own_routes_gets_only_documented_answers(site: Site) -> None:
    code = site.centre.code(GATE, site.clock())
    enrolled = httpx.post(f"{site.url}/v1/gates/enrol", json={"gate_id": GATE, "code": code})
    assert enrolled.status_code == 200, enrolled.text
    token = {"Authorization": f"Bearer {enrolled.json()['token']}"}

    def own_gate(case: Any) -> Any:
        if case.path_parameters and "gate" in case.path_parameters:
            case.path_parameters["gate"] = GATE
        return case

    only = lambda method, path: path.startswith("/v1/gates/{gate}")  # noqa: E731
    found = failures(spec(site), site.url, headers=token, only=only, prepare=own_gate)
    assert found == []
