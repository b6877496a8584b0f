"""Backing up the central data folder while the server runs; checking and restoring a backup.

A backup is a folder (mode 0700: it holds private keys) with:

- ``central.sqlite3``: the data folder's database, copied through SQLite's online backup
  API (one read transaction, so a consistent snapshot while gates upload), as a plain
  rollback-journal file; or, on PostgreSQL, ``central.pgdump`` from ``pg_dump -Fc``;
- ``keys/``: the issuer keys and the centre key, modes kept (0600);
- ``admin.token`` only when asked (``--admin-token-file``);
- ``manifest.json``: every file's SHA-256, size and mode, written last.

It is made in ``DEST.partial`` and renamed to ``DEST`` when whole, so a ``DEST`` is
never half a backup. ``restore`` checks the manifest first, moves the current database
aside (never deletes it) and copies the backup's in; gates then resend what the restored
centre lacks (their cursor goes back: docs/sync-protocol.md).

Refusal codes (``BackupRefused.code``): ``dest_exists``, ``no_database``,
``pg_dump_missing``, ``pg_dump_failed``, ``no_manifest``, ``backup_damaged``,
``centre_key_differs``, ``pg_restore_missing``, ``pg_restore_failed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.errors import BackupRefused

MANIFEST = "manifest.json"
FORMAT = "gate-sync-backup/1"
SQLITE_FILE = "central.sqlite3"
PG_DUMP_FILE = "central.pgdump"
KEYS = "keys"
ADMIN_TOKEN = "admin.token"
#: The SQLite files beside a database that belong to it (a stale WAL would corrupt a copy).
_SIDE_FILES = ("-wal", "-shm", "-journal")

Which = Callable[[str], str | None]


@dataclass(frozen=True)
class BackupFile:
    """One file of a backup, as its manifest lists it."""

    path: str
    sha256: str
    bytes: int
    mode: str


@dataclass(frozen=True)
class Backup:
    """A backup folder and what its manifest says."""

    path: Path
    database: str  # "sqlite" or "postgres"
    created_at: str
    files: tuple[BackupFile, ...]


def pg_dump_command(dsn: str, out: Path) -> list[str]:
    """The ``pg_dump`` command line that writes the database's custom-format dump."""
    return ["pg_dump", "--format=custom", f"--file={out}", f"--dbname={dsn}"]


def pg_restore_command(dsn: str, dump: Path) -> list[str]:
    """The ``pg_restore`` command line that loads a dump into an empty database."""
    return ["pg_restore", "--exit-on-error", "--no-owner", f"--dbname={dsn}", str(dump)]


def make_backup(
    data_dir: Path,
    dest: Path,
    *,
    dsn: str | None,
    now: datetime,
    admin_token: Path | None = None,
    which: Which = shutil.which,
) -> Backup:
    """Back up the data folder (and the PostgreSQL database when ``dsn``) into ``dest``."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupRefused("dest_exists", f"{dest} exists and is not empty: name a new folder")
    database = data_dir / SQLITE_FILE
    if dsn is None and not database.is_file():
        raise BackupRefused(
            "no_database", f"no {SQLITE_FILE} in {data_dir}: is this the central data folder?"
        )
    if dsn is not None and which("pg_dump") is None:
        command = " ".join(pg_dump_command("$GATE_SYNC_DSN", dest / PG_DUMP_FILE))
        raise BackupRefused(
            "pg_dump_missing",
            f"pg_dump is not on PATH (apt install postgresql-client); the database part by"
            f" hand: {command}",
        )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    try:
        if dsn is None:
            _copy_sqlite(database, partial / SQLITE_FILE)
        else:
            _pg_dump(dsn, partial / PG_DUMP_FILE)
        _copy_keys(data_dir / KEYS, partial / KEYS)
        if admin_token is not None:
            shutil.copyfile(admin_token, partial / ADMIN_TOKEN)
            (partial / ADMIN_TOKEN).chmod(0o600)
        files = tuple(_describe(partial, path) for path in _files(partial))
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(timespec="seconds"),
            "database": "sqlite" if dsn is None else "postgres",
            "files": [vars(f) for f in files],
        }
        _write_synced(partial / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8") + b"\n")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return read_backup(dest)


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live database through the online backup API."""
    # Read-only: a backup never writes to the server's database.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            # One self-contained file: no WAL to carry beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
            problem = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if problem != "ok":
        raise BackupRefused("backup_damaged", f"the copy of {source} fails its check: {problem}")
    _fsync(target)


