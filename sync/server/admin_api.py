"""The admin page's JSON flows: passes (one, bulk, revoke, reissue, expire), cards, keys.

Every route is under ``/v1/admin/`` (so ``admin_web``'s guard checks the admin and the
CSRF token of every write), applies the rules ``gate-sync`` applies (``sync.admin_ops``,
``sync.bulk``, ``sync.cards``), and answers a refusal as ``{"error": code, "detail":
text}`` with a stable code (``refusal`` below). Each write is recorded in the audit trail
with the signed-in admin's name. Residents and isolations are in ``admin_api_people``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gate_agent.core.passes import PassFieldError, ScopeKind
from sync import admin_ops, bulk
from sync.cards import DEFAULT_TZ, card_for, render_sheet, select, store_keyring, timezone
from sync.errors import (
    CardRefused,
    Conflict,
    IssuerKeyError,
    KeyInUse,
    NotFound,
    RosterRefused,
)
from sync.issuer import Issuer
from sync.server.admin_jobs import Jobs
from sync.server.admin_web import admin_name, reply
from sync.server.documented import success

logger = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
ID = r"^[0-9A-Za-z][0-9A-Za-z_.:-]{0,63}$"
IdPath = Annotated[str, Path(pattern=ID)]
Kind = Literal["resident", "tenant", "worker", "delivery", "vehicle", "visitor"]
Short = Annotated[str, Field(max_length=64)]


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class IssueBody(Strict):
    """One pass, as ``gate-sync passes issue`` takes it."""

    kind: Kind
    household: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    scope: Annotated[str, Field(min_length=3, max_length=200)]
    unit: Short = ""
    valid_from: Short | None = None
    valid_until: Short | None = None
    days: Annotated[int, Field(ge=1, le=3660)] | None = None
    quota: Short | None = None


class BulkBody(Strict):
    """A bulk run, as ``gate-sync passes bulk`` takes it."""

    compound: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Kind
    per: Literal["person", "household"]
    days: Annotated[int, Field(ge=1, le=3660)]
    valid_from: Short | None = None
    scope: Annotated[str, Field(max_length=200)] | None = None
    roles: Short | None = None
    quota: Short | None = None


class RevokeBody(Strict):
    """Why a pass is revoked (kept for the audit)."""

    reason: Annotated[str, Field(min_length=1, max_length=200)]


class ReissueBody(Strict):
    """A reissue: valid ``days`` from now, or (none) until the old pass's end."""

    days: Annotated[int, Field(ge=1, le=3660)] | None = None


class RotateBody(Strict):
    """A rotation's overlap: days the old key keeps verifying."""

    overlap_days: Annotated[float, Field(ge=0, le=admin_ops.MAX_OVERLAP_DAYS)] = 14


class RetireBody(Strict):
    """A retirement: now, or at a date or ISO time; ``force`` for the last active key."""

    at: Short | None = None
    force: bool = False


def refusal(exc: Exception) -> tuple[int, str, str] | None:
    """(HTTP status, stable code, detail) of an admin operation's refusal; None if a bug."""
    if isinstance(exc, CardRefused | RosterRefused):
        return 422, exc.code, str(exc)
    if isinstance(exc, NotFound):
        return 404, "not_found", str(exc)
    if isinstance(exc, KeyInUse):
        return 409, "key_in_use", str(exc)
    if isinstance(exc, Conflict):
        return 409, "conflict", str(exc)
    if isinstance(exc, IssuerKeyError):
        return 409, "no_issuer_key", str(exc)
    if isinstance(exc, PassFieldError):
        return 422, "bad_pass_field", str(exc)
    if isinstance(exc, ValueError):
        return 422, "bad_input", str(exc)
    return None


