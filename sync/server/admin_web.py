"""The admin web page's door: sign-in, sessions, CSRF, and the guard on every admin route.

``install(app, ...)`` adds, to the sync server's app:

- ``GET /admin/`` and ``/admin/static/...``: the page and its assets (no data in them);
- ``POST /v1/admin/session`` (sign in: name, password), ``GET /v1/admin/session`` (who
  is signed in, and the page's CSRF token), ``DELETE /v1/admin/session`` (sign out);
- a guard in front of every ``/v1/admin/...`` route, present and future: a request
  passes with the admin bearer token (scripts), or with a live session cookie, and then
  every write (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in
  ``X-CSRF-Token``. Anything else is refused 401 ``unauthorized`` or 403 ``bad_csrf``.

Who is signed in is ``admin_name(request)``: recorded as ``by`` wherever the store keeps
who did something. The session cookie is HttpOnly, SameSite=Strict, Secure over https;
sessions end when idle, at an absolute end, on sign-out, or when the account is disabled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from http.cookies import SimpleCookie
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sync import admins
from sync.server.auth import bearer, same_secret
from sync.store.admins_sql import AdminSession
from sync.store.central import IssuerStore

logger = logging.getLogger(__name__)

COOKIE = "gs_admin"
CSRF_HEADER = "x-csrf-token"
#: ``by`` for what is done with the shared bearer token rather than a named account.
TOKEN_ADMIN = "admin-token"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGNIN_PATH = "/v1/admin/session"
STATIC = resources.files("sync.server") / "static" / "admin"

Clock = Callable[[], datetime]


class SignIn(BaseModel):
    """A sign-in: the account name and its password."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=40)]
    password: Annotated[str, Field(min_length=1, max_length=admins.MAX_PASSWORD)]


def admin_name(request: Request) -> str | None:
    """The signed-in admin's name (or ``admin-token``) the guard let through, else None."""
    name = getattr(request.state, "admin", None)
    return name if isinstance(name, str) else None


