"""`gate-sync residents import` and `gate-sync passes bulk|reissue|expire`: the admin's
commands for many people at once (registered on the parser by ``sync.cli``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate_agent.core.passes import PassKind
from sync import admin_ops, bulk
from sync.issuer import Issuer

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


#: Kept for callers of the old name; the rules live in ``sync.admin_ops``.
parse_quota = admin_ops.parse_quota


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
    done = admin_ops.import_residents(
        issuer, args.file, datetime.now(UTC), dry_run=args.dry_run,
        progress=progress_lines("rows checked"),
    )  # fmt: skip
    if done.ignored_columns:
        print(f"ignored columns: {', '.join(done.ignored_columns)}", file=sys.stderr)
    print(("dry run, nothing written: " if args.dry_run else "") + import_line(done))
    return 0


def import_line(done: admin_ops.Imported) -> str:
    """What an import did, in one line."""
    s = done.summary
    return (
        f"{done.rows} rows; persons: {s.persons_added} added,"
        f" {s.persons_updated} updated, {s.persons_unchanged} unchanged;"
        f" households: {s.households_added} added, {s.households_updated} updated,"
        f" {s.households_unchanged} unchanged"
    )


def _passes_bulk(args: argparse.Namespace, issuer: Issuer) -> int:
    options: dict[str, Any] = {
        "compound": args.compound,
        "kind": args.kind,
        "per": args.per,
        "days": args.days,
        "valid_from": args.valid_from,
        "scope": args.scope,
        "roles": args.roles,
        "quota": args.quota,
        "chunk": args.chunk,
        "progress": progress_lines("passes issued"),
    }
    now = datetime.now(UTC)
    if args.out:
        with args.out.open("a", encoding="utf-8") as out:
            result = admin_ops.issue_bulk(issuer, now, out=out, **options)
    else:
        result = admin_ops.issue_bulk(issuer, now, **options)
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
