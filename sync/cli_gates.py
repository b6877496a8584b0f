"""`gate-sync gates set|unset|settings|list|log`: gate settings and the fleet at a terminal.

Settings (mode, thresholds) go down to gates with the signed lists (sync/lists.py);
the fleet view and a gate's sync log are the terminal's side of `GET /v1/admin/gates`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.issuer import Issuer
from sync.lists import SETTING_KEYS, check_setting
from sync.store.streams import StreamStore

OpenStreams = Callable[[argparse.Namespace], StreamStore]
GATE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")


def register(
    gates: Any, dsn_option: Callable[[argparse.ArgumentParser], None], open_streams: OpenStreams
) -> None:
    """Add `set`, `unset`, `settings`, `list` and `log` under `gate-sync gates`."""
    set_ = gates.add_parser("set", help="set gate settings (mode, thresholds) sent to gates")
    set_.add_argument("settings", nargs="+", metavar="KEY=VALUE", help=_SETTINGS_HELP)
    set_.add_argument("--gate", help="this gate only (default: every gate)")
    set_.add_argument("--by", default=os.environ.get("USER") or "admin", help="who sets it")
    set_.set_defaults(handler=_gates_set)
    unset = gates.add_parser("unset", help="clear gate settings (gates keep their config's)")
    unset.add_argument("keys", nargs="+", metavar="KEY")
    unset.add_argument("--gate", help="this gate only (default: the every-gate value)")
    unset.add_argument("--by", default=os.environ.get("USER") or "admin", help="who clears it")
    unset.set_defaults(handler=_gates_unset)
    settings = gates.add_parser("settings", help="show the gate settings")
    settings.set_defaults(handler=_gates_settings)
    listing = gates.add_parser("list", help="the fleet: last seen, backlog, clock, stale gates")
    listing.add_argument(
        "--stale-minutes", type=int, default=60, help="not seen for this long: stale (60)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=lambda a, i: _gates_list(a, i, open_streams))
    log = gates.add_parser("log", help="a gate's latest batches as the centre answered them")
    log.add_argument("gate_id")
    log.add_argument("--limit", type=int, default=20, help="how many batches (20)")
    log.set_defaults(handler=lambda a, i: _gates_log(a, i, open_streams))
    for command in (set_, unset, settings, listing, log):
        dsn_option(command)


_SETTINGS_HELP = (
    "mode=open|screening|lockdown, fever_celsius=37.3, recheck_window_minutes=15,"
    " passback_window_hours=12, screen_exits=true|false, exit_quota=1/2"
)


def _gates_set(args: argparse.Namespace, issuer: Issuer) -> int:
    gate = _settings_gate(args.gate)
    parsed: list[tuple[str, object]] = []
    for pair in args.settings:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r}: write KEY=VALUE ({_SETTINGS_HELP})")
        value = _setting_value(key.strip(), text.strip())
        check_setting(key.strip(), value)
        parsed.append((key.strip(), value))
    now = datetime.now(UTC)
    for key, value in parsed:
        issuer.store.set_setting(gate, key, value, by=args.by, now=now)
    where = f"gate {gate}" if gate else "every gate"
    print(f"{where}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in parsed))
    print(f"settings now at version {issuer.list_versions()['settings']}; gates get it at sync")
    return 0


def _gates_unset(args: argparse.Namespace, issuer: Issuer) -> int:
    gate = _settings_gate(args.gate)
    now = datetime.now(UTC)
    for key in args.keys:
        if key not in SETTING_KEYS:
            raise ValueError(
                f"unknown gate setting {key!r}; settings are {', '.join(SETTING_KEYS)}"
            )
        issuer.store.set_setting(gate, key, None, by=args.by, now=now)
    print(f"{'gate ' + gate if gate else 'every gate'}: cleared {', '.join(args.keys)}")
    return 0


def _gates_settings(args: argparse.Namespace, issuer: Issuer) -> int:
    rows = issuer.store.settings_rows()
    if not rows:
        print("no gate settings: every gate decides by its own config")
    for gate, key, value, at, by in rows:
        print(f"{gate or '*':<24} {key:<24} {json.dumps(value):<12} set {at} by {by}")
    return 0


def _settings_gate(gate: str | None) -> str:
    if gate is None:
        return ""
    if not GATE_ID.match(gate):
        raise ValueError(f"not a gate id: {gate!r}")
    return gate


def _setting_value(key: str, text: str) -> object:
    if key not in SETTING_KEYS:
        known = ", ".join(SETTING_KEYS)
        raise ValueError(f"unknown gate setting {key!r}; settings are {known}")
    if key in ("mode", "exit_quota"):
        return text
    if key == "screen_exits":
        if text.lower() not in ("true", "false"):
            raise ValueError("screen_exits must be true or false")
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {text!r}") from exc


def _gates_list(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    if not 1 <= args.stale_minutes <= 525_600:
        raise ValueError("--stale-minutes must be between 1 and 525600")
    now = datetime.now(UTC)
    horizon = now - timedelta(minutes=args.stale_minutes)
    with closing(open_streams(args)) as streams:
        views = streams.gates()
    rows = [
        {
            "gate_id": v.gate_id,
            "enrolled": v.enrolled_at is not None,
            "last_seen": v.last_seen.isoformat() if v.last_seen else None,
            "stale": v.last_seen is None or v.last_seen < horizon,
            "backlog": v.last_backlog,
            "clock_offset_ms": v.last_clock_offset_ms,
            "stored": sum(s.stored_through for s in v.streams),
            "compound": v.compound,
            "community": v.community,
        }
        for v in views
    ]
    if args.json:
        print(json.dumps({"server_time": now.isoformat(), "gates": rows}, ensure_ascii=False))
        return 0
    print(
        f"{'gate':<24} {'compound':<16} {'last seen (UTC)':<20} {'backlog':>8} {'clock ms':>9}"
        f" {'stored':>9}"
    )
    for row in rows:
        seen = str(row["last_seen"] or "never")[:19].replace("T", " ")
        mark = "  STALE" if row["stale"] else ""
        backlog = "" if row["backlog"] is None else row["backlog"]
        offset = "" if row["clock_offset_ms"] is None else row["clock_offset_ms"]
        place = row["compound"] or "-"
        print(
            f"{row['gate_id']:<24} {place:<16} {seen:<20} {backlog:>8} {offset:>9}"
            f" {row['stored']:>9}{mark}"
        )
    stale = sum(1 for row in rows if row["stale"])
    print(f"{len(rows)} gates, {stale} not seen in {args.stale_minutes} min", file=sys.stderr)
    return 0


def _gates_log(args: argparse.Namespace, issuer: Issuer, open_streams: OpenStreams) -> int:
    if not 1 <= args.limit <= 1000:
        raise ValueError("--limit must be between 1 and 1000")
    with closing(open_streams(args)) as streams:
        rows = streams.sync_log(args.gate_id, args.limit)
    if not rows:
        print(f"no batches from gate {args.gate_id}", file=sys.stderr)
    for row in rows:
        at = row.at.isoformat()[:19].replace("T", " ")
        print(f"{at}  {row.first_seq}..{row.last_seq}  {row.result:<16} +{row.count}")
    return 0
