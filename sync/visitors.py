"""Visitor passes: requested for a host household and approved, or issued by an admin.

A visitor pass is kind ``visitor``; its household is the host's, its unit the host's
unit, its scope the host's compound, its name the visitor's masked name, its validity
the visit (at most ``MAX_VISIT``), and it may be one-time (rule ``once``). The visitor's
full name and phone stay in the request, at the centre. Every refusal is a
``VisitorRefused`` with a stable code (docs/administration.md, "Visitors").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from gate_agent.core.passes import PassFields, PassKind, Scope, mask_name, sign
from sync.errors import VisitorRefused
from sync.issuer import Issuer, new_pass_id
from sync.store.visitors_sql import VisitorDraft, VisitorRequest

#: The longest visit a pass is issued for.
MAX_VISIT = timedelta(days=7)
_MAX_TEXT = 200


def check(issuer: Issuer, draft: VisitorDraft, now: datetime) -> VisitorDraft:
    """The draft with its texts trimmed, or a refusal: bad period, unknown or isolated host."""
    draft = replace(
        draft,
        name=" ".join(draft.name.split()),
        phone=draft.phone.strip(),
        reason=draft.reason.strip(),
        plate=draft.plate.strip().upper(),
        requested_by=draft.requested_by.strip(),
        start=draft.start.replace(microsecond=0),
        end=draft.end.replace(microsecond=0),
    )
    for what, value in (("name", draft.name), ("phone", draft.phone), ("reason", draft.reason)):
        if not value:
            raise VisitorRefused("missing", f"the visitor's {what} is needed")
    if not draft.requested_by:
        raise VisitorRefused("missing", "who asks is needed (--by)")
    texts = (draft.name, draft.phone, draft.reason, draft.plate, draft.requested_by)
    if any(len(text) > _MAX_TEXT or not text.isprintable() for text in texts):
        raise VisitorRefused("bad_text", f"texts are printable, at most {_MAX_TEXT} characters")
    if draft.end <= draft.start:
        raise VisitorRefused("bad_period", "the visit must end after it starts")
    if draft.end - draft.start > MAX_VISIT:
        raise VisitorRefused("too_long", f"a visit lasts at most {MAX_VISIT.days} days")
    if draft.end <= now:
        raise VisitorRefused("bad_period", "the visit is over already")
    _check_host(issuer, draft.household_id, draft.start, draft.end, now)
    return draft


def request(issuer: Issuer, draft: VisitorDraft, now: datetime) -> VisitorRequest:
    """Record a pending request after checking it."""
    draft = check(issuer, draft, now)
    return issuer.store.visitor_request(issuer.store.add_visitor_request(draft, now))


def approve(issuer: Issuer, request_id: int, by: str, now: datetime) -> tuple[VisitorRequest, str]:
    """Approve a pending request: sign its pass and record both at once; (request, text).

    Refused ``already_decided`` when it is no longer pending (also when another admin
    approved it at the same moment: only one pass is issued), and ``host_in_isolation``
    when the host is in isolation during the visit by now.
    """
    by = by.strip()
    if not by:
        raise VisitorRefused("missing", "who approves is needed (--by)")
    found = issuer.store.visitor_request(request_id)
    if found.state != "pending":
        raise VisitorRefused(
            "already_decided", f"visitor request {request_id} is {found.state} already"
        )
    start, end = datetime.fromisoformat(found.starts_at), datetime.fromisoformat(found.ends_at)
    if end <= now:
        raise VisitorRefused("bad_period", f"the visit of request {request_id} is over")
    fields = pass_fields(
        issuer, found.household_id, found.name, start=start, end=end, once=found.once
    )
    kid, text = _sign(issuer, fields, now)
    issuer.store.approve_visitor_request(request_id, (fields, text, None), kid, by=by, now=now)
    return issuer.store.visitor_request(request_id), text


def issue(issuer: Issuer, draft: VisitorDraft, now: datetime) -> tuple[VisitorRequest, str]:
    """Issue directly: a request approved at once by the admin who makes it."""
    draft = check(issuer, draft, now)
    fields = pass_fields(
        issuer, draft.household_id, draft.name, start=draft.start, end=draft.end, once=draft.once
    )
    kid, text = _sign(issuer, fields, now)
    request_id = issuer.store.issue_visitor_pass(draft, (fields, text, None), kid, now)
    return issuer.store.visitor_request(request_id), text


def request_json(row: VisitorRequest) -> dict[str, object]:
    """A request as JSON (the CLI's ``--json`` and the admin page's endpoints)."""
    return {
        "request_id": row.request_id,
        "household_id": row.household_id,
        "name": row.name,
        "phone": row.phone,
        "reason": row.reason,
        "plate": row.plate,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "once": row.once,
        "requested_by": row.requested_by,
        "requested_at": row.requested_at,
        "state": row.state,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "note": row.note,
        "pass_id": row.pass_id,
        "direct": row.direct,
    }


def reject(issuer: Issuer, request_id: int, reason: str, by: str, now: datetime) -> VisitorRequest:
    """Reject a pending request, saying why."""
    return _close(issuer, request_id, "rejected", note=reason, by=by, now=now)


def cancel(issuer: Issuer, request_id: int, reason: str, by: str, now: datetime) -> VisitorRequest:
    """Cancel a pending request (the host no longer expects the visitor)."""
    return _close(issuer, request_id, "cancelled", note=reason, by=by, now=now)


def _close(
    issuer: Issuer, request_id: int, state: str, *, note: str, by: str, now: datetime
) -> VisitorRequest:
    note, by = note.strip(), by.strip()
    if not note or not by:
        raise VisitorRefused("missing", "a reason (--reason) and who decides (--by) are needed")
    issuer.store.close_visitor_request(request_id, state, by=by, note=note, now=now)
    return issuer.store.visitor_request(request_id)


def _check_host(
    issuer: Issuer, household_id: str, start: datetime, end: datetime, now: datetime
) -> None:
    if issuer.store.household(household_id) is None:
        raise VisitorRefused("unknown_host", f"no household {household_id} among the residents")
    for home, starts, ends in issuer.store.isolations(now):
        overlaps = datetime.fromisoformat(starts) < end and start < datetime.fromisoformat(ends)
        if home == household_id and overlaps:
            raise VisitorRefused(
                "host_in_isolation",
                f"household {household_id} is in isolation {starts} – {ends}, during the visit",
            )


def pass_fields(
    issuer: Issuer, household_id: str, name: str, *, start: datetime, end: datetime, once: bool
) -> PassFields:
    """The visitor pass for a visit to ``household_id`` (a new pass id); not yet signed."""
    host = issuer.store.household(household_id)
    if host is None:
        raise VisitorRefused("unknown_host", f"no household {household_id} among the residents")
    return PassFields(
        pass_id=new_pass_id(),
        kind=PassKind.VISITOR,
        household_id=household_id,
        scope=Scope.parse(f"compound:{host.compound}"),
        valid_from=start,
        valid_until=end,
        display_name=mask_name(name),
        unit=host.unit_label,
        once=once,
    )


def _sign(issuer: Issuer, fields: PassFields, now: datetime) -> tuple[str, str]:
    """The signing key's id and the pass text; the host's isolation checked once more."""
    _check_host(issuer, fields.household_id, fields.valid_from, fields.valid_until, now)
    issuer.retire_due(now)
    kid, private = issuer.signing_key()
    return kid, sign(fields, private)
