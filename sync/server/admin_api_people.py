"""The admin page's JSON flows about people: residents import, and home isolations.

As in ``admin_api``: routes under ``/v1/admin/``, the CLI's rules (``sync.admin_ops``),
stable error codes, each write in the audit trail with the signed-in admin's name.
A residents file is posted as the request body itself (``?filename=people.xlsx``): the
suffix says CSV or XLSX, as it does for ``gate-sync residents import``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sync import admin_ops
from sync.issuer import Issuer
from sync.pull import parse_moment
from sync.server.admin_api import ID, Short, Strict, attempt
from sync.server.admin_web import admin_name, reply
from sync.server.body import BodyError, read_limited

Clock = Callable[[], datetime]
#: A residents file of 100 000 rows is a few megabytes; more is a mistake.
MAX_ROSTER_BYTES = 32 * 1024 * 1024
FILENAME = r"^[^/\\]{1,120}\.(csv|CSV|xlsx|XLSX|xlsm|XLSM)$"


class IsolateBody(Strict):
    """A home isolation, as ``gate-sync households isolate`` takes it."""

    household: Annotated[str, Field(min_length=1, max_length=64)]
    start: Short | None = None
    until: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str, Field(max_length=200)] = ""


def register(app: FastAPI, issuer: Issuer, clock: Clock) -> None:
    """Add the residents and isolation flows to ``app``."""
    store = issuer.store

    def audit(request: Request, action: str, subject: str, detail: str = "") -> None:
        store.add_audit(clock(), admin_name(request) or "?", action, subject, detail)

    @app.post("/v1/admin/residents/import", response_model=None)
    async def import_residents(
        request: Request,
        filename: Annotated[str, Query(pattern=FILENAME)],
        dry_run: bool = True,
    ) -> Any:
        try:
            data = await read_limited(request.stream(), MAX_ROSTER_BYTES)
        except BodyError as exc:
            return reply(exc.status, exc.code, exc.detail)
        suffix = FilePath(filename).suffix.lower()

        def work() -> dict[str, Any]:
            with tempfile.TemporaryDirectory(prefix="gs-roster-") as folder:
                path = FilePath(folder) / f"upload{suffix}"
                path.write_bytes(data)
                done = admin_ops.import_residents(issuer, path, clock(), dry_run=dry_run)
            if not dry_run:
                audit(request, "residents.import", filename, f"{done.rows} rows")
            return {
                "filename": filename,
                "dry_run": dry_run,
                "rows": done.rows,
                "summary": vars(done.summary),
                "ignored_columns": done.ignored_columns,
            }

        return await run_in_threadpool(attempt, work)

    @app.get("/v1/admin/residents", response_model=None)
    def residents(compound: Annotated[str, Query(pattern=ID)]) -> Any:
        return {
            "compound": compound,
            "residents": [
                {
                    "household_id": r.household.household_id,
                    "unit": r.household.unit_label,
                    "name": r.name,
                    "phone": r.phone,
                    "role": r.role,
                }
                for r in store.residents(compound)
            ],
        }

    @app.get("/v1/admin/isolations", response_model=None)
    def isolations(
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Any:
        def work() -> dict[str, Any]:
            now = clock()
            start = parse_moment(since, end_of_day=False) if since else None
            end = parse_moment(until, end_of_day=True) if until else None
            rows = store.isolation_history(start, end)
            return {
                "isolations": [
                    {**vars(row), "state": _state(row, now.astimezone(UTC).isoformat())}
                    for row in rows
                ]
            }

        return attempt(work)

    @app.post("/v1/admin/isolations", response_model=None)
    def isolate(body: IsolateBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            begin, end = admin_ops.isolate(
                store, clock(), household=body.household, start=body.start, until=body.until,
                note=body.note,
            )  # fmt: skip
            audit(
                request, "isolation.order", body.household,
                f"{begin.isoformat()} – {end.isoformat()} {body.note}".strip(),
            )  # fmt: skip
            return {"household": body.household, "start": begin.isoformat(), "end": end.isoformat()}

        return attempt(work)

    @app.post("/v1/admin/households/{household}/lift", response_model=None)
    def lift(household: Annotated[str, Path(pattern=ID)], request: Request) -> Any:
        def work() -> dict[str, Any]:
            count = store.lift_isolation(household, clock())
            audit(request, "isolation.lift", household)
            return {"household": household, "lifted": count}

        return attempt(work)


def _state(row: Any, now: str) -> str:
    """``lifted``, ``ended``, ``active`` or ``planned`` (times compare as UTC ISO text)."""
    if row.lifted_at is not None:
        return "lifted"
    if row.ends_at <= now:
        return "ended"
    return "active" if row.starts_at <= now else "planned"
