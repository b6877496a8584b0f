"""`gate-sync`: the central server's admin tool (keys, passes, lists for gates)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno

from gate_agent.core.passes import PassFieldError, PassKind
from gate_agent.journal import configure_logging
from sync import (
    admin_ops,
    cli_accounts,
    cli_admin,
    cli_backup,
    cli_compounds,
    cli_gates,
    cli_logs,
    cli_serve,
    cli_visitors,
)
from sync.cards import (
    CARDS_PER_SHEET,
    DEFAULT_TZ,
    card_for,
    progress_printer,
    render_sheet,
    select,
    store_keyring,
    timezone,
)
from sync.cli_serve import read_admin_token
from sync.compound_lists import derived_lists
from sync.errors import CardRefused, SyncError
from sync.issuer import Issuer
from sync.lists import COMPOUND_LISTS
from sync.server.auth import new_enrol_code
from sync.store import IssuerStore, SqliteCentralStore, SqliteStreamStore, StreamStore
from sync.trace_cli import add_commands as add_trace_commands

DEFAULT_DATA_DIR = Path("/var/lib/gate-sync")
#: The data folder's database when no DSN is given: issuer data and streams both.
CENTRAL_FILE = "central.sqlite3"
_GATE_ID = cli_gates.GATE_ID


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `gate-sync` command; returns the process exit code."""
    args = _parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    configure_logging(logging.WARNING, identifier="gate-sync", target=args.log_target)
    data_dir = Path(args.data_dir or os.environ.get("GATE_SYNC_DATA") or DEFAULT_DATA_DIR)
    args.data_path = data_dir
    try:
        if args.command == "pull" and args.server:
            # Over HTTP from an admin's machine: no central data folder here.
            return cli_logs.pull_remote(args)
        args.dsn = args.dsn or os.environ.get("GATE_SYNC_DSN") or None
        if getattr(args, "no_store", False):
            # Backups read the data folder as files: opening a store could create one.
            return cli_backup.run(args)
        with closing(open_central(data_dir, args.dsn)) as store:
            # Private key files stay in the data folder even when the rest is in PostgreSQL.
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
    parser.add_argument("--dsn", default=None, help=_DSN_HELP)
    parser.add_argument(
        "--log-target",
        choices=["auto", "journal", "stderr"],
        default="auto",
        help="where logs go: the journal with fields (auto: when systemd runs us) or stderr",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="issuer keys").add_subparsers(
        dest="keys_command", required=True
    )
    key_new = keys.add_parser("new", help="create an issuer key pair")
    key_new.set_defaults(handler=_keys_new)
    key_list = keys.add_parser("list", help="list issuer keys: active, rotating (until), retired")
    key_list.set_defaults(handler=_keys_list)
    key_rotate = keys.add_parser(
        "rotate", help="make a new signing key; the old one verifies until the overlap ends"
    )
    key_rotate.add_argument(
        "--overlap-days",
        type=float,
        default=14,
        help="days the old key keeps verifying at gates, then it is retired (14)",
    )
    key_rotate.set_defaults(handler=_keys_rotate)
    key_retire = keys.add_parser(
        "retire", help="retire an issuer key: gates refuse its passes (e.g. a leaked key)"
    )
    key_retire.add_argument("kid", help="the key id, as `keys list` shows it")
    when = key_retire.add_mutually_exclusive_group()
    when.add_argument("--now", action="store_true", help="at once (the default)")
    when.add_argument("--at", help="plan it for this date or ISO time instead")
    key_retire.add_argument(
        "--force", action="store_true", help="even the last active key (then nothing signs)"
    )
    key_retire.set_defaults(handler=_keys_retire)
    key_centre = keys.add_parser(
        "centre", help="show the centre key that signs the gates' lists (made on first use)"
    )
    key_centre.set_defaults(handler=_keys_centre)

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
    cards = passes.add_parser(
        "cards", help="an A4 HTML page of printable pass cards (print from the browser)"
    )
    cards.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    cards.add_argument(
        "--household", action="append", default=[], help="this household's passes (repeatable)"
    )
    cards.add_argument(
        "--pass", dest="pass_ids", action="append", default=[], help="this pass (repeatable)"
    )
    cards.add_argument("--all-active", action="store_true", help="every pass in force or to come")
    cards.add_argument("--tz", default=DEFAULT_TZ, help=f"the community's timezone ({DEFAULT_TZ})")
    cards.set_defaults(handler=_passes_cards)
    card = passes.add_parser("card", help="one pass's card as a PNG for a phone screen")
    card.add_argument("pass_id")
    card.add_argument("--png", type=Path, required=True, help="the PNG file to write")
    card.add_argument("--tz", default=DEFAULT_TZ, help=f"the community's timezone ({DEFAULT_TZ})")
    card.add_argument("--font", type=Path, help="a font file with Chinese (default: found)")
    card.set_defaults(handler=_passes_card)
    revoke = passes.add_parser("revoke", help="revoke a pass (gates refuse it after import)")
    revoke.add_argument("pass_id")
    revoke.add_argument("--reason", required=True, help="why, for the audit trail")
    revoke.set_defaults(handler=_passes_revoke)
    cli_admin.register(commands, passes)

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
    export = lists.add_parser("export", help="write the signed lists file gates import")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument(
        "--gate", help="for this gate only (with its own and its compound's settings and lists)"
    )
    export.set_defaults(handler=_lists_export)

    gates = commands.add_parser("gates", help="gates of the fleet").add_subparsers(
        dest="gates_command", required=True
    )
    enrol = gates.add_parser("enrol", help="make a one-time enrolment code for a gate")
    enrol.add_argument("gate_id")
    enrol.add_argument("--hours", type=int, default=24, help="how long the code is valid")
    enrol.add_argument("--compound", help="the compound the gate is in (see `gates place`)")
    enrol.add_argument("--community", help="the community the gate is in")
    _dsn_option(enrol)
    enrol.set_defaults(handler=_gates_enrol)
    cli_gates.register(gates, _dsn_option, open_streams)
    cli_visitors.register(commands, _dsn_option)
    cli_compounds.register_place(gates, _dsn_option, open_streams)
    cli_compounds.register(commands, _dsn_option, open_streams)
    leaves = (
        key_new,
        key_list,
        key_rotate,
        key_retire,
        key_centre,
        issue,
        revoke,
        isolate,
        lift,
        export,
    )
    for command in (*leaves, cards, card):
        _dsn_option(command)

    cli_logs.register(commands, _dsn_option, open_streams)

    add_trace_commands(commands, _dsn_option, open_streams)
    cli_accounts.register(commands, _dsn_option)
    cli_backup.register(commands, _dsn_option)
    cli_serve.register(commands, _dsn_option, open_streams)

    return parser


