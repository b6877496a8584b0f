"""`gate-sync admins add|list|disable|password`: the named accounts of the admin web page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sync import admins
from sync.issuer import Issuer


def register(commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``admins`` commands to the parser."""
    group = commands.add_parser("admins", help="admin accounts of the web page").add_subparsers(
        dest="admins_command", required=True
    )
    add = group.add_parser("add", help="add an admin; prints a generated password once")
    add.add_argument("name", help="letters, digits, . _ - (up to 40)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(handler=_add)
    listing = group.add_parser("list", help="the admins: enabled, locked or disabled")
    listing.set_defaults(handler=_list)
    disable = group.add_parser("disable", help="disable an admin (their sessions end at once)")
    disable.add_argument("name")
    disable.set_defaults(handler=_disable)
    password = group.add_parser(
        "password", help="set a new password (enables and unlocks; sessions end)"
    )
    password.add_argument("name")
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    password.set_defaults(handler=_password)
    for command in (add, listing, disable, password):
        dsn_option(command)


def _chosen_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set, and whether it was generated (then it is printed)."""
    if args.password_stdin:
        return admins.check_password(sys.stdin.readline().rstrip("\r\n")), False
    return admins.new_password(), True


def _add(args: argparse.Namespace, issuer: Issuer) -> int:
    name = admins.check_name(args.name)
    password, generated = _chosen_password(args)
    issuer.store.add_admin(name, admins.hash_password(password), datetime.now(UTC))
    if generated:
        print(password)
        print(f"admin {name} added: the password above is shown only this once", file=sys.stderr)
    else:
        print(f"admin {name} added")
    return 0


def _list(args: argparse.Namespace, issuer: Issuer) -> int:
    now = datetime.now(UTC)
    for account in issuer.store.admin_accounts():
        if account.disabled_at is not None:
            state = f"disabled {account.disabled_at.isoformat()}"
        elif account.locked_until is not None and account.locked_until > now:
            state = f"locked until {account.locked_until.isoformat()}"
        else:
            state = "enabled"
        last = account.last_signin_at.isoformat() if account.last_signin_at else "never"
        print(f"{account.name}  {state}  last sign-in {last}")
    return 0


def _disable(args: argparse.Namespace, issuer: Issuer) -> int:
    changed = issuer.store.disable_admin(args.name, datetime.now(UTC))
    print(f"admin {args.name} {'disabled' if changed else 'was disabled already'}")
    return 0


def _password(args: argparse.Namespace, issuer: Issuer) -> int:
    password, generated = _chosen_password(args)
    issuer.store.set_admin_password(args.name, admins.hash_password(password), datetime.now(UTC))
    if generated:
        print(password)
    print(f"admin {args.name}: new password set, sessions ended", file=sys.stderr)
    return 0
