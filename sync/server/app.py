"""The central sync server: gates enrol and upload their streams, admins pull what arrived.

Routes (see docs/sync-protocol.md for the whole wire):
``POST /v1/gates/enrol``, ``POST /v1/gates/{gate}/streams/{stream}/batches``,
``GET /v1/gates/{gate}/streams/{stream}``, ``GET /v1/gates/{gate}/lists``,
``GET /v1/admin/gates``, ``GET /v1/admin/gates/{gate}/sync-log``,
``GET /v1/admin/entries``, ``GET /v1/admin/logs``; visitor passes under
``/v1/admin/visitors`` (``sync/server/visitors_api.py``), the compounds' routes in
``compounds_api``; and the admin web page at ``/admin/`` with its flows (``admin_web``,
``admin_api``, ``admin_api_people``), whose guard checks the admin token or a
signed-in session (and its CSRF token) on every ``/v1/admin`` route. ``/healthz`` (open)
and ``/metrics`` (the admin or metrics token) are in ``sync/server/metrics.py``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from sync import pull
from sync.compound_lists import derived_lists, placed
from sync.errors import StoreError, WrongPlace
from sync.issuer import Issuer
from sync.protocol import MAX_BATCH_BYTES, Ack, StreamConflict
from sync.server import (
    admin_api,
    admin_api_people,
    admin_web,
    compounds_api,
    metrics,
    visitors_api,
)
from sync.server.admin_jobs import Jobs
from sync.server.auth import bearer, new_token, normalise_code, secret_hash
from sync.server.body import BodyError, inflate, parse_batch, read_limited
from sync.server.documented import ERRORS, success
from sync.server.stats_api import register as register_admin_data
from sync.store.streams import MAX_ENTRIES_PAGE, EntryRecord, GateView, StreamStore

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
GATE_ID = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$"
RETRY_AFTER_SECONDS = 5

GatePath = Annotated[str, Path(pattern=GATE_ID)]
StreamPath = Annotated[str, Path(min_length=36, max_length=36)]


class EnrolRequest(BaseModel):
    """A gate's enrolment: its id and the one-time code an admin gave its installer."""

    model_config = ConfigDict(extra="forbid")

    gate_id: Annotated[str, Field(pattern=GATE_ID)]
    code: Annotated[str, Field(min_length=1, max_length=64)]
    # Where the gate's config says it is (GateIdentity); older gates send neither.
    compound_id: Annotated[str, Field(pattern=GATE_ID)] | None = None
    community_id: Annotated[str, Field(pattern=GATE_ID)] | None = None


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def error(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
    """An error reply with a stable code."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def create_app(
    store: StreamStore,
    issuer: Issuer,
    admin_token: str,
    clock: Clock = utc_now,
    *,
    metrics_token: str | None = None,
    stale_after: timedelta = metrics.DEFAULT_STALE_AFTER,
) -> FastAPI:
    """The sync server over ``store``; list versions come from ``issuer``'s store.

    ``/metrics`` answers the admin token and ``metrics_token``; a gate silent for
    longer than ``stale_after`` counts as stale there.
    """
    if len(admin_token) < 16:
        raise ValueError("the admin token must be at least 16 characters")
    if metrics_token is not None and len(metrics_token) < 16:
        raise ValueError("the metrics token must be at least 16 characters")
    app = FastAPI(
        title="gate-sync", docs_url=None, redoc_url=None, openapi_url=None, responses=ERRORS
    )

    def gate_auth(request: Request, gate: str) -> JSONResponse | None:
        token = bearer(request.headers.get("authorization"))
        owner = None if token is None else store.gate_for_token(secret_hash(token))
        if owner is None:
            return error(401, "unauthorized", "a gate token is needed", **_challenge())
        if owner != gate:
            logger.warning("gate %s used its token for gate %s", owner, gate)
            return error(403, "forbidden", f"this token is not gate {gate}'s")
        return None

    def admin_auth(request: Request) -> JSONResponse | None:
        # admin_web's guard let the request in (token, or session + CSRF); this says so.
        if admin_web.admin_name(request) is None:
            return error(401, "unauthorized", "the admin token is needed", **_challenge())
        return None

    admin_web.install(app, store=issuer.store, admin_token=admin_token, clock=clock)
    tokens = (admin_token,) if metrics_token is None else (admin_token, metrics_token)
    served = metrics.install(app, store, clock=clock, tokens=tokens, stale_after=stale_after)
    admin_api.register(app, issuer, clock, Jobs(admin_api.refusal))
    admin_api_people.register(app, issuer, clock)
    app.include_router(visitors_api.router(issuer, admin_auth, clock))

    @app.exception_handler(StoreError)
    async def _store_down(request: Request, exc: StoreError) -> JSONResponse:
        logger.error("store error on %s: %s", request.url.path, exc)
        return error(503, "store_unavailable", "try again later", **_retry_after())

    @app.post("/v1/gates/enrol", response_model=None)
    def enrol(body: EnrolRequest) -> dict[str, Any] | JSONResponse:
        token = new_token()
        code_hash = secret_hash(normalise_code(body.code))
        before = store.gate_place(body.gate_id)
        try:
            enrolled = store.enrol(
                body.gate_id,
                code_hash,
                secret_hash(token),
                clock(),
                compound=body.compound_id,
                community=body.community_id,
            )
        except WrongPlace as exc:
            return error(409, "wrong_place", str(exc))
        if not enrolled:
            return error(403, "enrol_refused", "the code is unknown, used or expired")
        if store.gate_place(body.gate_id)[0] != before[0]:
            placed(issuer.store)
        # The gate pins the centre key it learns here: every lists document must carry
        # its signature. The installer trusts this answer as they trust the code.
        return {"token": token, "centre_key": issuer.centre_public()}

    @app.get("/v1/gates/{gate}/lists", response_model=None)
    def lists(
        gate: GatePath,
        request: Request,
        have: Annotated[str, Query(max_length=400)] = "",
    ) -> Response:
        refused = gate_auth(request, gate)
        if refused is not None:
            return refused
        held = _parse_have(have)
        if held is None:
            return error(422, "bad_have", "have is name:version pairs separated by commas")
        now = clock()
        compound = store.gate_place(gate)[0]
        extra = (
            []
            if compound is None
            else derived_lists(store, issuer.store, compound=compound, have=held, now=now)
        )
        document = issuer.signed_lists(now, gate_id=gate, have=held, compound=compound, extra=extra)
        served.lists_served.inc()
        return Response(
            json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            media_type="application/json",
        )

    @app.post("/v1/gates/{gate}/streams/{stream}/batches", response_model=None)
    async def upload(gate: GatePath, stream: StreamPath, request: Request) -> Response:
        if not _is_uuid(stream):
            return error(422, "bad_stream", "the stream id must be a UUID")
        refused = await run_in_threadpool(gate_auth, request, gate)
        if refused is not None:
            return refused
        try:
            declared = int(request.headers.get("content-length") or 0)
            if declared > MAX_BATCH_BYTES:
                raise BodyError(413, "too_large", f"the body is over {MAX_BATCH_BYTES} bytes")
            body = await read_limited(request.stream())
            batch = parse_batch(inflate(body, request.headers.get("content-encoding")))
        except BodyError as exc:
            return error(exc.status, exc.code, exc.detail)
        except ClientDisconnect:
            # The connection closed inside the body (a flaky link, a gate restarting):
            # nothing is stored, nobody waits for this reply, and the gate sends again.
            logger.info("gate %s: upload cut short by the connection closing", gate)
            return error(400, "body_cut", "the connection closed inside the body")
        except ValueError:
            return error(400, "bad_request", "Content-Length is not a number")
        now = clock()

        def ingest() -> Ack | StreamConflict:
            # One worker-thread hop for both: under load every hop is a wait in a queue.
            versions = issuer.list_versions(now)
            return store.ingest(gate, stream.lower(), batch, now=now, list_versions=versions)

        reply = await run_in_threadpool(ingest)
        status = 200 if isinstance(reply, Ack) else 409
        return Response(reply.model_dump_json(), status_code=status, media_type="application/json")

    @app.get("/v1/gates/{gate}/streams/{stream}", response_model=None)
    def cursor(gate: GatePath, stream: StreamPath, request: Request) -> dict[str, int] | Response:
        if not _is_uuid(stream):
            return error(422, "bad_stream", "the stream id must be a UUID")
        refused = gate_auth(request, gate)
        if refused is not None:
            return refused
        return {"stored_through": store.stored_through(gate, stream.lower())}

    @app.get("/v1/admin/gates", response_model=None)
    def fleet(
        request: Request, stale_minutes: Annotated[int, Query(ge=1, le=525_600)] = 60
    ) -> dict[str, Any] | Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        now = clock()
        horizon = now - timedelta(minutes=stale_minutes)
        return {
            "server_time": now.isoformat(),
            "stale_minutes": stale_minutes,
            "gates": [_gate_json(view, horizon) for view in store.gates()],
        }

    @app.get("/v1/admin/gates/{gate}/sync-log", response_model=None)
    def sync_log(
        gate: GatePath, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any] | Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        rows = store.sync_log(gate, limit)
        return {
            "gate_id": gate,
            "batches": [
                {**vars(row), "at": row.at.isoformat()}  # a frozen dataclass of primitives
                for row in rows
            ],
        }

    @app.get("/v1/admin/entries", response_model=None, responses=success("application/x-ndjson"))
    def entries(
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES_PAGE)] = 1000,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        records = store.entries_after(after, limit)
        lines = "".join(json.dumps(_entry_json(r), ensure_ascii=False) + "\n" for r in records)
        following = records[-1].ingest_id if records else after
        return Response(
            lines, media_type="application/x-ndjson", headers={"X-Next-After": str(following)}
        )

    @app.get("/v1/admin/logs", response_model=None, responses=success(*pull.MEDIA_TYPES.values()))
    def logs(
        request: Request,
        *,
        fmt: Annotated[Literal["csv", "xlsx", "jsonl"], Query(alias="format")] = "csv",
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        gate: Annotated[str | None, Query(pattern=GATE_ID)] = None,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES_PAGE)] = 1000,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        try:
            wanted = pull.PullFilter(
                since=pull.parse_moment(since, end_of_day=False) if since else None,
                until=pull.parse_moment(until, end_of_day=True) if until else None,
                gate_id=gate,
            )
        except ValueError:
            return error(422, "bad_query", "since and until are dates or ISO 8601 times")
        headers = {"Content-Disposition": f'attachment; filename="{pull.filename(fmt, wanted)}"'}
        if fmt == "jsonl":
            rows, following = pull.page(store, wanted, after, limit)
            lines = "".join(pull.text_chunks(rows, "jsonl"))
            headers["X-Next-After"] = str(following)
            return Response(lines, media_type=pull.MEDIA_TYPES[fmt], headers=headers)
        if fmt == "xlsx":
            data, _ = pull.xlsx_bytes(pull.rows(store, wanted, after=after))
            return Response(data, media_type=pull.MEDIA_TYPES[fmt], headers=headers)
        chunks = pull.text_chunks(pull.rows(store, wanted, after=after), "csv")
        return StreamingResponse(
            (chunk.encode("utf-8") for chunk in chunks),
            media_type=pull.MEDIA_TYPES[fmt],
            headers=headers,
        )

    # The admin page's statistics, traces and ledgers (sync/server/stats_api.py).
    register_admin_data(app, store=store, issuer=issuer.store, admin_auth=admin_auth, clock=clock)
    compounds_api.register(app, store, issuer, admin_auth=admin_auth, error=error, clock=clock)
    return app


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _parse_have(text: str) -> dict[str, int] | None:
    """``keys:3,revocations:12`` as a dict; None when malformed."""
    held: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, sep, number = part.partition(":")
        if not sep or not number.isdigit() or not name.isidentifier() or len(number) > 18:
            return None
        held[name] = int(number)
    return held


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _gate_json(view: GateView, horizon: datetime) -> dict[str, Any]:
    return {
        "gate_id": view.gate_id,
        "compound": view.compound,
        "community": view.community,
        "enrolled": view.enrolled_at is not None,
        "enrolled_at": _iso(view.enrolled_at),
        "last_seen": _iso(view.last_seen),
        "stale": view.last_seen is None or view.last_seen < horizon,
        "last_clock_offset_ms": view.last_clock_offset_ms,
        "last_backlog": view.last_backlog,
        "streams": [
            {"stream_id": s.stream_id, "stored_through": s.stored_through} for s in view.streams
        ],
    }


def _entry_json(record: EntryRecord) -> dict[str, Any]:
    return {
        "ingest_id": record.ingest_id,
        "gate_id": record.gate_id,
        "stream_id": record.stream_id,
        "seq": record.seq,
        "hash": record.hash,
        "prev_hash": record.prev_hash,
        "flagged": record.flagged,
        "problem": record.problem,
        "wall_time": record.wall_time,
        "corrected_time": _iso(record.corrected_time),
        "received_at": record.received_at.isoformat(),
        "content": record.content,
    }
