"""Every (method, path) an app serves, read from the app itself, for the authorization
matrices (tests/console/test_authorization.py, tests/sync/test_authorization.py)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

#: Past the door: anything but 401 and 403, and never a server error (what the flow
#: answers past the door, schemathesis and each flow's own tests check).
OK = "allowed"


def answer_class(reply: httpx.Response) -> Any:
    """What a matrix compares: the refusal and its code, or OK."""
    if reply.status_code in (401, 403):
        return (reply.status_code, reply.json().get("error"))
    if reply.status_code >= 500:
        return (reply.status_code, "server error")
    return OK


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Routes, mounts (as GET) and included routers' routes, plus the OpenAPI document's."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, APIRoute | Route):
                found.update((m, route.path) for m in route.methods or () if m != "HEAD")
            elif isinstance(route, Mount):
                found.add(("GET", route.path))
            elif hasattr(route, "original_router"):  # FastAPI's included router (newer)
                walk(route.original_router.routes)
            else:
                raise AssertionError(f"a route of a kind this test does not know: {route!r}")

    walk(app.routes)
    for path, operations in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    return found


def matrix_table(
    expect: dict[str, dict[str, Any]], principals: dict[str, str], doors: dict[str, str]
) -> str:
    """The doc's "who may call what" table for an expectation matrix: a row per door
    (named with its routes' description), a column per principal."""
    header = ["door", *principals.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for door, described in doors.items():
        cells = [
            "allowed" if (got := expect[door][p]) == "allowed" else f"{got[0]} `{got[1]}`"
            for p in principals
        ]
        lines.append("| " + " | ".join([described, *cells]) + " |")
    return "\n".join(lines) + "\n"