def pg_environment(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment carrying it (``PGPASSWORD``):
    a password on a command line is visible to every user of the machine (``ps``)."""
    # Imported here: psycopg is the optional `postgres` extra, there whenever a DSN is.
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415

    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _pg_dump(dsn: str, target: Path) -> None:
    conninfo, env = pg_environment(dsn)
    result = subprocess.run(
        pg_dump_command(conninfo, target), capture_output=True, text=True, check=False, env=env
    )
    if result.returncode != 0:
        raise BackupRefused("pg_dump_failed", f"pg_dump failed: {result.stderr.strip()}")
    _fsync(target)


def _copy_keys(source: Path, target: Path) -> None:
    target.mkdir(mode=0o700)
    if not source.is_dir():
        return
    for path in sorted(source.iterdir()):
        if path.is_file():
            shutil.copy2(path, target / path.name)  # copy2 keeps the 0600 mode
            _fsync(target / path.name)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def _describe(root: Path, path: Path) -> BackupFile:
    return BackupFile(
        path=path.relative_to(root).as_posix(),
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        mode=f"{stat.S_IMODE(path.stat().st_mode):04o}",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def read_backup(path: Path) -> Backup:
    """A backup's manifest, read (not checked: see ``verify``)."""
    try:
        raw: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = tuple(BackupFile(**f) for f in raw["files"])
        if raw["format"] != FORMAT or raw["database"] not in ("sqlite", "postgres"):
            raise ValueError(f"format {raw['format']!r}, database {raw['database']!r}")
        return Backup(path, raw["database"], raw["created_at"], files)
    except FileNotFoundError as exc:
        raise BackupRefused("no_manifest", f"{path}: no {MANIFEST}: not a backup") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupRefused("backup_damaged", f"{path}/{MANIFEST}: {exc}") from exc


def verify(path: Path) -> Backup:
    """The backup, every file checked against its manifest; refused when one differs."""
    backup = read_backup(path)
    listed = {f.path: f for f in backup.files}
    present = {p.relative_to(path).as_posix() for p in _files(path)}
    problems = [f"{name}: missing" for name in sorted(listed.keys() - present)]
    problems += [f"{name}: not in the manifest" for name in sorted(present - listed.keys())]
    for name in sorted(listed.keys() & present):
        if _sha256(path / name) != listed[name].sha256:
            problems.append(f"{name}: its SHA-256 differs from the manifest's")
    if problems:
        raise BackupRefused("backup_damaged", f"{path}: " + "; ".join(problems))
    if backup.database == "sqlite" and SQLITE_FILE not in listed:
        raise BackupRefused("backup_damaged", f"{path}: no {SQLITE_FILE}")
    if backup.database == "postgres" and PG_DUMP_FILE not in listed:
        raise BackupRefused("backup_damaged", f"{path}: no {PG_DUMP_FILE}")
    return backup


@dataclass(frozen=True)
class Restored:
    """What ``restore`` did."""

    backup: Backup
    set_aside: Path | None  # where the data folder's previous database went
    keys_copied: tuple[str, ...]  # key files the data folder lacked


def restore(
    path: Path,
    data_dir: Path,
    *,
    dsn: str | None,
    now: datetime,
    which: Which = shutil.which,
) -> Restored:
    """Put a checked backup back into the data folder (the server stopped meanwhile).

    SQLite: the current database and its WAL go to ``before-restore-<time>/``, the
    backup's copy takes its place. PostgreSQL: ``pg_restore`` into ``dsn``, which must
    be an empty database. Keys: the files the data folder lacks are copied back; a key
    already there is kept, and a centre key other than the backup's is refused (gates
    pinned one of them: which, an operator must decide).
    """
    backup = verify(path)
    if (backup.database == "postgres") != (dsn is not None):
        raise BackupRefused(
            "backup_damaged",
            f"{path} is a {backup.database} backup: restore it"
            + (" with --dsn (or GATE_SYNC_DSN)" if dsn is None else " without --dsn"),
        )
    keys = data_dir / KEYS
    missing = _missing_keys(path / KEYS, keys)
    if dsn is not None:
        if which("pg_restore") is None:
            command = " ".join(pg_restore_command("$GATE_SYNC_DSN", path / PG_DUMP_FILE))
            raise BackupRefused("pg_restore_missing", f"pg_restore is not on PATH: {command}")
        conninfo, env = pg_environment(dsn)
        result = subprocess.run(
            pg_restore_command(conninfo, path / PG_DUMP_FILE), capture_output=True, text=True,
            check=False, env=env,
        )  # fmt: skip
        if result.returncode != 0:
            raise BackupRefused("pg_restore_failed", f"pg_restore: {result.stderr.strip()}")
        aside = None
    else:
        aside = _set_aside(data_dir, now)
        shutil.copy2(path / SQLITE_FILE, data_dir / SQLITE_FILE)
        _fsync(data_dir / SQLITE_FILE)
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in missing:
        shutil.copy2(path / KEYS / name, keys / name)
    return Restored(backup, aside, missing)


def _missing_keys(saved: Path, keys: Path) -> tuple[str, ...]:
    """The key files of the backup that the data folder lacks; refused on a centre key
    that differs."""
    names = sorted(p.name for p in saved.iterdir() if p.is_file()) if saved.is_dir() else []
    centre = "centre.pem"
    if (
        centre in names
        and (keys / centre).is_file()
        and (keys / centre).read_bytes() != (saved / centre).read_bytes()
    ):
        raise BackupRefused(
            "centre_key_differs",
            f"{keys / centre} is not the backup's centre key: gates pinned one of the two."
            " Keep the one the gates enrolled with (see docs/operations.md) and retry",
        )
    return tuple(name for name in names if not (keys / name).exists())


def _set_aside(data_dir: Path, now: datetime) -> Path | None:
    """Move the data folder's database files into a dated folder; None if there were none."""
    present = [
        data_dir / (SQLITE_FILE + suffix)
        for suffix in ("", *_SIDE_FILES)
        if (data_dir / (SQLITE_FILE + suffix)).exists()
    ]
    if not present:
        data_dir.mkdir(parents=True, exist_ok=True)
        return None
    aside = data_dir / f"before-restore-{now:%Y%m%dT%H%M%SZ}"
    aside.mkdir(mode=0o700)
    for file in present:
        file.rename(aside / file.name)
    return aside
