"""`gate-sync`: the central server's admin tool (keys, passes, lists for gates)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import segno
from pydantic import ValidationError

from gate_agent.core.passes import (
    ExitQuota,
    PassFieldError,
    PassFields,
    PassKind,
    Scope,
    mask_name,
)
from sync import pull
from sync.errors import SyncError
from sync.issuer import Issuer, new_pass_id
from sync.protocol import IsolationItem
from sync.server.auth import new_enrol_code
from sync.store import CentralStore, SqliteStreamStore, StreamStore

DEFAULT_DATA_DIR = Path("/var/lib/gate-sync")
_GATE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `gate-sync` command; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data_dir = Path(args.data_dir or os.environ.get("GATE_SYNC_DATA") or DEFAULT_DATA_DIR)
    try:
        with CentralStore(data_dir / "central.sqlite3") as store:
            issuer = Issuer(data_dir, store)
            result: int = args.handler(args, issuer)
            return result
    except (SyncError, PassFieldError, ValueError, OSError) as exc:
        print(f"gate-sync: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-sync", description=__doc__)
    parser.add_argument(
        "--data-dir", help=f"central data folder (env GATE_SYNC_DATA, default {DEFAULT_DATA_DIR})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="issuer keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("new", help="create an issuer key pair").set_defaults(handler=_keys_new)
    keys.add_parser("list", help="list issuer keys").set_defaults(handler=_keys_list)

    passes = commands.add_parser("passes", help="issue and revoke passes").add_subparsers(
        dest="passes_command", required=True
    )
    issue = passes.add_parser("issue", help="issue one pass and print its text")
    issue.add_argument("--kind", required=True, choices=[k.value for k in PassKind])
    issue.add_argument("--household", required=True, help="household id, e.g. H0001")
    issue.add_argument("--name", required=True, help="full name; only a masked form is kept")
    issue.add_argument("--unit", default="", help="building-unit-room, e.g. 3-2-501")
    issue.add_argument("--scope", required=True, help="community:ID, compound:ID or gates:ID,ID")
    issue.add_argument("--valid-from", help="date or ISO time (default now)")
    until = issue.add_mutually_exclusive_group(required=True)
    until.add_argument("--valid-until", help="last valid date (whole day) or ISO time")
    until.add_argument("--days", type=int, help="valid for this many days from --valid-from")
    issue.add_argument("--quota", help="household exit quota N/D: N exits per D days")
    issue.add_argument("--pass-id", help="use this id instead of a random one")
    issue.add_argument("--png", type=Path, help="also write the QR code as a PNG image")
    issue.add_argument("--json", action="store_true", help="print a JSON object")
    issue.set_defaults(handler=_passes_issue)
    revoke = passes.add_parser("revoke", help="revoke a pass (gates refuse it after import)")
    revoke.add_argument("pass_id")
    revoke.add_argument("--reason", required=True, help="why, for the audit trail")
    revoke.set_defaults(handler=_passes_revoke)

    households = commands.add_parser("households", help="home isolation").add_subparsers(
        dest="households_command", required=True
    )
    isolate = households.add_parser("isolate", help="put a household in home isolation")
    isolate.add_argument("household")
    isolate.add_argument("--from", dest="start", help="date or ISO time (default now)")
    isolate.add_argument("--until", required=True, help="last day (whole day) or ISO time")
    isolate.add_argument("--note", default="", help="e.g. the order's reference")
    isolate.set_defaults(handler=_households_isolate)
    lift = households.add_parser("lift", help="end a household's isolation now")
    lift.add_argument("household")
    lift.set_defaults(handler=_households_lift)

    lists = commands.add_parser("lists", help="lists for gates").add_subparsers(
        dest="lists_command", required=True
    )
    export = lists.add_parser("export", help="write the lists bundle gates import")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.set_defaults(handler=_lists_export)

    gates = commands.add_parser("gates", help="gates of the fleet").add_subparsers(
        dest="gates_command", required=True
    )
    enrol = gates.add_parser("enrol", help="make a one-time enrolment code for a gate")
    enrol.add_argument("gate_id")
    enrol.add_argument("--hours", type=int, default=24, help="how long the code is valid")
    _dsn_option(enrol)
    enrol.set_defaults(handler=_gates_enrol)

    pull = commands.add_parser("pull", help="export the synced logs (csv, xlsx, jsonl)")
    pull.add_argument("--since", help="date or ISO time (local when no offset)")
    pull.add_argument("--until", help="last date (whole day) or ISO time")
    pull.add_argument("--gate", help="one gate's entries only")
    pull.add_argument("--format", choices=["csv", "xlsx", "jsonl"], default="csv")
    pull.add_argument("--out", type=Path, help="file to write (default: standard output)")
    _dsn_option(pull)
    pull.set_defaults(handler=_pull)

    serve = commands.add_parser("serve", help="run the central sync server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8600, help="port to listen on")
    serve.add_argument(
        "--admin-token-file",
        type=Path,
        required=True,
        help="file holding the admin bearer token (mode 0600, at least 16 characters)",
    )
    _dsn_option(serve)
    serve.set_defaults(handler=_serve)
    return parser


def _dsn_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--dsn",
        help="keep gates' streams in this PostgreSQL database (libpq DSN, e.g."
        " postgresql://gate_sync@db/gate_sync; env GATE_SYNC_DSN); default: the data"
        " folder's SQLite file. Keys, passes and lists stay in the data folder.",
    )


def open_streams(args: argparse.Namespace, issuer: Issuer) -> StreamStore:
    """The stream store: PostgreSQL when a DSN is given (option or env), else the SQLite file."""
    dsn = args.dsn or os.environ.get("GATE_SYNC_DSN")
    if dsn:
        # Imported only here: psycopg is the optional `postgres` extra.
        from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

        return PostgresStreamStore(dsn)
    return SqliteStreamStore(issuer.store.path)


def _keys_new(args: argparse.Namespace, issuer: Issuer) -> int:
    print(issuer.new_key(datetime.now(UTC)))
    return 0


def _keys_list(args: argparse.Namespace, issuer: Issuer) -> int:
    for row in issuer.store.issuer_keys():
        state = f"retired {row.retired_at}" if row.retired_at else "active"
        print(f"{row.kid}  created {row.created_at}  {state}")
    return 0


def _passes_issue(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    start = parse_moment(args.valid_from, end_of_day=False) if args.valid_from else now
    start = start.replace(microsecond=0)
    if args.days is not None:
        if args.days < 1:
            raise ValueError("--days must be at least 1")
        end = start + timedelta(days=args.days)
    else:
        end = parse_moment(args.valid_until, end_of_day=True)
    fields = PassFields(
        pass_id=args.pass_id or new_pass_id(),
        kind=PassKind(args.kind),
        household_id=args.household,
        scope=Scope.parse(args.scope),
        valid_from=start,
        valid_until=end,
        display_name=mask_name(args.name),
        unit=args.unit,
        exit_quota=_quota(args.quota),
    )
    text = issuer.issue(fields, now)
    qr_version = None
    if args.png:
        qr_version = write_qr_png(text, args.png)
    if args.json:
        record: dict[str, object] = {
            "pass_id": fields.pass_id,
            "text": text,
            "valid_until": end.isoformat(),
        }
        if qr_version is not None:
            record["png"] = str(args.png)
            record["qr_version"] = qr_version
        print(json.dumps(record, ensure_ascii=False))
    else:
        print(text)
    return 0


def _passes_revoke(args: argparse.Namespace, issuer: Issuer) -> int:
    changed = issuer.store.revoke(args.pass_id, args.reason, datetime.now(UTC))
    print(f"{args.pass_id} {'revoked' if changed else 'was already revoked'}")
    return 0


def _households_isolate(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    start = parse_moment(args.start, end_of_day=False) if args.start else now.replace(microsecond=0)
    end = parse_moment(args.until, end_of_day=True)
    try:
        item = IsolationItem(household_id=args.household, start=start, end=end)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"] for e in exc.errors())) from exc
    issuer.store.isolate(item.household_id, item.start, item.end, args.note, now)
    print(f"{args.household} in isolation {start.isoformat()} – {end.isoformat()}")
    return 0


def _households_lift(args: argparse.Namespace, issuer: Issuer) -> int:
    issuer.store.lift_isolation(args.household, datetime.now(UTC))
    print(f"{args.household}: isolation lifted")
    return 0


def _lists_export(args: argparse.Namespace, issuer: Issuer) -> int:
    text = issuer.bundle(datetime.now(UTC)).model_dump_json(indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _gates_enrol(args: argparse.Namespace, issuer: Issuer) -> int:
    if not _GATE_ID.match(args.gate_id):
        raise ValueError(f"not a gate id: {args.gate_id!r}")
    with closing(open_streams(args, issuer)) as streams:
        code = new_enrol_code(streams, args.gate_id, datetime.now(UTC), args.hours)
    print(code)
    return 0


def _pull(args: argparse.Namespace, issuer: Issuer) -> int:
    wanted = pull.PullFilter(
        since=parse_moment(args.since, end_of_day=False) if args.since else None,
        until=parse_moment(args.until, end_of_day=True) if args.until else None,
        gate_id=args.gate,
    )

    def progress(seen: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{seen} entries read", end="", file=sys.stderr, flush=True)

    with closing(open_streams(args, issuer)) as streams:
        count = pull.write(pull.rows(streams, wanted, progress), args.format, args.out)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{count} entries pulled", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace, issuer: Issuer) -> int:
    import uvicorn  # noqa: PLC0415 - only `serve` needs the server stack

    from sync.server.app import create_app  # noqa: PLC0415

    admin_token = read_admin_token(args.admin_token_file)
    with closing(open_streams(args, issuer)) as streams:
        app = create_app(streams, issuer, admin_token)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def read_admin_token(path: Path) -> str:
    """The admin token from its file, refused when others may read it or it is too short."""
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is readable by others: chmod 600 it")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16 or not token.isprintable():
        raise ValueError(f"{path}: the admin token must be at least 16 printable characters")
    return token


def parse_moment(text: str, *, end_of_day: bool) -> datetime:
    """A date (the whole day, local time) or an ISO time (local when no offset is given)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
    else:
        moment = datetime.combine(day + timedelta(days=end_of_day), time())
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).replace(microsecond=0)


def write_qr_png(text: str, path: Path) -> int:
    """Write a pass as a QR code PNG at error level M; returns the QR version used."""
    code = segno.make(text, error="m", boost_error=False, micro=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    code.save(str(path), scale=8, border=4)
    return int(code.version)


def _quota(text: str | None) -> ExitQuota | None:
    if not text:
        return None
    exits, sep, days = text.partition("/")
    if not (sep and exits.isdigit() and days.isdigit()):
        raise ValueError(f"--quota must be N/D, e.g. 1/2: {text!r}")
    return ExitQuota(int(exits), int(days))


if __name__ == "__main__":
    sys.exit(main())