_DSN_HELP = (
    "keep the centre's data (issuer keys' public halves, passes, revocations, lists,"
    " settings, gates' streams) in this PostgreSQL database (libpq DSN, e.g."
    " postgresql://gate_sync@db/gate_sync; env GATE_SYNC_DSN); default: the data"
    " folder's SQLite file. Private key files stay in the data folder's keys/."
)


def _dsn_option(command: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the command it wins; not given, the top-level value stays.
    command.add_argument("--dsn", default=argparse.SUPPRESS, help=_DSN_HELP)


def open_central(data_dir: Path, dsn: str | None) -> IssuerStore:
    """The issuer-side store: PostgreSQL when given a DSN, else the data folder's SQLite file."""
    if dsn:
        # Imported only here: psycopg is the optional `postgres` extra.
        from sync.store.central_postgres import PostgresCentralStore  # noqa: PLC0415

        return PostgresCentralStore(dsn)
    return SqliteCentralStore(data_dir / CENTRAL_FILE)


def open_streams(args: argparse.Namespace) -> StreamStore:
    """The stream store: PostgreSQL when a DSN is given (option or env), else the SQLite file."""
    if args.dsn:
        from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

        return PostgresStreamStore(args.dsn)
    return SqliteStreamStore(args.data_path / CENTRAL_FILE)


def _keys_new(args: argparse.Namespace, issuer: Issuer) -> int:
    print(issuer.new_key(datetime.now(UTC)))
    return 0


def _keys_list(args: argparse.Namespace, issuer: Issuer) -> int:
    issuer.retire_due(datetime.now(UTC))
    for row in issuer.store.issuer_keys():
        if row.retired_at is not None:
            state = f"retired {row.retired_at}"
        elif row.retire_at is not None:
            state = f"rotating until {row.retire_at}"
        else:
            state = "active"
        print(f"{row.kid}  created {row.created_at}  {state}")
    return 0


def _keys_rotate(args: argparse.Namespace, issuer: Issuer) -> int:
    rotation = admin_ops.rotate_keys(issuer, datetime.now(UTC), args.overlap_days)
    print(rotation.kid)
    until = rotation.retire_at.isoformat(timespec="seconds")
    for old, live in sorted(rotation.rotating.items()):
        print(
            f"{old} verifies until {until}, then is retired: {live} unexpired passes carry it;"
            " reissue them before then",
            file=sys.stderr,
        )
    return 0


def _keys_retire(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    changed, at = admin_ops.retire_key(issuer, now, args.kid, at=args.at, force=args.force)
    if not changed:
        print(f"{args.kid} was already retired")
    elif at is not None and at > now:
        print(f"{args.kid} retires at {at.isoformat()}; gates refuse its passes from then")
    else:
        print(f"{args.kid} retired: gates refuse its passes once they fetch the keys list")
    return 0


def _passes_issue(args: argparse.Namespace, issuer: Issuer) -> int:
    fields, text = admin_ops.issue_pass(
        issuer,
        datetime.now(UTC),
        kind=args.kind,
        household=args.household,
        name=args.name,
        scope=args.scope,
        unit=args.unit,
        valid_from=args.valid_from,
        valid_until=args.valid_until,
        days=args.days,
        quota=args.quota,
        pass_id=args.pass_id,
    )
    end = fields.valid_until
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


def _passes_cards(args: argparse.Namespace, issuer: Issuer) -> int:
    if not (args.household or args.pass_ids or args.all_active):
        raise ValueError("say whose cards: --household H, --pass P (repeatable) or --all-active")
    tz = timezone(args.tz)
    chosen, skipped = select(
        issuer.store,
        datetime.now(UTC),
        households=args.household,
        pass_ids=args.pass_ids,
        all_active=args.all_active,
    )
    for item in skipped:
        print(f"skipped {item.pass_id}: {item.detail}", file=sys.stderr)
    if not chosen:
        raise CardRefused("no-cards", "no pass to print a card for")
    page = render_sheet(chosen, tz, progress=progress_printer(sys.stderr.write))
    _write_atomically(args.out, page.encode("utf-8"))
    sheets = -(-len(chosen) // CARDS_PER_SHEET)
    print(
        f"{len(chosen)} cards on {sheets} A4 pages written to {args.out}"
        + (f"; {len(skipped)} skipped" if skipped else "")
    )
    return 0


def _passes_card(args: argparse.Namespace, issuer: Issuer) -> int:
    from sync.card_png import find_cjk_font, render_png  # noqa: PLC0415 - Pillow only here

    tz = timezone(args.tz)
    font = args.font if args.font else find_cjk_font()
    if not font.is_file():
        raise ValueError(f"--font {font}: no such file")
    card = card_for(
        issuer.store.get_pass(args.pass_id), store_keyring(issuer.store), datetime.now(UTC)
    )
    _write_atomically(args.png, render_png(card, tz, font))
    print(f"card of pass {args.pass_id} written to {args.png}")
    return 0


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a whole file or leave the old one: never a half-written card to print."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _passes_revoke(args: argparse.Namespace, issuer: Issuer) -> int:
    changed = issuer.store.revoke(args.pass_id, args.reason, datetime.now(UTC))
    print(f"{args.pass_id} {'revoked' if changed else 'was already revoked'}")
    return 0


def _households_isolate(args: argparse.Namespace, issuer: Issuer) -> int:
    start, end = admin_ops.isolate(
        issuer.store,
        datetime.now(UTC),
        household=args.household,
        start=args.start,
        until=args.until,
        note=args.note,
    )
    print(f"{args.household} in isolation {start.isoformat()} – {end.isoformat()}")
    return 0


def _households_lift(args: argparse.Namespace, issuer: Issuer) -> int:
    issuer.store.lift_isolation(args.household, datetime.now(UTC))
    print(f"{args.household}: isolation lifted")
    return 0


def _keys_centre(args: argparse.Namespace, issuer: Issuer) -> int:
    key = issuer.centre_public()
    print(f"{key['kid']} {key['public_key']}")
    return 0


def _lists_export(args: argparse.Namespace, issuer: Issuer) -> int:
    if args.gate is not None and not _GATE_ID.match(args.gate):
        raise ValueError(f"not a gate id: {args.gate!r}")
    now = datetime.now(UTC)
    if args.gate is None:
        document = issuer.signed_lists(now, gate_id=None)
    else:
        # For one gate: its compound's settings and lists too (a gate that reads the
        # compound lists understands the settings that go with them).
        with closing(open_streams(args)) as streams:
            compound = streams.gate_place(args.gate)[0]
            have = dict.fromkeys(COMPOUND_LISTS, 0)
            extra = (
                []
                if compound is None
                else derived_lists(streams, issuer.store, compound=compound, have=have, now=now)
            )
        document = issuer.signed_lists(
            now, gate_id=args.gate, have=have, compound=compound, extra=extra
        )
    text = json.dumps(document, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"lists signed by centre key {document['kid']} written to {args.out}")
    else:
        print(text)
    return 0


def _gates_enrol(args: argparse.Namespace, issuer: Issuer) -> int:
    if not _GATE_ID.match(args.gate_id):
        raise ValueError(f"not a gate id: {args.gate_id!r}")
    if args.community is not None and args.compound is None:
        raise ValueError("--community needs --compound")
    with closing(open_streams(args)) as streams:
        if args.compound is not None:
            cli_compounds.place_gate(streams, issuer, args.gate_id, args.compound, args.community)
        code = new_enrol_code(streams, args.gate_id, datetime.now(UTC), args.hours)
    print(code)
    return 0


def build_app(argv: list[str]) -> Any:
    """The server app of a ``gate-sync ... serve`` command line, for one worker process.

    Its stores stay open for the life of the process.
    """
    from sync.server.app import create_app  # noqa: PLC0415

    args = _parser().parse_args(argv)
    # A worker process of its own: it logs as the main process does (to the journal
    # under systemd, which it inherits stderr from).
    configure_logging(logging.WARNING, identifier="gate-sync", target=args.log_target)
    args.data_path = Path(args.data_dir or os.environ.get("GATE_SYNC_DATA") or DEFAULT_DATA_DIR)
    args.dsn = args.dsn or os.environ.get("GATE_SYNC_DSN") or None
    store = open_central(args.data_path, args.dsn)
    issuer = Issuer(args.data_path, store)
    streams = open_streams(args)
    token = read_admin_token(args.admin_token_file)
    app = create_app(streams, issuer, token, **cli_serve.metrics_options(args))
    app.router.on_shutdown.extend([streams.close, store.close])
    return app


def write_qr_png(text: str, path: Path) -> int:
    """Write a pass as a QR code PNG at error level M; returns the QR version used."""
    code = segno.make(text, error="m", boost_error=False, micro=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    code.save(str(path), scale=8, border=4)
    return int(code.version)


if __name__ == "__main__":
    sys.exit(main())
