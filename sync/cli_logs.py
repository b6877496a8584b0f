"""`gate-sync pull` and `gate-sync import-bundle`: the synced logs out, a USB bundle in.

``pull`` writes the centre's entries as CSV (Excel opens it), XLSX or JSON lines, from
the store here or over HTTP from a sync server (``--server``); ``import-bundle`` ingests
the signed bundle a gate with no network wrote (``gate-agent export-bundle``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync import bundle_import, pull
from sync.bundle import BundleError
from sync.cli_gates import OpenStreams
from sync.cli_serve import read_admin_token
from sync.pull import parse_moment


def register(
    commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None], open_streams: OpenStreams
) -> None:
    """Add `pull` and `import-bundle` to `gate-sync`."""
    pull = commands.add_parser("pull", help="export the synced logs (csv, xlsx, jsonl)")
    pull.add_argument("--since", help="date or ISO time (local when no offset)")
    pull.add_argument("--until", help="last date (whole day) or ISO time")
    pull.add_argument("--gate", help="one gate's entries only")
    pull.add_argument("--format", choices=["csv", "xlsx", "jsonl"], default="csv")
    pull.add_argument("--out", type=Path, help="file to write (default: standard output)")
    pull.add_argument("--server", help="pull over HTTP from this sync server, e.g. https://…")
    pull.add_argument(
        "--admin-token-file", type=Path, help="with --server: the admin token's file (mode 0600)"
    )
    dsn_option(pull)
    pull.set_defaults(handler=lambda a, i: _pull(a, open_streams))

    imp = commands.add_parser(
        "import-bundle", help="ingest a gate's signed entry bundle (.gsb) from a USB stick"
    )
    imp.add_argument("path", type=Path, help="the bundle file `gate-agent export-bundle` wrote")
    imp.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    dsn_option(imp)
    imp.set_defaults(handler=lambda a, i: _import_bundle(a, open_streams))


def _pull_filter(args: argparse.Namespace) -> pull.PullFilter:
    return pull.PullFilter(
        since=parse_moment(args.since, end_of_day=False) if args.since else None,
        until=parse_moment(args.until, end_of_day=True) if args.until else None,
        gate_id=args.gate,
    )


def _pull_progress(seen: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{seen} entries read", end="", file=sys.stderr, flush=True)


def _pull_done(count: int) -> int:
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{count} entries pulled", file=sys.stderr)
    return 0


def _pull(args: argparse.Namespace, open_streams: OpenStreams) -> int:
    if args.admin_token_file:
        raise ValueError("--admin-token-file goes with --server")
    wanted = _pull_filter(args)
    with closing(open_streams(args)) as streams:
        count = pull.write(pull.rows(streams, wanted, _pull_progress), args.format, args.out)
    return _pull_done(count)


def pull_remote(args: argparse.Namespace) -> int:
    """`gate-sync pull --server URL`: the logs over HTTP, with no central data folder here."""
    from sync.pull_http import remote_rows  # noqa: PLC0415 - only remote pulls need httpx

    if not args.admin_token_file:
        raise ValueError("--server needs --admin-token-file")
    if args.dsn:
        raise ValueError("--dsn reads the database from here, --server over HTTP: give one")
    token = read_admin_token(args.admin_token_file)
    wanted = _pull_filter(args)
    rows = remote_rows(args.server, token, wanted, _pull_progress)
    return _pull_done(pull.write(rows, args.format, args.out))


#: `import-bundle` exit codes by refusal code (anything else refused: 2).
IMPORT_EXIT_CODES = {"gap": 3, "content_conflict": 4}


def _import_bundle(args: argparse.Namespace, open_streams: OpenStreams) -> int:
    def progress(done: int, total: int) -> None:
        end = "" if sys.stderr.isatty() else "\n"
        print(f"\r{done}/{total} entries imported", end=end, file=sys.stderr, flush=True)

    with closing(open_streams(args)) as streams:
        try:
            loaded = bundle_import.load(args.path, streams)
            summary = bundle_import.ingest(
                loaded, streams, now=datetime.now(UTC), progress=progress
            )
        except BundleError as exc:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            stored = getattr(exc, "stored_new", 0)
            print(f"gate-sync: import refused [{exc.code}]: {exc.detail}", file=sys.stderr)
            if stored:
                print(f"gate-sync: {stored} entries before it were stored", file=sys.stderr)
            return IMPORT_EXIT_CODES.get(exc.code, 2)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({**vars(summary), "flagged": list(summary.flagged)}))
    else:
        print(
            f"gate {summary.gate_id} stream {summary.stream_id} entries"
            f" {summary.first_seq}..{summary.last_seq}: {summary.stored_new} stored new,"
            f" {summary.repeats} repeats, {len(summary.flagged)} flagged;"
            f" the centre holds through {summary.stored_through}"
        )
        if summary.flagged:
            print(f"flagged (stored, marked malformed): {list(summary.flagged)}")
    return 0
