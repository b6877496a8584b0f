"""The `gate-sync trace ...` and `gate-sync ledgers ...` commands (see sync/trace.py)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from sync import ledgers, trace
from sync.issuer import Issuer
from sync.pull import parse_moment
from sync.store.streams import StreamStore

OpenStreams = Callable[[argparse.Namespace], StreamStore]


def add_commands(
    commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None], open_streams: OpenStreams
) -> None:
    """Add `trace` and `ledgers` to the `gate-sync` command parser."""
    traces = commands.add_parser(
        "trace", help="trace entries: by gates and time, a pass, a household, who was inside"
    ).add_subparsers(dest="trace_command", required=True)
    gates = traces.add_parser("gates", help="every entry at these gates in a time window")
    gates.add_argument("--gate", action="append", required=True, help="a gate id (repeatable)")
    gates.add_argument("--since", required=True, help="date or ISO time (local when no offset)")
    gates.add_argument("--until", required=True, help="last date (whole day) or ISO time")
    one_pass = traces.add_parser("pass", help="every entry of one pass, by time")
    one_pass.add_argument("pass_id")
    household = traces.add_parser(
        "household", help="every entry of a household's passes or naming it, by time"
    )
    household.add_argument("household_id")
    for command in (one_pass, household):
        command.add_argument("--since", help="date or ISO time (local when no offset)")
        command.add_argument("--until", help="last date (whole day) or ISO time")
    inside = traces.add_parser("inside", help="passes inside a compound at a moment")
    inside.add_argument(
        "--compound", required=True, help="the compound's id: its gates as `gates place` set them"
    )
    inside.add_argument(
        "--gate", action="append", help="instead: the compound's gates by hand (repeatable)"
    )
    inside.add_argument("--at", required=True, help="ISO time (local when no offset) or date")
    for command in (gates, one_pass, household, inside):
        _output_options(command)
        dsn_option(command)
        command.set_defaults(handler=lambda a, i: _trace(a, i, open_streams))

    ledger = commands.add_parser(
        "ledgers", help="community workers' ledgers as XLSX (with personal data)"
    )
    ledger.add_argument("ledger", choices=ledgers.LEDGERS)
    ledger.add_argument("--since", help="date or ISO time (local when no offset)")
    ledger.add_argument("--until", help="last date (whole day) or ISO time")
    ledger.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")
    dsn_option(ledger)
    ledger.set_defaults(handler=lambda a, i: _ledger(a, i, open_streams))


def _output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format", choices=["csv", "xlsx"], help="default: from --out's suffix, else csv"
    )
    command.add_argument("--out", type=Path, required=True, help="file to write")


def _window(args: argparse.Namespace) -> tuple[Any, Any]:
    since = parse_moment(args.since, end_of_day=False) if args.since else None
    until = parse_moment(args.until, end_of_day=True) if args.until else None
    if since is not None and until is not None and until <= since:
        raise ValueError("--until must be after --since")
    return since, until


def _trace(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    fmt: trace.TableFormat = args.format or (
        "xlsx" if args.out.suffix.lower() == ".xlsx" else "csv"
    )
    with closing(open_streams(args)) as streams:
        if args.trace_command == "inside":
            at = parse_moment(args.at, end_of_day=False)
            gates = args.gate or streams.compound_gates(args.compound)
            if not gates:
                raise ValueError(
                    f"no gate is placed in compound {args.compound}: `gate-sync gates place`"
                    " its gates, or name them with --gate"
                )
            rows = trace.inside_rows(streams, gates, at)
            # An XLSX sheet name: at most 31 characters, none of []:*?/\
            sheet = re.sub(r"[\[\]:*?/\\]", "_", f"inside-{args.compound}")[:31]
            table = trace.Table(trace.INSIDE_COLUMNS, rows, sheet=sheet)
        else:
            since, until = _window(args)
            if args.trace_command == "gates":
                rows_ = trace.gate_rows(streams, args.gate, since, until)
            elif args.trace_command == "pass":
                rows_ = trace.pass_rows(streams, args.pass_id, since, until)
            else:
                rows_ = trace.household_rows(streams, issuer.store, args.household_id, since, until)
            table = trace.trace_table(rows_)
        count = trace.write_table(table, fmt, args.out)
    what = "passes inside" if args.trace_command == "inside" else "entries"
    print(f"{count} {what} written to {args.out}", file=sys.stderr)
    return 0


def _ledger(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    if args.out.suffix.lower() != ".xlsx":
        raise ValueError("ledgers are XLSX: give --out FILE.xlsx")
    since, until = _window(args)
    with closing(open_streams(args)) as streams:
        table = ledgers.ledger_table(args.ledger, streams, issuer.store, since, until)
        count = trace.write_table(table, "xlsx", args.out)
    print(f"{count} rows written to {args.out}", file=sys.stderr)
    return 0
