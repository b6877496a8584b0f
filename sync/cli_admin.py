"""`gate-sync residents import` and `gate-sync passes bulk|reissue|expire`: the admin's
commands for many people at once (registered on the parser by ``sync.cli``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate_agent.core.passes import ExitQuota, PassKind, Scope
from sync import bulk, residents
from sync.issuer import Issuer
from sync.pull import parse_moment

#: Progress lines only for work at least this big, about every tenth of it.
PROGRESS_AT_LEAST = 500


def register(commands: Any, passes: Any) -> None:
    """Add the residents command and the bulk pass commands to the parsers."""
    people = commands.add_parser("residents", help="residents and households").add_subparsers(
        dest="residents_command", required=True
    )
    imp = people.add_parser(
        "import", help="import residents from a .csv or .xlsx file (headers zh or en)"
    )
    imp.add_argument("file", type=Path, help="one row per person; see docs/administration.md")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.set_defaults(handler=_residents_import)

    many = passes.add_parser("bulk", help="issue passes to a compound's recorded residents")
    many.add_argument("--compound", required=True, help="the compound id of the residents")
    many.add_argument("--kind", required=True, choices=[k.value for k in PassKind])
    many.add_argument("--per", required=True, choices=["person", "household"])
    many.add_argument("--days", type=int, required=True, help="valid for this many days")
    many.add_argument("--valid-from", help="date or ISO time (default now)")
    many.add_argument("--scope", help="community:ID, compound:ID or gates:ID,ID (default compound)")
    many.add_argument(
        "--roles", help="comma-separated roles to issue to (default by kind; see docs)"
    )
    many.add_argument("--quota", help="household exit quota N/D: N exits per D days")
    many.add_argument(
        "--chunk", type=int, default=bulk.DEFAULT_CHUNK, help="passes per transaction"
    )
    many.add_argument("--out", type=Path, help="append each pass (masked name, text) as JSONL")
    many.set_defaults(handler=_passes_bulk)

    again = passes.add_parser("reissue", help="a new pass for the same holder; the old revoked")
    again.add_argument("pass_id")
    again.add_argument(
        "--days", type=int, help="valid this many days from now (default: as before)"
    )
    again.set_defaults(handler=_passes_reissue)

    end = passes.add_parser("expire", help="end a pass's validity now (gates learn on next sync)")
    end.add_argument("pass_id")
    end.set_defaults(handler=_passes_expire)


def parse_quota(text: str | None) -> ExitQuota | None:
    """An exit quota from the admin's ``N/D`` (N exits per D days), or None."""
    if not text:
        return None
    exits, sep, days = text.partition("/")
    if not (sep and exits.isdigit() and days.isdigit()):
        raise ValueError(f"--quota must be N/D, e.g. 1/2: {text!r}")
    return ExitQuota(int(exits), int(days))


def progress_lines(what: str) -> Callable[[int, int], None]:
    """A progress callback writing ``what done/total`` to stderr about every tenth of it."""

    shown = -1  # the last tenth reported

    def report(done: int, total: int) -> None:
        nonlocal shown
        if total < PROGRESS_AT_LEAST:
            return
        tenth = done * 10 // total
        if tenth > shown or done == total:
            shown = tenth
            print(f"{what} {done}/{total}", file=sys.stderr, flush=True)

    return report


def _residents_import(args: argparse.Namespace, issuer: Issuer) -> int:
    table = residents.read_table(args.file)
    roster = residents.check(table, issuer.store.residents(), progress_lines("rows checked"))
    if roster.ignored_columns:
        print(f"ignored columns: {', '.join(roster.ignored_columns)}", file=sys.stderr)
    done = issuer.store.import_residents(
        roster.households, roster.persons, datetime.now(UTC), dry_run=args.dry_run
    )
    print(
        ("dry run, nothing written: " if args.dry_run else "")
        + f"{roster.rows} rows; persons: {done.persons_added} added,"
        f" {done.persons_updated} updated, {done.persons_unchanged} unchanged;"
        f" households: {done.households_added} added, {done.households_updated} updated,"
        f" {done.households_unchanged} unchanged"
    )
    return 0


def _passes_bulk(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    start = parse_moment(args.valid_from, end_of_day=False) if args.valid_from else now
    roles = None
    if args.roles:
        roles = [role.strip() for role in args.roles.split(",") if role.strip()]
        unknown = sorted(set(roles) - {"resident", "tenant", "landlord"})
        if unknown:
            raise ValueError(f"--roles: unknown {', '.join(unknown)} (resident, tenant, landlord)")
    scope = Scope.parse(args.scope or f"compound:{args.compound}")
    options: dict[str, Any] = {
        "compound": args.compound,
        "kind": PassKind(args.kind),
        "per": args.per,
        "start": start,
        "days": args.days,
        "scope": scope,
        "now": now,
        "roles": roles,
        "quota": parse_quota(args.quota),
        "chunk": args.chunk,
        "progress": progress_lines("passes issued"),
    }
    if args.out:
        with args.out.open("a", encoding="utf-8") as out:
            result = bulk.issue_bulk(issuer, out=out, **options)
    else:
        result = bulk.issue_bulk(issuer, **options)
    print(
        f"{result.issued} {args.kind} passes issued per {args.per};"
        f" {result.skipped} skipped (hold a live {args.kind} pass already)"
        + (f"; written to {args.out}" if args.out and result.issued else "")
    )
    return 0


def _passes_reissue(args: argparse.Namespace, issuer: Issuer) -> int:
    new = bulk.reissue(issuer, args.pass_id, datetime.now(UTC), args.days)
    print(f"{args.pass_id} reissued as {new.pass_id} until {new.valid_until.isoformat()}")
    return 0


def _passes_expire(args: argparse.Namespace, issuer: Issuer) -> int:
    changed = bulk.expire(issuer, args.pass_id, datetime.now(UTC))
    print(f"{args.pass_id} {'expired now' if changed else 'was already revoked'}")
    return 0
