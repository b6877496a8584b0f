"""What every console handler depends on: the console, the session, the role, the CSRF check."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gate_agent.assemble import Gate
from gate_agent.clock import Clock, ClockWatch
from gate_agent.console.auth import Session, Sessions

COOKIE = "gate_session"


class ConsoleError(Exception):
    """A refusal with a stable code and an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Console:
    """What the console's handlers need: the gate, the clock, the sessions.

    ``closing`` is set while the server stops: open event streams end by themselves,
    which a server's graceful stop waits for.
    """

    gate: Gate
    clock: Clock
    sessions: Sessions
    clock_watch: ClockWatch
    closing: threading.Event = field(default_factory=threading.Event)


def console_of(request: Request) -> Console:
    """The console behind this app."""
    console: Console = request.app.state.console
    return console


def current_session(request: Request) -> Session:
    """The signed-in session; 401 when there is none."""
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(COOKIE), console.clock.now())
    if session is None:
        raise ConsoleError(401, "signed_out", "sign in first")
    request.state.session = session
    return session


def guard(request: Request) -> Session:
    """Any signed-in guard or admin; form posts must carry the session's CSRF token."""
    session = current_session(request)
    if (
        request.method not in ("GET", "HEAD")
        and request.headers.get("x-csrf-token") != session.csrf
    ):
        raise ConsoleError(403, "bad_csrf", "the page is out of date: reload it")
    return session


def admin(session: Annotated[Session, Depends(guard)]) -> Session:
    """Admins only."""
    if session.role != "admin":
        raise ConsoleError(403, "admins_only", "only an admin may do this")
    return session


GuardSession = Annotated[Session, Depends(guard)]
AdminSession = Annotated[Session, Depends(admin)]
