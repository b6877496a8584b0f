"""What the OpenAPI document says every route may answer besides success: coded errors.

Every refusal of the server is ``{"error": code, "detail": text}`` with a stable code
(``app.error``, ``admin_web.reply``); request validation on the gates' routes keeps
FastAPI's own shape. Declared once for the whole app, so a client (and schemathesis,
tests/sync/test_schemathesis.py) can hold the server to them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorReply(BaseModel):
    """A refusal: a stable machine code and words for people."""

    error: str
    detail: str


class ValidationItem(BaseModel):
    """One complaint of FastAPI's request validation."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationReply(BaseModel):
    """FastAPI's own answer to a malformed request on the gates' routes."""

    detail: list[ValidationItem]


def _coded(description: str) -> dict[str, Any]:
    return {"model": ErrorReply, "description": description}


#: The answers any route may give besides its success, for ``FastAPI(responses=...)``.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _coded("A body the server could not read (cut short, bad Content-Length)"),
    401: _coded("No credentials, or credentials this server does not know"),
    403: _coded("Credentials that may not do this (another gate's token, no CSRF token)"),
    404: _coded("No such thing here"),
    409: _coded("A conflict with what is stored"),
    413: _coded("A body over the limit"),
    415: _coded("A body in an encoding the server does not take"),
    422: {
        "model": ErrorReply | ValidationReply,
        "description": "Input the server will not take, named",
    },
    423: _coded("An admin account locked after wrong passwords"),
    429: _coded("Too many attempts: wait"),
    503: _coded("The store is unavailable: try again later"),
}


def success(*media_types: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route whose success is a file or a stream, not JSON."""
    return {status: {"content": {media: {} for media in media_types}}}


#: The success of a route that takes ``format=json|csv|xlsx``.
TABLES = (
    "application/json",
    "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
