"""The admin page's JSON endpoints for visitor passes (admin bearer token on every one).

``GET /v1/admin/visitors`` (``?pending=true``, ``?host=H``), ``POST /v1/admin/visitors``
(a request), ``POST /v1/admin/visitors/issue`` (issued at once),
``GET /v1/admin/visitors/{id}`` (with its history),
``POST /v1/admin/visitors/{id}/approve|reject|cancel``, and the pass of an approved
request as text (``GET .../{id}/pass``) or as a phone card (``GET .../{id}/pass.png``).
Refusals answer ``{"error": code, "detail": ...}`` with the codes of ``sync.visitors``.
Who did it (``requested_by``, ``decided_by``) is the signed-in admin's name; with the
bearer token it is the body's ``by``, else ``admin-token``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from gate_agent.core.passes import PassFieldError
from sync import visitors
from sync.cards import DEFAULT_TZ, card_for, store_keyring, timezone
from sync.errors import CardRefused, NotFound, VisitorRefused
from sync.issuer import Issuer
from sync.server.admin_web import acting_admin
from sync.server.documented import success
from sync.store.visitors_sql import VisitorDraft

AdminAuth = Callable[[Request], JSONResponse | None]
Clock = Callable[[], datetime]
#: Refusals that are about the request's state rather than what was sent.
_CONFLICTS = frozenset({"already_decided", "host_in_isolation"})
_MAX_BODY_BYTES = 16_384


class VisitIn(BaseModel):
    """A visit as the admin page sends it; ``until`` or ``hours`` ends it."""

    model_config = ConfigDict(extra="forbid")

    host: Annotated[str, Field(min_length=1, max_length=24)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    phone: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    plate: Annotated[str, Field(max_length=200)] = ""
    start: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    hours: Annotated[int, Field(ge=1, le=24 * 7)] | None = None
    once: bool = False
    by: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class DecisionIn(BaseModel):
    """Who decides (the session's admin overrides it), and why (needed to reject or cancel)."""

    model_config = ConfigDict(extra="forbid")

    by: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    reason: Annotated[str, Field(max_length=200)] = ""


def router(issuer: Issuer, admin_auth: AdminAuth, clock: Clock) -> APIRouter:
    """The visitor endpoints over ``issuer``'s store, behind ``admin_auth``."""
    api = APIRouter(prefix="/v1/admin/visitors")
    store = issuer.store

    @api.get("", response_model=None)
    def listing(
        request: Request,
        pending: bool = False,
        host: Annotated[str | None, Query(max_length=24)] = None,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        rows = store.visitor_requests(pending=pending, household_id=host)
        return _json({"requests": [visitors.request_json(row) for row in rows]})

    @api.post("", response_model=None)
    async def ask(request: Request) -> Response:
        return await _act(
            request, lambda body: _asked(issuer, _visit(body, clock(), request), clock())
        )

    @api.post("/issue", response_model=None)
    async def issue(request: Request) -> Response:
        def act(body: bytes) -> Response:
            now = clock()
            row, text = visitors.issue(issuer, _visit(body, now, request), now)
            return _json({"request": visitors.request_json(row), "text": text}, 201)

        return await _act(request, act)

    @api.get("/{request_id}", response_model=None)
    def one(request: Request, request_id: int) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        return _guarded(lambda: _json(_with_history(issuer, request_id)))

    @api.post("/{request_id}/approve", response_model=None)
    async def approve(request: Request, request_id: int) -> Response:
        def act(body: bytes) -> Response:
            decision = _decision(body)
            by = acting_admin(request, decision.by)
            row, text = visitors.approve(issuer, request_id, by, clock())
            return _json({"request": visitors.request_json(row), "text": text})

        return await _act(request, act)

    @api.post("/{request_id}/reject", response_model=None)
    async def reject(request: Request, request_id: int) -> Response:
        def act(body: bytes) -> Response:
            decision = _decision(body)
            by = acting_admin(request, decision.by)
            row = visitors.reject(issuer, request_id, decision.reason, by, clock())
            return _json({"request": visitors.request_json(row)})

        return await _act(request, act)

    @api.post("/{request_id}/cancel", response_model=None)
    async def cancel(request: Request, request_id: int) -> Response:
        def act(body: bytes) -> Response:
            decision = _decision(body)
            by = acting_admin(request, decision.by)
            row = visitors.cancel(issuer, request_id, decision.reason, by, clock())
            return _json({"request": visitors.request_json(row)})

        return await _act(request, act)

    @api.get("/{request_id}/pass", response_model=None)
    def pass_text(request: Request, request_id: int) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused

        def answer() -> Response:
            row = store.get_pass(_pass_id(issuer, request_id))
            return _json(
                {"pass_id": row.pass_id, "text": row.text, "revoked": bool(row.revoked_at)}
            )

        return _guarded(answer)

    @api.get("/{request_id}/pass.png", response_model=None, responses=success("image/png"))
    def pass_png(
        request: Request,
        request_id: int,
        tz: Annotated[str, Query(max_length=64)] = DEFAULT_TZ,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        from sync.card_png import find_cjk_font, render_png  # noqa: PLC0415 - Pillow here only

        def answer() -> Response:
            row = store.get_pass(_pass_id(issuer, request_id))
            card = card_for(row, store_keyring(store), clock())
            png = render_png(card, timezone(tz), find_cjk_font())
            return Response(png, media_type="image/png")

        return _guarded(answer)

    async def _act(request: Request, act: Callable[[bytes], Response]) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return _error(413, "too_large", f"the body is over {_MAX_BODY_BYTES} bytes")
        # Signing and the store's transaction are blocking work: off the event loop.
        return await run_in_threadpool(_guarded, lambda: act(body))

    return api


def _asked(issuer: Issuer, draft: VisitorDraft, now: datetime) -> Response:
    row = visitors.request(issuer, draft, now)
    return _json({"request": visitors.request_json(row)}, 201)


def _visit(body: bytes, now: datetime, request: Request) -> VisitorDraft:
    visit = VisitIn.model_validate_json(body)
    start = visit.start or now
    if start.tzinfo is None:
        raise ValueError("from needs a UTC offset")
    if (visit.until is None) == (visit.hours is None):
        raise ValueError("give one of until and hours")
    end = visit.until if visit.until is not None else start + timedelta(hours=visit.hours or 0)
    if end.tzinfo is None:
        raise ValueError("until needs a UTC offset")
    return VisitorDraft(
        household_id=visit.host,
        name=visit.name,
        phone=visit.phone,
        reason=visit.reason,
        plate=visit.plate,
        start=start,
        end=end,
        once=visit.once,
        requested_by=acting_admin(request, visit.by),
    )


def _decision(body: bytes) -> DecisionIn:
    return DecisionIn.model_validate_json(body or b"{}")


def _pass_id(issuer: Issuer, request_id: int) -> str:
    found = issuer.store.visitor_request(request_id)
    if found.pass_id is None:
        raise VisitorRefused("no_pass", f"visitor request {request_id} is {found.state}: no pass")
    return found.pass_id


def _with_history(issuer: Issuer, request_id: int) -> dict[str, Any]:
    row = issuer.store.visitor_request(request_id)
    events = issuer.store.visitor_history(request_id)
    return {
        "request": visitors.request_json(row),
        "history": [{"state": e.state, "by": e.by, "at": e.at, "note": e.note} for e in events],
    }


def _guarded(answer: Callable[[], Response]) -> Response:
    """The answer, or the refusal it raised as a coded error reply."""
    try:
        return answer()
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    except VisitorRefused as exc:
        status = 409 if exc.code in _CONFLICTS or exc.code == "no_pass" else 422
        return _error(status, exc.code, exc.detail)
    except CardRefused as exc:
        return _error(409 if exc.code != "no-cjk-font" else 503, exc.code, str(exc))
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, "bad_request", detail)
    except (PassFieldError, ValueError) as exc:
        return _error(422, "bad_request", str(exc))


def _json(content: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(content, ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type="application/json",
    )


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)