def attempt(work: Callable[[], T]) -> T | JSONResponse:
    """The result of ``work``, or its refusal as an error reply (bugs still raise)."""
    try:
        return work()
    except Exception as exc:
        known = refusal(exc)
        if known is None:
            raise
        status, code, detail = known
        answer = reply(status, code, detail)
        if isinstance(exc, RosterRefused):
            problems = [line for line in str(exc).split("\n")[1:] if line.startswith("row ")]
            answer = JSONResponse(
                {"error": code, "detail": detail, "problems": problems}, status_code=status
            )
        return answer


def register(app: FastAPI, issuer: Issuer, clock: Clock, jobs: Jobs) -> None:
    """Add the passes, cards and keys flows to ``app``."""
    store = issuer.store

    def audit(request: Request, action: str, subject: str, detail: str = "") -> None:
        store.add_audit(clock(), admin_name(request) or "?", action, subject, detail)

    @app.post("/v1/admin/passes", response_model=None)
    def issue(body: IssueBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            fields, text = admin_ops.issue_pass(issuer, clock(), **body.model_dump())
            audit(request, "pass.issue", fields.pass_id, f"{body.kind} {body.household}")
            return {
                "pass_id": fields.pass_id,
                "text": text,
                "display_name": fields.display_name,
                "valid_from": fields.valid_from.isoformat(),
                "valid_until": fields.valid_until.isoformat(),
            }

        return attempt(work)

    @app.get("/v1/admin/households/{household}/passes", response_model=None)
    def household_passes(household: IdPath) -> Any:
        now = clock()
        keyring = store_keyring(store)
        passes = []
        for row in store.household_passes([household]):
            try:
                card_for(row, keyring, now)
                state = "active"
            except CardRefused as exc:
                state = exc.code
            passes.append({
                "pass_id": row.pass_id, "kind": row.kind, "household_id": row.household_id,
                "valid_until": row.valid_until, "revoked_at": row.revoked_at,
                "revoke_reason": row.revoke_reason, "state": state,
            })  # fmt: skip
        return {"household_id": household, "passes": passes}

    @app.post("/v1/admin/passes/{pass_id}/revoke", response_model=None)
    def revoke(pass_id: IdPath, body: RevokeBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            changed = store.revoke(pass_id, body.reason, clock())
            audit(request, "pass.revoke", pass_id, body.reason)
            return {"pass_id": pass_id, "changed": changed}

        return attempt(work)

    @app.post("/v1/admin/passes/{pass_id}/reissue", response_model=None)
    def reissue(pass_id: IdPath, body: ReissueBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            new = bulk.reissue(issuer, pass_id, clock(), body.days)
            audit(request, "pass.reissue", pass_id, f"as {new.pass_id}")
            return {"pass_id": new.pass_id, "valid_until": new.valid_until.isoformat()}

        return attempt(work)

    @app.post("/v1/admin/passes/{pass_id}/expire", response_model=None)
    def expire(pass_id: IdPath, request: Request) -> Any:
        def work() -> dict[str, Any]:
            changed = bulk.expire(issuer, pass_id, clock())
            audit(request, "pass.expire", pass_id)
            return {"pass_id": pass_id, "changed": changed}

        return attempt(work)

    @app.post(
        "/v1/admin/passes/bulk",
        response_model=None,
        responses=success("application/json", status=202),
    )
    def start_bulk(body: BulkBody, request: Request) -> Any:
        now = clock()
        options = body.model_dump(exclude={"per"})
        # Checked here, so a bad option is answered at once, not by a failed job.
        checked = attempt(lambda: admin_ops.bulk_options(now, **options))
        if isinstance(checked, JSONResponse):
            return checked
        by = admin_name(request) or "?"

        def work(progress: Callable[[int, int], None]) -> dict[str, Any]:
            done = admin_ops.issue_bulk(issuer, now, per=body.per, progress=progress, **options)
            store.add_audit(
                clock(), by, "pass.bulk", body.compound,
                f"{body.kind} per {body.per}: {done.issued} issued, {done.skipped} skipped",
            )  # fmt: skip
            return {"issued": done.issued, "skipped": done.skipped}

        job = jobs.start("bulk", by, work)
        return JSONResponse(job.as_json(), status_code=202)

    @app.get("/v1/admin/jobs/{job_id}", response_model=None)
    def job_state(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]) -> Any:
        found = jobs.get(job_id)
        if found is None:
            return reply(404, "not_found", f"no job {job_id} on this server")
        return found

    @app.get("/v1/admin/cards", response_model=None, responses=success("text/html"))
    def cards(
        household: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006 - FastAPI
        compound: Annotated[str | None, Query(pattern=ID)] = None,
        pass_id: Annotated[list[str], Query(alias="pass", max_length=200)] = [],  # noqa: B006
        tz: Annotated[str, Query(max_length=64)] = DEFAULT_TZ,
    ) -> Any:
        def work() -> Response:
            if not (household or compound or pass_id):
                raise ValueError("say whose cards: a household, a compound or a pass")
            zone = timezone(tz)
            now = clock()
            homes = list(household)
            if compound:
                homes += sorted({r.household.household_id for r in store.residents(compound)})
            chosen, _ = select(store, now, households=homes, pass_ids=pass_id)
            if compound:
                chosen += [
                    card
                    for card in select(store, now, all_active=True)[0]
                    if card.fields.scope.kind is ScopeKind.COMPOUND
                    and compound in card.fields.scope.ids
                    and card.fields.pass_id not in {c.fields.pass_id for c in chosen}
                ]
            if not chosen:
                raise CardRefused("no-cards", "no pass to print a card for")
            return Response(render_sheet(chosen, zone), media_type="text/html; charset=utf-8")

        return attempt(work)

    @app.get(
        "/v1/admin/passes/{pass_id}/card.png", response_model=None, responses=success("image/png")
    )
    def card_png(pass_id: IdPath, tz: Annotated[str, Query(max_length=64)] = DEFAULT_TZ) -> Any:
        from sync.card_png import find_cjk_font, render_png  # noqa: PLC0415 - Pillow only here

        def work() -> Response:
            card = card_for(store.get_pass(pass_id), store_keyring(store), clock())
            png = render_png(card, timezone(tz), find_cjk_font())
            return Response(png, media_type="image/png")

        return attempt(work)

    @app.get("/v1/admin/keys", response_model=None)
    def keys() -> Any:
        now = clock()
        issuer.retire_due(now)
        return {
            "keys": [
                {
                    "kid": row.kid, "state": row.state, "created_at": row.created_at,
                    "retire_at": row.retire_at, "retired_at": row.retired_at,
                    "live_passes": store.live_passes(row.kid, now),
                }
                for row in store.issuer_keys()
            ]
        }  # fmt: skip

    @app.post("/v1/admin/keys", response_model=None)
    def new_key(request: Request) -> Any:
        def work() -> dict[str, Any]:
            kid = issuer.new_key(clock())
            audit(request, "key.new", kid)
            return {"kid": kid}

        return attempt(work)

    @app.post("/v1/admin/keys/rotate", response_model=None)
    def rotate(body: RotateBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            done = admin_ops.rotate_keys(issuer, clock(), body.overlap_days)
            audit(request, "key.rotate", done.kid, f"overlap {body.overlap_days} days")
            return {
                "kid": done.kid,
                "retire_at": done.retire_at.isoformat(),
                "rotating": done.rotating,
            }

        return attempt(work)

    @app.post("/v1/admin/keys/{kid}/retire", response_model=None)
    def retire(kid: IdPath, body: RetireBody, request: Request) -> Any:
        def work() -> dict[str, Any]:
            changed, at = admin_ops.retire_key(issuer, clock(), kid, at=body.at, force=body.force)
            audit(request, "key.retire", kid, at.isoformat() if at else "now")
            return {"kid": kid, "changed": changed, "at": at.isoformat() if at else None}

        return attempt(work)

    @app.get("/v1/admin/audit", response_model=None)
    def audit_trail(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        return {
            "audit": [{**vars(row), "at": row.at.isoformat()} for row in store.audit_rows(limit)]
        }
