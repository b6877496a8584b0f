"""`gate-sync backup|verify-backup|restore-backup`: the central data folder kept safe."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync import backup
from sync.errors import BackupRefused

#: Exit code of a refused backup, check or restore (the code is printed in brackets).
REFUSED_EXIT = 2


def register(commands: Any, dsn_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the backup commands to the parser; they open no store of their own."""
    make = commands.add_parser(
        "backup", help="a consistent copy of the data folder (and database) while serving"
    )
    make.add_argument("dest", type=Path, help="a new (or empty) folder to write the backup in")
    make.add_argument(
        "--admin-token-file", type=Path, help="include this admin token (left out by default)"
    )
    make.add_argument("--json", action="store_true", help="print the manifest's files as JSON")
    make.set_defaults(handler=_backup, no_store=True)
    check = commands.add_parser("verify-backup", help="check a backup against its manifest")
    check.add_argument("path", type=Path)
    check.set_defaults(handler=_verify, no_store=True)
    put = commands.add_parser(
        "restore-backup", help="put a backup back into the data folder (stop the server first)"
    )
    put.add_argument("path", type=Path, help="the folder `gate-sync backup` wrote")
    put.set_defaults(handler=_restore, no_store=True)
    for command in (make, put):
        dsn_option(command)


def run(args: argparse.Namespace) -> int:
    """Run one backup command, printing a refusal with its code."""
    try:
        result: int = args.handler(args)
        return result
    except BackupRefused as exc:
        print(f"gate-sync: refused [{exc.code}]: {exc.detail}", file=sys.stderr)
        return REFUSED_EXIT


def _backup(args: argparse.Namespace) -> int:
    made = backup.make_backup(
        args.data_path,
        args.dest,
        dsn=args.dsn,
        now=datetime.now(UTC),
        admin_token=args.admin_token_file,
    )
    if args.json:
        print(json.dumps([vars(f) for f in made.files]))
        return 0
    size = sum(f.bytes for f in made.files)
    print(f"{made.path}: {made.database} backup, {len(made.files)} files, {size} bytes")
    for file in made.files:
        print(f"  {file.mode}  {file.sha256[:16]}  {file.bytes:>12}  {file.path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    checked = backup.verify(args.path)
    print(
        f"{args.path}: ok, {checked.database} backup of {checked.created_at},"
        f" {len(checked.files)} files match the manifest"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    done = backup.restore(args.path, args.data_path, dsn=args.dsn, now=datetime.now(UTC))
    where = args.data_path if done.backup.database == "sqlite" else "the --dsn database"
    print(f"{args.path} ({done.backup.database}, {done.backup.created_at}) restored into {where}")
    if done.set_aside is not None:
        print(f"the previous database is kept in {done.set_aside}")
    if done.keys_copied:
        print(f"key files copied back: {', '.join(done.keys_copied)}")
    print("start the server: gates resend what it lacks when they next upload")
    return 0
