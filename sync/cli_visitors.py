"""`gate-sync visitors request|list|approve|reject|cancel|issue`: visitor passes from the CLI
(registered on the parser by ``sync.cli``; the work is in ``sync.visitors``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gate_agent.core.passes import VerifiedPass, verify
from sync import visitors
from sync.cards import store_keyring
from sync.issuer import Issuer
from sync.pull import parse_moment
from sync.store.visitors_sql import VisitorDraft, VisitorRequest

#: The longest visit in hours, as ``--hours`` takes it.
MAX_HOURS = int(visitors.MAX_VISIT / timedelta(hours=1))


def register(commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``visitors`` command and its subcommands."""
    group = commands.add_parser("visitors", help="visitor passes: requests, approvals")
    sub = group.add_subparsers(dest="visitors_command", required=True)
    ask = sub.add_parser("request", help="ask for a visitor pass for a host household")
    _visit_options(ask)
    ask.set_defaults(handler=_request)
    listing = sub.add_parser("list", help="visitor requests and what became of them")
    listing.add_argument("--pending", action="store_true", help="only those awaiting a decision")
    listing.add_argument("--host", help="only this host household's")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.set_defaults(handler=_list)
    yes = sub.add_parser("approve", help="approve a request: its pass is issued and printed")
    yes.add_argument("request_id", type=int)
    yes.add_argument("--by", required=True, help="who approves (a name, for the record)")
    _output_options(yes)
    yes.set_defaults(handler=_approve)
    no = sub.add_parser("reject", help="reject a request, saying why")
    no.add_argument("request_id", type=int)
    no.add_argument("--reason", required=True, help="why, for the record and the host")
    no.add_argument("--by", required=True, help="who rejects")
    no.set_defaults(handler=_reject)
    off = sub.add_parser("cancel", help="cancel a pending request (the visit is off)")
    off.add_argument("request_id", type=int)
    off.add_argument("--reason", required=True, help="why")
    off.add_argument("--by", required=True, help="who cancels")
    off.set_defaults(handler=_cancel)
    direct = sub.add_parser("issue", help="issue a visitor pass at once (approved by --by)")
    _visit_options(direct)
    _output_options(direct)
    direct.set_defaults(handler=_issue)
    for command in (ask, listing, yes, no, off, direct):
        dsn_option(command)


def _visit_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", required=True, help="the host household id")
    command.add_argument("--name", required=True, help="the visitor's full name (kept here)")
    command.add_argument("--phone", required=True, help="the visitor's phone (kept here)")
    command.add_argument("--reason", required=True, help="why they visit")
    command.add_argument("--plate", default="", help="the vehicle plate, if they drive")
    command.add_argument("--from", dest="start", help="date or ISO time (default now)")
    until = command.add_mutually_exclusive_group(required=True)
    until.add_argument("--hours", type=int, help=f"the visit lasts this many hours (1-{MAX_HOURS})")
    until.add_argument("--until", help="last date (whole day) or ISO time")
    command.add_argument("--once", action="store_true", help="one-time: one entry, then its exit")
    command.add_argument("--by", required=True, help="who asks (or issues): a name")


def _output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--png", type=Path, help="also write the QR code as a PNG image")
    command.add_argument("--out", type=Path, help="append the pass (masked name, text) as JSONL")


def _draft(args: argparse.Namespace, now: datetime) -> VisitorDraft:
    start = parse_moment(args.start, end_of_day=False) if args.start else now
    if args.hours is not None:
        if not 1 <= args.hours <= MAX_HOURS:
            raise ValueError(f"--hours must be 1-{MAX_HOURS}")
        end = start + timedelta(hours=args.hours)
    else:
        end = parse_moment(args.until, end_of_day=True)
    return VisitorDraft(
        household_id=args.host,
        name=args.name,
        phone=args.phone,
        reason=args.reason,
        plate=args.plate,
        start=start,
        end=end,
        once=args.once,
        requested_by=args.by,
    )


def _request(args: argparse.Namespace, issuer: Issuer) -> int:
    asked = visitors.request(issuer, _draft(args, datetime.now(UTC)), datetime.now(UTC))
    print(f"visitor request {asked.request_id} for {asked.household_id} is pending approval")
    return 0


def _list(args: argparse.Namespace, issuer: Issuer) -> int:
    for row in issuer.store.visitor_requests(pending=args.pending, household_id=args.host):
        if args.json:
            print(json.dumps(visitors.request_json(row), ensure_ascii=False))
            continue
        decided = f" by {row.decided_by}" if row.decided_by else ""
        extra = f" pass {row.pass_id}" if row.pass_id else (f" ({row.note})" if row.note else "")
        print(
            f"{row.request_id}  {row.state}{decided}  {row.household_id}  {row.name}"
            f"  {row.starts_at} – {row.ends_at}{'  once' if row.once else ''}{extra}"
        )
    return 0


def _approve(args: argparse.Namespace, issuer: Issuer) -> int:
    row, text = visitors.approve(issuer, args.request_id, args.by, datetime.now(UTC))
    return _issued(args, issuer, row, text)


def _issue(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    row, text = visitors.issue(issuer, _draft(args, now), now)
    return _issued(args, issuer, row, text)


def _reject(args: argparse.Namespace, issuer: Issuer) -> int:
    visitors.reject(issuer, args.request_id, args.reason, args.by, datetime.now(UTC))
    print(f"visitor request {args.request_id} rejected")
    return 0


def _cancel(args: argparse.Namespace, issuer: Issuer) -> int:
    visitors.cancel(issuer, args.request_id, args.reason, args.by, datetime.now(UTC))
    print(f"visitor request {args.request_id} cancelled")
    return 0


def _issued(args: argparse.Namespace, issuer: Issuer, row: VisitorRequest, text: str) -> int:
    from sync.cli import write_qr_png  # noqa: PLC0415 - sync.cli imports this module

    if args.png:
        write_qr_png(text, args.png)
    if args.out:
        scanned = verify(text, store_keyring(issuer.store))
        if not isinstance(scanned, VerifiedPass):  # pragma: no cover - just signed here
            raise ValueError(f"the pass just issued does not verify: {scanned.reason}")
        fields = scanned.fields
        record = {
            "request_id": row.request_id,
            "pass_id": fields.pass_id,
            "kind": fields.kind.value,
            "household_id": fields.household_id,
            "unit": fields.unit,
            "display_name": fields.display_name,
            "valid_from": fields.valid_from.isoformat(),
            "valid_until": fields.valid_until.isoformat(),
            "once": fields.once,
            "text": text,
        }
        with args.out.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(text)
    return 0
