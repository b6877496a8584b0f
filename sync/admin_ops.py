"""The admin's operations with their rules, shared by `gate-sync` and the admin web page.

Each takes the admin's input as typed (text dates, ``N/D`` quotas, role lists) and
raises ``ValueError`` (or a ``SyncError``) with a message naming what is wrong, so the
command line and the page refuse the same things in the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from gate_agent.core.passes import ExitQuota, PassFields, PassKind, Scope, mask_name
from sync import bulk, residents
from sync.issuer import Issuer, Rotation, new_pass_id
from sync.protocol import IsolationItem
from sync.pull import parse_moment
from sync.store.central import ImportSummary, IssuerStore

ROLES = ("resident", "tenant", "landlord")
MAX_OVERLAP_DAYS = 366


def parse_quota(text: str | None) -> ExitQuota | None:
    """An exit quota from the admin's ``N/D`` (N exits per D days), or None."""
    if not text:
        return None
    exits, sep, days = text.partition("/")
    if not (sep and exits.isdigit() and days.isdigit()):
        raise ValueError(f"--quota must be N/D, e.g. 1/2: {text!r}")
    return ExitQuota(int(exits), int(days))


def issue_pass(
    issuer: Issuer,
    now: datetime,
    *,
    kind: str,
    household: str,
    name: str,
    scope: str,
    unit: str = "",
    valid_from: str | None = None,
    valid_until: str | None = None,
    days: int | None = None,
    quota: str | None = None,
    pass_id: str | None = None,
) -> tuple[PassFields, str]:
    """Issue one pass (``valid_until`` or ``days``, not both); its fields and signed text."""
    if (valid_until is None) == (days is None):
        raise ValueError("give either --valid-until or --days")
    start = parse_moment(valid_from, end_of_day=False) if valid_from else now
    start = start.replace(microsecond=0)
    if days is not None:
        if days < 1:
            raise ValueError("--days must be at least 1")
        end = start + timedelta(days=days)
    else:
        end = parse_moment(str(valid_until), end_of_day=True)
    fields = PassFields(
        pass_id=pass_id or new_pass_id(),
        kind=PassKind(kind),
        household_id=household,
        scope=Scope.parse(scope),
        valid_from=start,
        valid_until=end,
        display_name=mask_name(name),
        unit=unit,
        exit_quota=parse_quota(quota),
    )
    return fields, issuer.issue(fields, now)


def isolate(
    store: IssuerStore,
    now: datetime,
    *,
    household: str,
    start: str | None,
    until: str,
    note: str = "",
) -> tuple[datetime, datetime]:
    """Put a household in home isolation (``until`` a last whole day or a time)."""
    begin = parse_moment(start, end_of_day=False) if start else now.replace(microsecond=0)
    end = parse_moment(until, end_of_day=True)
    try:
        item = IsolationItem(household_id=household, start=begin, end=end)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"] for e in exc.errors())) from exc
    store.isolate(item.household_id, item.start, item.end, note, now)
    return begin, end


def parse_roles(text: str | None) -> list[str] | None:
    """A comma-separated role list (None: the kind's default roles)."""
    if not text:
        return None
    roles = [role.strip() for role in text.split(",") if role.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"--roles: unknown {', '.join(unknown)} (resident, tenant, landlord)")
    return roles


def issue_bulk(
    issuer: Issuer,
    now: datetime,
    *,
    compound: str,
    kind: str,
    per: str,
    days: int,
    valid_from: str | None = None,
    scope: str | None = None,
    roles: str | None = None,
    quota: str | None = None,
    chunk: int = bulk.DEFAULT_CHUNK,
    out: IO[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bulk.BulkResult:
    """Issue the missing passes of ``kind`` to a compound's recorded residents."""
    options = bulk_options(
        now, compound=compound, kind=kind, days=days, valid_from=valid_from, scope=scope,
        roles=roles, quota=quota,
    )  # fmt: skip
    return bulk.issue_bulk(
        issuer, per=per, chunk=chunk, out=out, progress=progress, now=now, **options
    )


def bulk_options(
    now: datetime,
    *,
    compound: str,
    kind: str,
    days: int,
    valid_from: str | None,
    scope: str | None,
    roles: str | None,
    quota: str | None,
) -> dict[str, Any]:
    """The checked options of a bulk run (checked before a background job starts)."""
    start = parse_moment(valid_from, end_of_day=False) if valid_from else now
    if days < 1:
        raise ValueError("--days and --chunk must be at least 1")
    return {
        "compound": compound,
        "kind": PassKind(kind),
        "start": start,
        "days": days,
        "scope": Scope.parse(scope or f"compound:{compound}"),
        "roles": parse_roles(roles),
        "quota": parse_quota(quota),
    }


def rotate_keys(issuer: Issuer, now: datetime, overlap_days: float) -> Rotation:
    """A new signing key; the old ones verify for ``overlap_days`` more, then retire."""
    if not 0 <= overlap_days <= MAX_OVERLAP_DAYS:
        raise ValueError(f"--overlap-days must be 0-{MAX_OVERLAP_DAYS}")
    return issuer.rotate(now, timedelta(days=overlap_days))


def retire_key(
    issuer: Issuer, now: datetime, kid: str, *, at: str | None = None, force: bool = False
) -> tuple[bool, datetime | None]:
    """Retire a key now or at ``at``; (whether anything changed, the planned time)."""
    when = parse_moment(at, end_of_day=False) if at else None
    return issuer.retire(kid, now, at=when, force=force), when


@dataclass(frozen=True)
class Imported:
    """A residents import (or dry run): the file's row count, what it did, columns ignored."""

    rows: int
    summary: ImportSummary
    ignored_columns: list[str]


def import_residents(
    issuer: Issuer,
    path: Path,
    now: datetime,
    *,
    dry_run: bool,
    progress: Callable[[int, int], None] | None = None,
) -> Imported:
    """Check a residents file and import it (or only count, on a dry run)."""
    table = residents.read_table(path)
    roster = residents.check(table, issuer.store.residents(), progress)
    done = issuer.store.import_residents(roster.households, roster.persons, now, dry_run=dry_run)
    return Imported(roster.rows, done, list(roster.ignored_columns))
