"""What the console's OpenAPI document says any route may answer besides success.

Every refusal is ``{"error": code, "message": words}`` (``field`` too for bad input),
with a stable code; declared once for the app so clients, and schemathesis
(tests/console/test_schemathesis.py), can hold the console to them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Refusal(BaseModel):
    """A refusal: a stable machine code and words for the guard."""

    error: str
    message: str
    field: str | None = None


def _coded(description: str) -> dict[str, Any]:
    return {"model": Refusal, "description": description}


#: The answers any route may give besides its success, for ``FastAPI(responses=...)``.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _coded("Not signed in, or a wrong PIN or admin token"),
    403: _coded("No CSRF token, or a guard asking for what only an admin may do"),
    404: _coded("No such pass or entry"),
    409: _coded("The entry was not refused, so there is nothing to override"),
    422: _coded("Input the console will not take; `field` names it"),
    429: _coded("Too many sign-in attempts, or a name locked after wrong PINs"),
    503: _coded("The gate is busy or could not do it: try again"),
    504: _coded("The gate did not answer in time"),
}
