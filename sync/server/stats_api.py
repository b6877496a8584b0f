"""The admin page's data: statistics for its charts, traces and ledgers, as JSON or files.

Routes (admin only, see docs/sync-protocol.md#admin): ``GET /v1/admin/stats``,
``/v1/admin/trace/gates``, ``/v1/admin/trace/pass/{pass_id}``,
``/v1/admin/trace/household/{household_id}``, ``/v1/admin/trace/inside``,
``/v1/admin/ledgers/{name}.xlsx``. Traces and ledgers are those of ``gate-sync trace``
and ``gate-sync ledgers`` (``sync/trace.py``, ``sync/ledgers.py``).

Times in a query are a date or an ISO time; a date or a time without an offset is
in the display zone (``tz``, by default the server's, ``Asia/Shanghai`` unless told).
A date given as ``until`` is the whole day.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from sync import ledgers, trace
from sync.cards import DEFAULT_TZ, timezone
from sync.pull import MEDIA_TYPES
from sync.server.documented import TABLES, success
from sync.store.central import IssuerStore
from sync.store.stats import MAX_STATS_DAYS, StatsQuery, TooManyEntries, summary
from sync.store.streams import StreamStore

logger = logging.getLogger(__name__)

AdminAuth = Callable[[Request], Response | None]
Clock = Callable[[], datetime]

GATE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,23}")
#: Pass and household ids in a path: what the issuer writes, and nothing a file name minds.
SUBJECT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
MAX_GATES = 200
#: The longest window a gates trace may cover.
MAX_TRACE_DAYS = 92
#: Rows a JSON trace carries at most (``truncated`` says when there were more); files carry all.
MAX_JSON_ROWS = 10_000
DEFAULT_JSON_ROWS = 1000
#: The most entries one stats request counts (about half a minute here; see bench.stats).
MAX_STATS_ENTRIES = 2_000_000
FORMATS = ("json", "csv", "xlsx")

Text = Annotated[str | None, Query()]
Gates = Annotated[list[str], Query(alias="gate")]


class BadQuery(Exception):
    """A query the endpoints refuse: its status, stable code and detail."""

    def __init__(self, code: str, detail: str, status: int = 422) -> None:
        """Name the refusal."""
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


def register(
    app: FastAPI,
    *,
    store: StreamStore,
    issuer: IssuerStore,
    admin_auth: AdminAuth,
    clock: Clock,
    display_tz: str = DEFAULT_TZ,
) -> None:
    """Add the routes to ``app``; every one answers only when ``admin_auth`` lets it."""
    default_zone = timezone(display_tz)

    @app.exception_handler(BadQuery)
    async def _bad_query(request: Request, exc: BadQuery) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)

    @app.get("/v1/admin/stats", response_model=None)
    def stats(
        request: Request,
        gates: Gates = [],  # noqa: B006 - FastAPI copies a list default
        since: Text = None,
        until: Text = None,
        tz: Text = None,
    ) -> Response | dict[str, Any]:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        zone = _zone(tz, default_zone)
        start, end = _window(since, until, zone, MAX_STATS_DAYS)
        # Without a window: today, from local midnight (a subdistrict's day is ~450 000 entries).
        today = clock().astimezone(zone).date()
        end = end or _start_of(today + timedelta(days=1), zone)
        start = start or min(_start_of(today, zone), end - timedelta(days=1))
        _check_window(start, end, MAX_STATS_DAYS)
        wanted = _gates(gates, required=False)
        query = StatsQuery(start, end, zone, wanted, max_entries=MAX_STATS_ENTRIES)
        try:
            counted = store.entry_stats(query)
        except TooManyEntries as exc:
            raise BadQuery(
                "too_many_entries",
                f"the window holds {exc.count} entries; at most {exc.limit} are counted at"
                " once: choose fewer days or gates",
            ) from exc
        return {"generated_at": clock().isoformat(), **summary(counted)}

    @app.get("/v1/admin/trace/gates", response_model=None, responses=success(*TABLES))
    def trace_gates(
        request: Request,
        *,
        gates: Gates = [],  # noqa: B006 - FastAPI copies a list default
        since: Text = None,
        until: Text = None,
        tz: Text = None,
        fmt: Annotated[str, Query(alias="format")] = "json",
        limit: Text = None,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        zone = _zone(tz, default_zone)
        wanted = _gates(gates, required=True)
        start, end = _window(since, until, zone, MAX_TRACE_DAYS)
        if start is None or end is None:
            raise BadQuery("missing_window", "a gates trace needs since and until")
        table = trace.trace_table(trace.gate_rows(store, wanted, start, end))
        name = f"trace-gates-{_stamp(start)}-{_stamp(end)}"
        return _answer(table, _format(fmt), name, limit)

    @app.get("/v1/admin/trace/pass/{pass_id}", response_model=None, responses=success(*TABLES))
    def trace_pass(
        request: Request,
        *,
        pass_id: str,
        since: Text = None,
        until: Text = None,
        tz: Text = None,
        fmt: Annotated[str, Query(alias="format")] = "json",
        limit: Text = None,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        subject = _subject(pass_id, "pass")
        start, end = _window(since, until, _zone(tz, default_zone), None)
        table = trace.trace_table(trace.pass_rows(store, subject, start, end))
        return _answer(table, _format(fmt), f"trace-pass-{subject}", limit)

    @app.get(
        "/v1/admin/trace/household/{household_id}", response_model=None, responses=success(*TABLES)
    )
    def trace_household(
        request: Request,
        *,
        household_id: str,
        since: Text = None,
        until: Text = None,
        tz: Text = None,
        fmt: Annotated[str, Query(alias="format")] = "json",
        limit: Text = None,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        subject = _subject(household_id, "household")
        start, end = _window(since, until, _zone(tz, default_zone), None)
        rows = trace.household_rows(store, issuer, subject, start, end)
        return _answer(trace.trace_table(rows), _format(fmt), f"trace-household-{subject}", limit)

    @app.get("/v1/admin/trace/inside", response_model=None, responses=success(*TABLES))
    def trace_inside(
        request: Request,
        *,
        gates: Gates = [],  # noqa: B006 - FastAPI copies a list default
        at: Text = None,
        compound: Text = None,
        tz: Text = None,
        fmt: Annotated[str, Query(alias="format")] = "json",
        limit: Text = None,
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        zone = _zone(tz, default_zone)
        wanted = _gates(gates, required=True)
        moment = clock() if at is None else _moment(at, zone, end_of_day=False, name="at")
        if compound is not None and not SUBJECT_ID.fullmatch(compound):
            raise BadQuery("bad_compound", "a compound id is letters, digits, '.', '_' or '-'")
        label = compound or "compound"
        table = trace.Table(
            trace.INSIDE_COLUMNS, trace.inside_rows(store, wanted, moment), sheet=label[:31]
        )
        return _answer(table, _format(fmt), f"inside-{label}-{_stamp(moment)}", limit)

    @app.get("/v1/admin/ledgers/{name}.xlsx", response_model=None, responses=success(TABLES[2]))
    def ledger(
        request: Request, name: str, since: Text = None, until: Text = None, tz: Text = None
    ) -> Response:
        refused = admin_auth(request)
        if refused is not None:
            return refused
        if name not in ledgers.LEDGERS:
            known = ", ".join(ledgers.LEDGERS)
            raise BadQuery("unknown_ledger", f"no ledger {name!r}: one of {known}", status=404)
        start, end = _window(since, until, _zone(tz, default_zone), None)
        table = ledgers.ledger_table(name, store, issuer, start, end)
        data, count = trace.xlsx_table(table)
        # These carry names and phones: each download is noted in the server's log.
        logger.info("ledger %s downloaded: %d rows, %s to %s", name, count, start, end)
        parts = [name, *(_stamp(m) for m in (start, end) if m is not None)]
        return _download(data, "xlsx", "-".join(parts))


def _zone(name: str | None, default: tzinfo) -> tzinfo:
    if name is None or name == "":
        return default
    try:
        return timezone(name)
    except ValueError as exc:
        raise BadQuery("bad_timezone", f"{name!r} is not a time zone, e.g. {DEFAULT_TZ}") from exc


def _moment(text: str, zone: tzinfo, *, end_of_day: bool, name: str) -> datetime:
    """A date (its start, or with ``end_of_day`` the next day's) or an ISO time, as UTC."""
    # A '+' left unescaped in a URL arrives as a space: "08:00 08:00" meant "08:00+08:00".
    text = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", text.strip())
    try:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            moment = datetime.fromisoformat(text)
        else:
            moment = _start_of(day + timedelta(days=end_of_day), zone)
    except ValueError as exc:
        raise BadQuery("bad_time", f"{name} is not a date or an ISO time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _start_of(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _window(
    since: str | None, until: str | None, zone: tzinfo, max_days: int | None
) -> tuple[datetime | None, datetime | None]:
    start = None if not since else _moment(since, zone, end_of_day=False, name="since")
    end = None if not until else _moment(until, zone, end_of_day=True, name="until")
    if start is not None and end is not None:
        _check_window(start, end, max_days)
    return start, end


def _check_window(start: datetime, end: datetime, max_days: int | None) -> None:
    if end <= start:
        raise BadQuery("bad_window", "until must be after since")
    if max_days is not None and end - start > timedelta(days=max_days):
        raise BadQuery("window_too_long", f"a window of at most {max_days} days, please")


def _gates(gates: list[str], *, required: bool) -> tuple[str, ...]:
    if len(gates) > MAX_GATES:
        raise BadQuery("too_many_gates", f"at most {MAX_GATES} gates")
    if required and not gates:
        raise BadQuery("missing_gate", "give at least one gate (gate=..., repeatable)")
    for gate in gates:
        if not GATE_ID.fullmatch(gate):
            raise BadQuery("bad_gate", f"{gate[:40]!r} is not a gate id")
    return tuple(dict.fromkeys(gates))


def _subject(text: str, what: str) -> str:
    if not SUBJECT_ID.fullmatch(text):
        raise BadQuery(f"bad_{what}", f"a {what} id is letters, digits, '.', '_' or '-'")
    return text


def _format(text: str) -> str:
    if text not in FORMATS:
        raise BadQuery("bad_format", f"format is one of {', '.join(FORMATS)}")
    return text


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_JSON_ROWS
    if not text.isdigit() or not 1 <= int(text) <= MAX_JSON_ROWS:
        raise BadQuery("bad_limit", f"limit is a number from 1 to {MAX_JSON_ROWS}")
    return int(text)


def _answer(table: trace.Table, fmt: str, name: str, limit: str | None) -> Response:
    if fmt == "json":
        most = _limit(limit)
        rows = list(table.rows)
        return JSONResponse(
            {
                "columns": list(table.columns),
                "count": len(rows),
                "truncated": len(rows) > most,
                "rows": _json_rows(islice(rows, most)),
            }
        )
    data, _ = trace.xlsx_table(table) if fmt == "xlsx" else trace.csv_table(table)
    return _download(data, fmt, name)


def _json_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def _download(data: bytes, fmt: str, name: str) -> Response:
    filename = re.sub(r"[^0-9A-Za-z_.-]", "_", name) + f".{fmt}"
    return Response(
        data,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
