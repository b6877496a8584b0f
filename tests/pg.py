"""A real PostgreSQL server for the tests, started once per session from the installed binaries.

The server is the Debian package's (``/usr/lib/postgresql/*/bin``) or whatever
``initdb``/``pg_ctl`` are on PATH; it gets a fresh cluster in a temporary folder,
listens on 127.0.0.1 on a free port (and a socket in that folder) and is stopped at
the end of the session. PostgreSQL refuses to run as root, so under root the cluster
belongs to the ``postgres`` system user (or ``nobody``) and every server command runs
as that user through ``runuser``. Each test gets a schema of its own in one test
database (its DSN sets ``search_path``), which costs a few milliseconds.
When the binaries are missing the tests that need them are skipped, saying why;
``make test`` installs them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DATABASE = "gs_tests"
PREFIX = "gs-pg-"
SESSION_FILE = "session.pid"  # the pid of the test session that owns the cluster
SUPERUSER = "postgres"
# Test speed over durability: the cluster is thrown away after the session.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest, else PATH's; or None."""
    versions = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if path.parent.parent.name.isdigit()
    ]
    if versions:
        return max(versions, key=lambda folder: int(folder.parent.name))
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).resolve().parent)):
        return Path(initdb).resolve().parent
    return None


def _run_as() -> list[str]:
    """The command prefix that runs a server command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root with neither a postgres nor a nobody user")


def _owner() -> tuple[int, int] | None:
    prefix = _run_as()
    if not prefix:
        return None
    entry = pwd.getpwnam(prefix[2])
    return entry.pw_uid, entry.pw_gid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway cluster: connect as the superuser over TCP to 127.0.0.1."""

    bin_dir: Path
    root: Path
    port: int
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        """A connection string for one database of the cluster."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, *statements: str, dbname: str = "postgres") -> None:
        """Run statements (outside a transaction) as the superuser."""
        import psycopg  # only when a server runs

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode("utf-8"))

    def fresh_schema(self) -> tuple[str, str]:
        """A new empty schema in the test database: its name, and a DSN whose search_path is it."""
        name = f"t{os.getpid()}_{next(self._numbers)}"
        self.admin(f"CREATE SCHEMA {name}", dbname=DATABASE)
        return name, f"{self.dsn(DATABASE)}?options=-csearch_path%3D{name}"

    def drop_schema(self, name: str) -> None:
        """Drop a test's schema and everything in it."""
        self.admin(f"DROP SCHEMA IF EXISTS {name} CASCADE", dbname=DATABASE)

    @classmethod
    def start(cls, bin_dir: Path, **settings: str) -> PostgresServer:
        """initdb a cluster in a temporary folder and start it; stopped by ``stop``.

        ``settings`` override ``SETTINGS`` (e.g. ``fsync="on"`` for a measurement).
        """
        _reap_orphans(bin_dir)
        root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (root / SESSION_FILE).write_text(str(os.getpid()), encoding="ascii")
        owner = _owner()
        if owner is not None:
            os.chown(root, *owner)
        server = cls(bin_dir=bin_dir, root=root, port=0)
        prefix = _run_as()
        try:
            _check(
                [*prefix, str(bin_dir / "initdb"), "-D", str(server.data), "-U", SUPERUSER,
                 "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            )  # fmt: skip
            options = " ".join(f"-c {key}={value}" for key, value in (SETTINGS | settings).items())
            for attempt in range(3):
                # The free port may be taken between finding it and the server binding it.
                server.port = _free_port()
                try:
                    _check(
                        [*prefix, str(bin_dir / "pg_ctl"), "-D", str(server.data), "-l",
                         str(root / "server.log"), "-w", "-t", "60", "-o",
                         f"-p {server.port} -k {root} {options}", "start"],
                    )  # fmt: skip
                    break
                except RuntimeError:
                    if attempt == 2:
                        log = root / "server.log"
                        raise RuntimeError(log.read_text(errors="replace")) from None
            server.admin(f"CREATE DATABASE {DATABASE} TEMPLATE template0")
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove the cluster."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*_run_as(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m",
                 "immediate", "-w", "stop"],
                capture_output=True, check=False,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def _reap_orphans(bin_dir: Path) -> None:
    """Stop and remove the clusters of earlier sessions that died without stopping them."""
    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            pid = int((root / SESSION_FILE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            PostgresServer(bin_dir=bin_dir, root=root, port=0).stop()
        except PermissionError:
            continue  # alive, someone else's


def _check(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session; skipped when its binaries are not installed."""
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed:"
            " `make test` installs the postgresql package"
        )
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install .[postgres]")
    server = PostgresServer.start(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A connection string to a fresh, empty schema (the DSN's search_path) of the server."""
    name, dsn = postgres_server.fresh_schema()
    try:
        yield dsn
    finally:
        postgres_server.drop_schema(name)
