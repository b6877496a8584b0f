"""The console app: FastAPI, every asset served by the gate, roles checked on every endpoint."""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from gate_agent.assemble import Gate
from gate_agent.clock import Clock, ClockWatch
from gate_agent.console import flows
from gate_agent.console.auth import Roster, Session, Sessions, SignInRefused
from gate_agent.console.deps import (
    COOKIE,
    Console,
    ConsoleError,
    GuardSession,
    console_of,
    current_session,
)
from gate_agent.console.documented import ERRORS
from gate_agent.core import messages
from gate_agent.metrics import GateMetrics

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuardSignIn(_Body):
    """A guard's name and shift PIN."""

    name: Annotated[str, Field(min_length=1, max_length=20)]
    pin: Annotated[str, Field(pattern=r"^[0-9]{4,8}$")]


class AdminSignIn(_Body):
    """The admin token."""

    token: Annotated[str, Field(min_length=8, max_length=200)]


class SessionInfo(BaseModel):
    """Who is signed in, and the token their form posts must carry."""

    role: str
    name: str
    csrf: str


def create_app(
    gate: Gate,
    *,
    clock: Clock,
    roster: Roster,
    admin_token: str | None,
    session_hours: float,
    metrics_token: str | None = None,
) -> FastAPI:
    """The console for one running gate."""
    app = FastAPI(
        title="Gate station console",
        description="The guard console's local API: live results, manual flows, status.",
        version="1",
        docs_url=None,  # the docs page loads its scripts from a CDN; the schema stays
        redoc_url=None,
        responses=ERRORS,
    )
    sessions = Sessions(roster, admin_token, timedelta(hours=session_hours))
    clock_watch = ClockWatch(clock)
    app.state.console = Console(gate, clock, sessions, clock_watch)

    @app.exception_handler(ConsoleError)
    async def _refused(request: Request, exc: ConsoleError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = first.get("loc", ())
        return JSONResponse(
            {
                "error": "invalid",
                "message": str(first.get("msg", "invalid input")),
                "field": str(where[-1]) if where else "",
            },
            status_code=422,
        )

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        # Everything comes from the gate itself; nothing may be framed or loaded from elsewhere.
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"  # an upgrade's new page, not the old
        return response

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("console request failed: %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal", "message": "the gate could not do this"}, status_code=500
        )

    @app.exception_handler(SignInRefused)
    async def _sign_in_refused(request: Request, exc: SignInRefused) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=exc.status)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/session", response_model=SessionInfo)
    async def session_info(session: Annotated[Session, Depends(current_session)]) -> SessionInfo:
        return SessionInfo(role=session.role, name=session.name, csrf=session.csrf)

    @app.get("/api/guards")
    async def guards_on_shift(request: Request) -> dict[str, list[str]]:
        console = console_of(request)
        names = sorted(g.name for g in console.sessions.roster.on_shift(console.clock.now()))
        return {"guards": names}

    @app.post("/api/session/guard", response_model=SessionInfo)
    async def sign_in_guard(body: GuardSignIn, request: Request, response: Response) -> SessionInfo:
        console = console_of(request)
        session = console.sessions.sign_in_guard(
            body.name, body.pin, _client(request), console.clock.now()
        )
        return _opened(session, response, session_hours)

    @app.post("/api/session/admin", response_model=SessionInfo)
    async def sign_in_admin(body: AdminSignIn, request: Request, response: Response) -> SessionInfo:
        console = console_of(request)
        session = console.sessions.sign_in_admin(body.token, _client(request), console.clock.now())
        return _opened(session, response, session_hours)

    @app.delete("/api/session", status_code=204)
    async def sign_out(session: GuardSession, request: Request) -> Response:
        console_of(request).sessions.end(session.token)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/api/messages")
    async def words() -> dict[str, dict[str, dict[str, str]]]:
        def table(pairs: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
            return {code: {"zh": zh, "en": en} for code, (zh, en) in pairs.items()}

        return {
            "outcomes": table({k.value: v for k, v in messages.OUTCOMES.items()}),
            "reasons": table({k.value: v for k, v in messages.REASONS.items()}),
            "next_steps": table({k.value: v for k, v in messages.NEXT_STEPS.items()}),
            "override_reasons": table(messages.OVERRIDE_REASONS),
        }

    metrics = GateMetrics(gate, clock, clock_watch=clock_watch)

    # For the technician's monitoring on the gate's LAN: no sign-in (a session cookie is
    # for people), and GETs need no CSRF token. /metrics may ask for a bearer token.
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        status, body = metrics.health_json()
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        if metrics_token is not None:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), metrics_token.encode()
            ):
                return JSONResponse(
                    {"error": "metrics_token", "message": "/metrics needs its bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(flows.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _opened(session: Session, response: Response, hours: float) -> SessionInfo:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        path="/",
    )
    return SessionInfo(role=session.role, name=session.name, csrf=session.csrf)
