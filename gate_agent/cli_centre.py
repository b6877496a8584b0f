"""`gate-agent sync`, `export-bundle` and `lists`: what goes to the centre, what comes back.

``sync enrol`` trades a one-time code for the gate's token and pins the centre key;
``export-bundle`` writes the unsynced entries to a signed file for a USB stick when
there is no network; ``lists import`` applies a signed lists file carried the other way.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate_agent.bundle_export import ExportRefused, export_bundle
from gate_agent.clock import SystemClock
from gate_agent.config import GateConfig
from gate_agent.ledger.entries import Ledger
from gate_agent.ledger.state import ListChange
from gate_agent.uplink_http import enrol, load_token, save_token, token_path
from sync.bundle import BUNDLE_SUFFIX
from sync.lists import ListsRefused, centre_key_id, verify_lists

#: `export-bundle` exit codes by refusal code.
EXPORT_EXIT_CODES = {"not_enrolled": 2, "nothing_to_export": 3, "bad_from_seq": 2}

ConfigOf = Callable[[argparse.Namespace], GateConfig]


def register(commands: Any, config_of: ConfigOf) -> None:
    """Add `sync`, `export-bundle` and `lists` to `gate-agent`."""
    sync = commands.add_parser("sync", help="uploading to the central sync server")
    sync_commands = sync.add_subparsers(dest="sync_command", required=True)
    enrol_ = sync_commands.add_parser("enrol", help="enrol with a one-time code from the centre")
    enrol_.add_argument("--code", required=True, help="from `gate-sync gates enrol GATE_ID`")
    enrol_.set_defaults(handler=lambda args: _sync_enrol(config_of(args), args))
    sync_commands.add_parser("status", help="backlog, last success, alarm").set_defaults(
        handler=lambda args: _sync_status(config_of(args))
    )

    export = commands.add_parser(
        "export-bundle", help="write the unsynced entries to a signed file (for a USB stick)"
    )
    export.add_argument(
        "path", type=Path, help=f"file to write, or a folder to write a {BUNDLE_SUFFIX} file in"
    )
    export.add_argument(
        "--from-seq",
        type=int,
        help="start at this entry rather than after the centre's cursor (a lost stick)",
    )
    export.set_defaults(handler=lambda args: _export_bundle(config_of(args), args))

    lists = commands.add_parser("lists", help="the centre's lists held by this gate")
    lists_commands = lists.add_subparsers(dest="lists_command", required=True)
    load = lists_commands.add_parser("import", help="apply a signed lists file (offline path)")
    load.add_argument("bundle", type=Path)
    load.add_argument(
        "--trust-key",
        metavar="'ID PUBKEY'",
        help="a gate not yet enrolled: the centre key to pin, as `gate-sync keys centre` prints",
    )
    load.set_defaults(handler=lambda args: _lists_import(config_of(args), args))
    lists_commands.add_parser("show", help="list versions and sizes").set_defaults(
        handler=lambda args: _lists_show(config_of(args))
    )


def _sync_enrol(config: GateConfig, args: argparse.Namespace) -> int:
    if not config.sync.server_url:
        raise ValueError("set [sync] server_url in the config first")
    enrolment = enrol(
        config.sync.server_url, config.gate.id, args.code, place=config.gate.identity()
    )
    with _open_ledger(config) as ledger:
        # The key first: a token without it would fetch lists the gate cannot trust.
        ledger.state.pin_centre_key(
            enrolment.centre_kid,
            enrolment.centre_public_key,
            by=f"enrolment with {config.sync.server_url}",
            at=datetime.now(UTC),
        )
        save_token(token_path(config.gate.data_dir), enrolment.token)
        ledger.sync.clear_alarm()
    print(
        f"gate {config.gate.id} enrolled with {config.sync.server_url}"
        f" (centre key {enrolment.centre_kid}); restart the agent"
    )
    return 0


def _sync_status(config: GateConfig) -> int:
    with _open_ledger(config) as ledger:
        status = ledger.sync.status()
    print(f"stream {status.stream_id}: acknowledged through {status.acked_through} "
          f"of {status.last_seq}, backlog {status.backlog}")  # fmt: skip
    print(f"last success: {status.last_success_at or 'never'}")
    if status.alarm_code:
        print(f"ALARM {status.alarm_code}: {status.alarm_text}")
        return 2
    return 0


def _export_bundle(config: GateConfig, args: argparse.Namespace) -> int:
    token = load_token(token_path(config.gate.data_dir))
    with _open_ledger(config) as ledger:
        path = args.path
        if path.is_dir():
            last = ledger.last_seq()
            path = path / f"{config.gate.id}-{ledger.stream_id[:8]}-{last}{BUNDLE_SUFFIX}"
        try:
            summary = export_bundle(
                ledger, path, token=token, clock=SystemClock(), from_seq=args.from_seq
            )
        except ExportRefused as exc:
            print(f"gate-agent: export refused [{exc.code}]: {exc.detail}", file=sys.stderr)
            return EXPORT_EXIT_CODES[exc.code]
    print(
        f"{summary.path}: entries {summary.first_seq}..{summary.last_seq} of stream"
        f" {summary.stream_id} ({summary.size_bytes} bytes); the centre had acknowledged"
        f" through {summary.acked_through}. Import it with `gate-sync import-bundle`."
    )
    return 0


def _lists_import(config: GateConfig, args: argparse.Namespace) -> int:
    document = args.bundle.read_bytes()
    with _open_ledger(config) as ledger:
        state = ledger.state
        trusted = state.centre_keys()
        if not trusted:
            trusted = _first_centre_key(document, args.trust_key)
        try:
            payload = verify_lists(document, trusted, gate_id=config.gate.id)
        except ListsRefused as exc:
            raise ValueError(f"{args.bundle}: refused ({exc.code}): {exc.detail}") from exc
        if not state.centre_keys():
            ((kid, public),) = trusted.items()
            state.pin_centre_key(
                kid, public, by=f"lists import {args.bundle}", at=datetime.now(UTC)
            )
        changes = [
            ListChange(u.name, u.version, u.items, u.base_version, u.removed) for u in payload.lists
        ]
        applied = state.apply_changes(changes)
        versions = {**state.list_versions(), "directory": state.directory_status().version}
    for name, version in sorted(versions.items()):
        print(f"{name}: version {version} ({'applied' if name in applied else 'unchanged'})")
    return 0


def _first_centre_key(document: bytes, trust_key: str | None) -> dict[str, bytes]:
    """A gate that never enrolled trusts the key an operator names, read off the file."""
    try:
        parsed = json.loads(document)
        kid = parsed["kid"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ValueError("not a signed lists file (gate-sync lists export)") from exc
    if trust_key is None:
        raise ValueError(
            f"no centre key is pinned yet: the file is signed by {kid}. Check that id with"
            " `gate-sync keys centre` at the centre, then repeat with --trust-key ID PUBKEY"
        )
    key_id_text, _, public_text = trust_key.partition(" ")
    try:
        public = base64.b64decode(public_text.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("--trust-key is 'ID PUBKEY' as `gate-sync keys centre` prints") from exc
    if len(public) != 32 or centre_key_id(public) != key_id_text:
        raise ValueError("--trust-key is 'ID PUBKEY' as `gate-sync keys centre` prints")
    return {key_id_text: public}


def _lists_show(config: GateConfig) -> int:
    with _open_ledger(config) as ledger:
        state = ledger.state
        versions = state.list_versions()
        sizes = {
            "keys": len(state.issuer_keys()),
            "revocations": len(state.revoked_pass_ids()),
            "isolations": len(state.isolations()),
            "settings": len(state.settings()),
        }
        ages = state.list_ages(datetime.now(UTC))
    for name, version in sorted(versions.items()):
        age = ages.get(name)
        since = f", applied {age} ago" if age is not None else ""
        print(f"{name}: version {version}, {sizes.get(name, 0)} items{since}")
    return 0


def _open_ledger(config: GateConfig) -> Ledger:
    return Ledger.open(config.ledger_path, gate_id=config.gate.id)