def reply(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
    """An error reply with a stable code (as the rest of the server answers)."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class RateLimit:
    """At most ``per_minute`` attempts per client address in any 60 s (this process)."""

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        """Allow ``per_minute`` attempts a minute per address."""
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 when this attempt may go ahead, else the seconds until one may."""
        now = self._monotonic()
        with self._lock:
            if len(self._seen) > 10_000:  # forget quiet addresses now and then
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
            recent = self._seen.setdefault(client, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return max(1.0, 60 - (now - recent[0]))
            recent.append(now)
            return 0.0


class AdminGuard:
    """ASGI middleware: every ``/v1/admin/`` request is an admin's, or is refused."""

    def __init__(
        self, app: ASGIApp, *, store: IssuerStore, admin_token: str, clock: Clock,
        policy: admins.Policy,
    ) -> None:  # fmt: skip
        """Guard ``app``'s admin routes with the token and the store's sessions."""
        self.app = app
        self.store = store
        self.admin_token = admin_token
        self.clock = clock
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through with ``state.admin`` set, or answer 401/403."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/admin"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if path == SIGNIN_PATH and method == "POST":
            await self.app(scope, receive, send)  # signing in needs no session yet
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refused, name, session = await self._check(method, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["admin"], state["admin_session"] = name, session
        await self.app(scope, receive, send)

    async def _check(
        self, method: str, headers: dict[str, str]
    ) -> tuple[Response | None, str, AdminSession | None]:
        token = bearer(headers.get("authorization"))
        if token is not None:
            if same_secret(token, self.admin_token):
                return None, TOKEN_ADMIN, None
            wrong = reply(401, "unauthorized", "the admin token is wrong", **_challenge())
            return wrong, "", None
        session_id = _cookie(headers.get("cookie", ""))
        if session_id is None:
            return reply(401, "unauthorized", "sign in first", **_challenge()), "", None
        found = await run_in_threadpool(
            self.store.admin_session,
            admins.session_key(session_id),
            self.clock(),
            self.policy.idle,
        )
        if found is None:
            return reply(401, "session_expired", "the session has ended: sign in again"), "", None
        if method in WRITES and not same_secret(headers.get(CSRF_HEADER, ""), found.csrf):
            return reply(403, "bad_csrf", "the page's CSRF token is missing or wrong"), "", None
        return None, found.name, found


def install(
    app: FastAPI,
    *,
    store: IssuerStore,
    admin_token: str,
    clock: Clock,
    policy: admins.Policy | None = None,
) -> None:
    """Add the page, the session routes and the guard of every admin route to ``app``."""
    rules = policy or admins.Policy()
    limit = RateLimit(rules.attempts_per_minute)
    app.add_middleware(AdminGuard, store=store, admin_token=admin_token, clock=clock, policy=rules)

    @app.exception_handler(RequestValidationError)
    async def _bad_input(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/v1/admin"):
            return await request_validation_exception_handler(request, exc)
        return reply(422, "bad_input", first_error(exc.errors()))

    @app.get("/admin", include_in_schema=False)
    def _to_page() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=308)

    @app.get("/admin/", include_in_schema=False)
    def page() -> Response:
        return FileResponse(str(STATIC / "index.html"), headers=_page_headers())

    app.mount("/admin/static", StaticFiles(directory=str(STATIC)), name="admin-static")

    @app.post(SIGNIN_PATH, response_model=None)
    def sign_in(body: SignIn, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        wait = limit.allow(client)
        if wait:
            return reply(
                429, "rate_limited", "too many sign-in attempts: wait a minute",
                **{"Retry-After": str(round(wait))},
            )  # fmt: skip
        now = clock()
        account = store.admin_account(body.name)
        # A wrong name costs what a wrong password does: names are not given away.
        good = admins.verify_password(
            body.password, account.password_hash if account else admins.DUMMY_HASH
        )
        if account is None:
            return reply(401, "bad_credentials", "the name or the password is wrong")
        if account.locked_until is not None and account.locked_until > now:
            seconds = int((account.locked_until - now).total_seconds()) + 1
            return reply(
                423, "account_locked", f"too many wrong passwords: locked for {seconds} s",
                **{"Retry-After": str(seconds)},
            )  # fmt: skip
        if not good:
            locked = store.admin_signin_failed(account.name, now, rules.lock_after, rules.lock_for)
            if locked is not None:
                logger.warning("admin %s locked after failed sign-ins", account.name)
                return reply(423, "account_locked", "too many wrong passwords: locked")
            return reply(401, "bad_credentials", "the name or the password is wrong")
        if account.disabled_at is not None:
            return reply(403, "account_disabled", "this account is disabled")
        store.admin_signed_in(account.name, now)
        session_id, csrf = admins.new_session_id(), admins.new_csrf_token()
        expires = now + rules.absolute
        store.add_admin_session(admins.session_key(session_id), account.name, csrf, now, expires)
        answer = JSONResponse(
            {"name": account.name, "csrf": csrf, "expires_at": expires.isoformat()}
        )
        answer.set_cookie(
            COOKIE, session_id, max_age=int(rules.absolute.total_seconds()), path="/",
            httponly=True, samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return answer

    @app.get(SIGNIN_PATH, response_model=None)
    def who(request: Request) -> Response:
        found = getattr(request.state, "admin_session", None)
        if not isinstance(found, AdminSession):  # the bearer token: no session, no CSRF
            return JSONResponse({"name": admin_name(request), "csrf": None})
        return JSONResponse(
            {"name": found.name, "csrf": found.csrf, "expires_at": found.expires_at.isoformat()}
        )

    @app.delete(SIGNIN_PATH, response_model=None)
    def sign_out(request: Request) -> Response:
        session_id = _cookie(request.headers.get("cookie", ""))
        if session_id is not None:
            store.end_admin_session(admins.session_key(session_id))
        answer = JSONResponse({"signed_out": True})
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer


def first_error(errors: Sequence[Any]) -> str:
    """A validation failure in one line: where, and what is wrong."""
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where}: {first.get('msg', 'not valid')}" if where else str(first.get("msg"))


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def _page_headers() -> dict[str, str]:
    # Nothing but the server's own files: no CDN, no fonts from elsewhere, no framing.
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self';"
            " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
