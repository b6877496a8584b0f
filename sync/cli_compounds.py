"""`gate-sync gates place` and `gate-sync compounds quota|list|conflicts`.

Where each gate is (its compound and community) is kept with the gates in the stream
store; a compound's exit quota in the issuer store, reaching its gates as the
``exit_quota`` gate setting. Conflicts are computed from the stored entries
(``sync.compound_lists.quota_conflicts``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

from sync import compound_lists
from sync.cli_gates import GATE_ID
from sync.issuer import Issuer
from sync.pull import parse_moment
from sync.server.compounds_api import DEFAULT_CONFLICT_DAYS, compounds_json
from sync.store.compounds_sql import check_quota
from sync.store.streams import StreamStore

OpenStreams = Callable[[argparse.Namespace], StreamStore]


def register_place(
    gates: Any, dsn_option: Callable[[argparse.ArgumentParser], None], open_streams: OpenStreams
) -> None:
    """Add `place` under `gate-sync gates`."""
    place = gates.add_parser("place", help="record (or correct) the compound a gate is in")
    place.add_argument("gate_id")
    place.add_argument("--compound", required=True, help="the compound's id")
    place.add_argument("--community", help="the community's id (default: keep the one held)")
    dsn_option(place)
    place.set_defaults(handler=lambda a, i: _place(a, i, open_streams))


def register(
    commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None], open_streams: OpenStreams
) -> None:
    """Add `gate-sync compounds quota|list|conflicts`."""
    compounds = commands.add_parser(
        "compounds", help="compounds: exit quotas, their gates, conflicts between gates"
    ).add_subparsers(dest="compounds_command", required=True)
    quota = compounds.add_parser("quota", help="set or clear a compound's household exit quota")
    quota.add_argument("compound")
    quota.add_argument("quota", nargs="?", help="EXITS/DAYS, e.g. 1/2: one exit per 2 days")
    quota.add_argument("--clear", action="store_true", help="no quota for the compound")
    quota.add_argument("--by", default=os.environ.get("USER") or "admin", help="who sets it")
    quota.set_defaults(handler=_quota)
    listing = compounds.add_parser("list", help="compounds with their gates and quotas")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=lambda a, i: _list(a, i, open_streams))
    conflicts = compounds.add_parser(
        "conflicts", help="households let out beyond their quota by gates that were apart"
    )
    conflicts.add_argument("--compound", help="this compound only (default: every one)")
    conflicts.add_argument(
        "--since", help=f"date or ISO time (default: {DEFAULT_CONFLICT_DAYS} days ago)"
    )
    conflicts.add_argument("--until", help="last date (whole day) or ISO time (default: now)")
    conflicts.add_argument("--json", action="store_true", help="print JSON")
    conflicts.set_defaults(handler=lambda a, i: _conflicts(a, i, open_streams))
    for command in (quota, listing, conflicts):
        dsn_option(command)


def place_gate(
    streams: StreamStore, issuer: Issuer, gate_id: str, compound: str, community: str | None
) -> None:
    """Record where a gate is; its settings (the compound's quota) follow at its next sync."""
    for what, value in (("gate", gate_id), ("compound", compound), ("community", community)):
        if value is not None and not GATE_ID.match(value):
            raise ValueError(f"not a {what} id: {value!r}")
    before = streams.gate_place(gate_id)[0]
    streams.set_place(gate_id, compound, community)
    if before != compound:
        compound_lists.placed(issuer.store)


def _place(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    with closing(open_streams(args)) as streams:
        place_gate(streams, issuer, args.gate_id, args.compound, args.community)
        compound, community = streams.gate_place(args.gate_id)
    print(f"gate {args.gate_id}: compound {compound}, community {community or '-'}")
    return 0


def _quota(args: argparse.Namespace, issuer: Issuer) -> int:
    if not GATE_ID.match(args.compound):
        raise ValueError(f"not a compound id: {args.compound!r}")
    if args.clear == (args.quota is not None):
        raise ValueError("give a quota (e.g. 1/2) or --clear, not both")
    quota = None if args.clear else check_quota(args.quota)
    issuer.store.set_compound_quota(args.compound, quota, by=args.by, now=datetime.now(UTC))
    what = "no exit quota" if quota is None else f"exit quota {quota} (exits/days) per household"
    print(f"compound {args.compound}: {what}; its gates get it at their next sync")
    return 0


def _list(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    with closing(open_streams(args)) as streams:
        rows = compounds_json(streams, issuer)
    if args.json:
        print(json.dumps({"compounds": rows}, ensure_ascii=False))
        return 0
    if not rows:
        print("no compounds: place gates with `gate-sync gates place`", file=sys.stderr)
    for row in rows:
        quota = row["exit_quota"] or "-"
        setter = f" (set {row['set_at'][:16]} by {row['set_by']})" if row["exit_quota"] else ""
        print(f"{row['compound']:<24} quota {quota:<6}{setter}  gates: {' '.join(row['gates'])}")
    return 0


def _conflicts(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    now = datetime.now(UTC)
    since = (
        parse_moment(args.since, end_of_day=False)
        if args.since
        else now - timedelta(days=DEFAULT_CONFLICT_DAYS)
    )
    until = parse_moment(args.until, end_of_day=True) if args.until else now
    with closing(open_streams(args)) as streams:
        found = compound_lists.quota_conflicts(
            streams, issuer.store, compound=args.compound, since=since, until=until
        )
    if args.json:
        print(json.dumps([compound_lists.conflict_json(c) for c in found], ensure_ascii=False))
        return 0
    for conflict in found:
        print(f"{conflict.compound}  household {conflict.household_id}  quota {conflict.quota}")
        for gate, at in conflict.exits:
            mark = "  OVER QUOTA" if (gate, at) in conflict.over else ""
            print(f"    {at.isoformat()[:19].replace('T', ' ')}  {gate}{mark}")
    print(f"{len(found)} households over their quota", file=sys.stderr)
    return 0
