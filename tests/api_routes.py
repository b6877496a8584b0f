"""Every (method, path) an app serves, read from the app itself, for the authorization
matrices (tests/console/test_authorization.py, tests/sync/test_authorization.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route


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
