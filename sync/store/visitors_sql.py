"""Visitor requests and the passes issued to them: the SQL both central stores run alike.

A request names the host household (recorded among the residents), the visitor's full
name and phone (personal data: they stay at the centre, like residents'), why, a plate,
the visit's period and whether the pass is one-time. It is ``pending`` until decided:
``approved`` (a visitor pass is issued and recorded against it), ``rejected`` (with a
reason) or ``cancelled``. Every change of state is kept in ``visitor_request_history``.

A decision is a conditional update (``WHERE state = 'pending'``): of two approvals at
once, on SQLite or PostgreSQL, one updates the row and issues the pass, the other finds
it decided and issues nothing. Functions run inside the caller's transaction through
``run``/``when``/``bump``, as in ``residents_sql``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sync.errors import NotFound, VisitorRefused
from sync.store.central import Household, IssuedPass
from sync.store.residents_sql import Bump, Run, SqlStore, When, add_passes

STATES = ("pending", "approved", "rejected", "cancelled")


@dataclass(frozen=True)
class VisitorDraft:
    """A visit as asked for; ``start``/``end`` are aware datetimes (whole seconds)."""

    household_id: str
    name: str
    phone: str
    reason: str
    plate: str
    start: datetime
    end: datetime
    once: bool
    requested_by: str


@dataclass(frozen=True)
class VisitorRequest:
    """A recorded request and what became of it (times as UTC ISO 8601 text)."""

    request_id: int
    household_id: str
    name: str
    phone: str
    reason: str
    plate: str
    starts_at: str
    ends_at: str
    once: bool
    requested_by: str
    requested_at: str
    state: str
    decided_by: str | None
    decided_at: str | None
    note: str | None
    pass_id: str | None
    #: Issued by an admin directly: requested and approved at once, by the same person.
    direct: bool


@dataclass(frozen=True)
class VisitorEvent:
    """One change of a request's state, for the history."""

    state: str
    by: str
    at: str
    note: str


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS visitor_requests (
    id INTEGER PRIMARY KEY,
    household_id TEXT NOT NULL REFERENCES households(household_id),  -- the host
    name TEXT NOT NULL,             -- the visitor's full name: personal data, centre only
    phone TEXT NOT NULL,            -- personal data as well
    reason TEXT NOT NULL,
    plate TEXT NOT NULL,            -- '' when on foot
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    once INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
    decided_by TEXT,
    decided_at TEXT,
    note TEXT,                      -- why rejected or cancelled
    pass_id TEXT UNIQUE REFERENCES passes(pass_id),
    direct INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS visitor_requests_household ON visitor_requests(household_id);
CREATE INDEX IF NOT EXISTS visitor_requests_state ON visitor_requests(state, id);
CREATE TABLE IF NOT EXISTS visitor_request_history (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES visitor_requests(id),
    state TEXT NOT NULL,
    by_name TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visitor_history_request ON visitor_request_history(request_id, id);
"""

#: PostgreSQL migration 4: the same tables, and the one-time flag of every pass.
POSTGRES_MIGRATION: tuple[str, ...] = (
    "ALTER TABLE passes ADD COLUMN once boolean NOT NULL DEFAULT false",
    """CREATE TABLE visitor_requests (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        household_id text COLLATE "C" NOT NULL REFERENCES households(household_id),
        name text NOT NULL,
        phone text NOT NULL,
        reason text NOT NULL,
        plate text NOT NULL,
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        once boolean NOT NULL,
        requested_by text NOT NULL,
        requested_at timestamptz NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
        decided_by text,
        decided_at timestamptz,
        note text,
        pass_id text COLLATE "C" UNIQUE REFERENCES passes(pass_id),
        direct boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX visitor_requests_household ON visitor_requests(household_id)",
    "CREATE INDEX visitor_requests_state ON visitor_requests(state, id)",
    """CREATE TABLE visitor_request_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id bigint NOT NULL REFERENCES visitor_requests(id),
        state text NOT NULL,
        by_name text NOT NULL,
        at timestamptz NOT NULL,
        note text NOT NULL
    )""",
    "CREATE INDEX visitor_history_request ON visitor_request_history(request_id, id)",
)

_COLUMNS = (
    "id, household_id, name, phone, reason, plate, starts_at, ends_at, once, requested_by,"
    " requested_at, state, decided_by, decided_at, note, pass_id, direct"
)


def household(run: Run, household_id: str) -> Household | None:
    """The recorded household, or None."""
    rows = run(
        "SELECT household_id, community, compound, building, unit, room FROM households"
        " WHERE household_id = ?",
        (household_id,),
    )
    return Household(*rows[0]) if rows else None


def add_request(run: Run, when: When, draft: VisitorDraft, now: datetime) -> int:
    """Record a pending request; ``VisitorRefused('unknown_host')`` when the host is unknown."""
    if household(run, draft.household_id) is None:
        raise VisitorRefused(
            "unknown_host", f"no household {draft.household_id} among the residents"
        )
    rows = run(
        "INSERT INTO visitor_requests(household_id, name, phone, reason, plate, starts_at,"
        " ends_at, once, requested_by, requested_at, state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') RETURNING id",
        (
            draft.household_id,
            draft.name,
            draft.phone,
            draft.reason,
            draft.plate,
            when(draft.start),
            when(draft.end),
            draft.once,
            draft.requested_by,
            when(now),
        ),
    )
    request_id = int(rows[0][0])
    _event(run, when, request_id, "pending", by=draft.requested_by, now=now, note="")
    return request_id


def get(run: Run, request_id: int) -> VisitorRequest:
    """One request; ``NotFound`` when there is none."""
    rows = run(f"SELECT {_COLUMNS} FROM visitor_requests WHERE id = ?", (request_id,))  # noqa: S608 - constant
    if not rows:
        raise NotFound(f"no visitor request {request_id}")
    return _request(rows[0])


def requests(run: Run, *, pending: bool, household_id: str | None) -> list[VisitorRequest]:
    """Requests (only pending ones, only one host's), oldest first."""
    where, params = ["1 = 1"], []
    if pending:
        where.append("state = 'pending'")
    if household_id is not None:
        where.append("household_id = ?")
        params.append(household_id)
    rows = run(
        f"SELECT {_COLUMNS} FROM visitor_requests WHERE {' AND '.join(where)} ORDER BY id",  # noqa: S608 - only "?" marks
        params,
    )
    return [_request(row) for row in rows]


def issued_between(
    run: Run, when: When, since: datetime | None, until: datetime | None
) -> list[VisitorRequest]:
    """Approved requests whose visit overlaps ``[since, until)``, by start."""
    where, params = ["state = 'approved'"], []
    if since is not None:
        where.append("ends_at > ?")
        params.append(when(since))
    if until is not None:
        where.append("starts_at < ?")
        params.append(when(until))
    rows = run(
        f"SELECT {_COLUMNS} FROM visitor_requests WHERE {' AND '.join(where)}"  # noqa: S608 - only "?" marks
        " ORDER BY starts_at, id",
        params,
    )
    return [_request(row) for row in rows]


def approve(
    run: Run,
    bump: Bump,
    when: When,
    *,
    request_id: int,
    issued: IssuedPass,
    kid: str,
    by: str,
    now: datetime,
    direct: bool = False,
) -> None:
    """Mark a pending request approved and record its pass, or issue nothing.

    ``VisitorRefused('already_decided')`` when it was decided meanwhile (another approver).
    """
    # The decision first: it takes the request's row, so a second approver waits here
    # and then finds it decided, before anything is issued.
    done = run(
        "UPDATE visitor_requests SET state = 'approved', decided_by = ?, decided_at = ?,"
        " direct = ? WHERE id = ? AND state = 'pending' RETURNING id",
        (by, when(now), direct, request_id),
    )
    if not done:
        _refuse_decided(run, request_id)
    add_passes(run, bump, when, issued=[issued], kid=kid, now=now)
    run("UPDATE visitor_requests SET pass_id = ? WHERE id = ?", (issued[0].pass_id, request_id))
    note = "issued directly" if direct else ""
    _event(run, when, request_id, "approved", by=by, now=now, note=note)


def close(
    run: Run, when: When, *, request_id: int, state: str, by: str, note: str, now: datetime
) -> None:
    """Reject or cancel a pending request, with why."""
    if state not in ("rejected", "cancelled"):
        raise ValueError(f"a request is closed as rejected or cancelled, not {state!r}")
    done = run(
        "UPDATE visitor_requests SET state = ?, decided_by = ?, decided_at = ?, note = ?"
        " WHERE id = ? AND state = 'pending' RETURNING id",
        (state, by, when(now), note, request_id),
    )
    if not done:
        _refuse_decided(run, request_id)
    _event(run, when, request_id, state, by=by, now=now, note=note)


def history(run: Run, request_id: int) -> list[VisitorEvent]:
    """Every state the request went through, oldest first."""
    rows = run(
        "SELECT state, by_name, at, note FROM visitor_request_history WHERE request_id = ?"
        " ORDER BY id",
        (request_id,),
    )
    return [VisitorEvent(state, by, _text(at) or "", note) for state, by, at, note in rows]


#: Requests that are over: approved and the visit ended, or rejected or cancelled, before
#: the cut; and not purged yet (a purged request keeps '' for name, phone and plate).
_FINISHED_BEFORE = (
    " FROM visitor_requests WHERE name <> '' AND ("
    "(state = 'approved' AND ends_at < ?)"
    " OR (state IN ('rejected', 'cancelled') AND decided_at < ?))"
)
_COUNT_FINISHED = "SELECT COUNT(*)" + _FINISHED_BEFORE
_PURGE_FINISHED = (
    "UPDATE visitor_requests SET name = '', phone = '', plate = ''"  # noqa: S608 - constants
    " WHERE id IN (SELECT id" + _FINISHED_BEFORE + ") RETURNING id"
)


def purge_personal(run: Run, when: When, before: datetime, *, dry_run: bool) -> int:
    """Blank the visitor's name, phone and plate of requests over before ``before``."""
    cut = when(before)
    if dry_run:
        return int(run(_COUNT_FINISHED, (cut, cut))[0][0])
    done = run(_PURGE_FINISHED, (cut, cut))
    return len(done)


def _refuse_decided(run: Run, request_id: int) -> None:
    found = get(run, request_id)  # NotFound when there is no such request
    raise VisitorRefused(
        "already_decided",
        f"visitor request {request_id} is {found.state} already"
        + (f" (pass {found.pass_id})" if found.pass_id else ""),
    )


def _event(
    run: Run, when: When, request_id: int, state: str, *, by: str, now: datetime, note: str
) -> None:
    run(
        "INSERT INTO visitor_request_history(request_id, state, by_name, at, note)"
        " VALUES (?, ?, ?, ?, ?)",
        (request_id, state, by, when(now), note),
    )


def _request(row: tuple[Any, ...]) -> VisitorRequest:
    (rid, home, name, phone, reason, plate, start, end, once, by, at, state) = row[:12]
    decided_by, decided_at, note, pass_id, direct = row[12:]
    return VisitorRequest(
        request_id=int(rid),
        household_id=home,
        name=name,
        phone=phone,
        reason=reason,
        plate=plate,
        starts_at=_text(start) or "",
        ends_at=_text(end) or "",
        once=bool(once),
        requested_by=by,
        requested_at=_text(at) or "",
        state=state,
        decided_by=decided_by,
        decided_at=_text(decided_at),
        note=note,
        pass_id=pass_id,
        direct=bool(direct),
    )


def _text(value: object) -> str | None:
    """A time as the SQLite store gives it (UTC ISO text), from either database."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


class VisitorStoreMixin(SqlStore):
    """The visitor requests' part of ``IssuerStore``, on a store's ``SqlStore`` hooks."""

    def household(self, household_id: str) -> Household | None:
        """The recorded household, or None."""
        with self._sql_read("read household") as (run, _):
            return household(run, household_id)

    def add_visitor_request(self, draft: VisitorDraft, now: datetime) -> int:
        """Record a pending visitor request; its id."""
        with self._sql_write("add visitor request") as (run, _, when):
            return add_request(run, when, draft, now)

    def visitor_request(self, request_id: int) -> VisitorRequest:
        """One visitor request; ``NotFound`` when there is none."""
        with self._sql_read("read visitor request") as (run, _):
            return get(run, request_id)

    def visitor_requests(
        self, *, pending: bool = False, household_id: str | None = None
    ) -> list[VisitorRequest]:
        """Visitor requests (only pending, only one host's), oldest first."""
        with self._sql_read("read visitor requests") as (run, _):
            return requests(run, pending=pending, household_id=household_id)

    def visitor_passes(
        self, since: datetime | None, until: datetime | None
    ) -> list[VisitorRequest]:
        """Approved requests whose visit overlaps ``[since, until)``, by start."""
        with self._sql_read("read visitor passes") as (run, when):
            return issued_between(run, when, since, until)

    def visitor_history(self, request_id: int) -> list[VisitorEvent]:
        """Every state a request went through, oldest first."""
        with self._sql_read("read visitor history") as (run, _):
            return history(run, request_id)

    def approve_visitor_request(
        self, request_id: int, issued: IssuedPass, kid: str, *, by: str, now: datetime
    ) -> None:
        """Approve a pending request and record its pass in one transaction.

        The conditional update locks the request's row (on PostgreSQL): a second approver
        at the same moment waits, then finds it approved and issues nothing.
        """
        with self._sql_write("approve visitor request") as (run, bump, when):
            approve(run, bump, when, request_id=request_id, issued=issued, kid=kid, by=by, now=now)

    def issue_visitor_pass(
        self, draft: VisitorDraft, issued: IssuedPass, kid: str, now: datetime
    ) -> int:
        """Record a request approved at once by its requester, and its pass; its id."""
        with self._sql_write("issue visitor pass") as (run, bump, when):
            request_id = add_request(run, when, draft, now)
            approve(
                run, bump, when, request_id=request_id, issued=issued,
                kid=kid, by=draft.requested_by, now=now, direct=True,
            )  # fmt: skip
        return request_id

    def purge_visitor_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the name, phone and plate of visitor requests that were over before
        ``before`` (approved visits ended, requests rejected or cancelled); how many."""
        if dry_run:
            with self._sql_read("count visitor personal data") as (run, when):
                return purge_personal(run, when, before, dry_run=True)
        with self._sql_write("purge visitor personal data") as (run, _, when):
            return purge_personal(run, when, before, dry_run=False)

    def close_visitor_request(
        self, request_id: int, state: str, *, by: str, note: str, now: datetime
    ) -> None:
        """Reject or cancel a pending request, with why."""
        with self._sql_write("close visitor request") as (run, _, when):
            close(run, when, request_id=request_id, state=state, by=by, note=note, now=now)
