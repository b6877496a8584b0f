"""Admin endpoints of the compounds: exit quotas and the conflicts between gates.

``GET /v1/admin/compounds`` lists every compound that has gates or a quota: its gates,
its quota and the quota's history; ``PUT /v1/admin/compounds/{compound}`` sets
(``{"exit_quota": "1/2", "by": "..."}``) or clears (``"exit_quota": null``) a quota;
``GET /v1/admin/quota-conflicts?compound=&since=&until=`` lists households let out
beyond their compound's quota (``sync.compound_lists.quota_conflicts``). All need the
admin bearer token, as the other admin endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sync import compound_lists, pull
from sync.issuer import Issuer
from sync.store.streams import StreamStore

IDENT = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$"
#: How far back conflicts are looked for when no ``since`` is given.
DEFAULT_CONFLICT_DAYS = 14

AdminAuth = Callable[[Request], JSONResponse | None]
ErrorReply = Callable[..., JSONResponse]


class QuotaBody(BaseModel):
    """A compound's quota to set ("N/D") or clear (null), and who does it."""

    model_config = ConfigDict(extra="forbid")

    exit_quota: Annotated[str, Field(pattern=r"^[1-9][0-9]?/[1-9][0-9]?$")] | None
    by: Annotated[str, Field(min_length=1, max_length=64)] = "admin"


def register(
    app: FastAPI,
    streams: StreamStore,
    issuer: Issuer,
    *,
    admin_auth: AdminAuth,
    error: ErrorReply,
    clock: Callable[[], datetime],
) -> None:
    """Add the compounds' admin routes to ``app``."""

    @app.get("/v1/admin/compounds", response_model=None)
    def compounds(request: Request) -> dict[str, Any] | Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        return {"compounds": compounds_json(streams, issuer)}

    @app.put("/v1/admin/compounds/{compound}", response_model=None)
    def set_quota(
        compound: Annotated[str, Path(pattern=IDENT)], body: QuotaBody, request: Request
    ) -> dict[str, Any] | Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        issuer.store.set_compound_quota(compound, body.exit_quota, by=body.by, now=clock())
        return {"compound": compound, "exit_quota": body.exit_quota}

    @app.get("/v1/admin/quota-conflicts", response_model=None)
    def conflicts(
        request: Request,
        compound: Annotated[str | None, Query(pattern=IDENT)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any] | Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        now = clock()
        try:
            start = (
                pull.parse_moment(since, end_of_day=False)
                if since
                else now - timedelta(days=DEFAULT_CONFLICT_DAYS)
            )
            end = pull.parse_moment(until, end_of_day=True) if until else now
        except ValueError:
            return error(422, "bad_query", "since and until are dates or ISO 8601 times")
        found = compound_lists.quota_conflicts(
            streams, issuer.store, compound=compound, since=start, until=end
        )
        return {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "conflicts": [compound_lists.conflict_json(c) for c in found],
        }


def compounds_json(streams: StreamStore, issuer: Issuer) -> list[dict[str, Any]]:
    """Every compound with gates or a quota: gates, quota, who set it, its history."""
    gates: dict[str, list[str]] = {}
    for view in streams.gates():
        if view.compound is not None:
            gates.setdefault(view.compound, []).append(view.gate_id)
    quotas = {row.compound: row for row in issuer.store.compound_quotas()}
    history: dict[str, list[dict[str, Any]]] = {}
    for row in issuer.store.compound_quota_history():
        history.setdefault(row.compound, []).append(
            {"exit_quota": row.quota, "set_at": row.set_at, "set_by": row.set_by}
        )
    return [
        {
            "compound": name,
            "gates": gates.get(name, []),
            "exit_quota": quotas[name].quota if name in quotas else None,
            "set_at": quotas[name].set_at if name in quotas else None,
            "set_by": quotas[name].set_by if name in quotas else None,
            "history": history.get(name, []),
        }
        for name in sorted(set(gates) | set(quotas) | set(history))
    ]
