"""A central server and gate ledgers for the benchmarks and soaks that need them.

``gate-sync serve`` started as an operator starts it (``serving``, ``serve_process``),
gate ledgers built through the real ``Ledger.append`` (``build_ledger``) and read back
in wire form, gates enrolled straight in a store, and the PostgreSQL pieces. Used by
``bench.sync``, ``bench.soak_gate``, ``bench.soak_centre`` and ``bench.chaos``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.ledger import draft
from gate_agent.ledger import Ledger
from gate_agent.ledger.wire import wire_entries
from sync.cli import open_central
from sync.issuer import Issuer
from sync.server.auth import secret_hash
from sync.store import StreamStore

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"


# -- building ledgers fast -------------------------------------------------------------------


def build_ledger(path: Path, gate_id: str, count: int) -> str:
    """A gate ledger of ``count`` entries; its stream id.

    Entries go through ``Ledger.append`` (its checks and chain), with the fsync of each
    commit turned off for the build only: durability is not what this bench measures.
    """
    with Ledger.open(path, gate_id=gate_id) as ledger:
        with ledger._store.read() as db:  # outside a transaction: bench set-up only
            db.execute("PRAGMA synchronous = OFF")
        for i in range(count):
            ledger.append(draft(i))
        return ledger.stream_id


def ledger_wire(path: Path, gate_id: str) -> list[dict[str, Any]]:
    """Every entry of a ledger in wire form."""
    out: list[dict[str, Any]] = []
    with Ledger.open(path, gate_id=gate_id) as ledger:
        while page := wire_entries(ledger, len(out), 10_000):
            out.extend(page)
    return out


def enrol(store: StreamStore, gate_id: str) -> str:
    """Enrol a gate straight in the store; its token."""
    token = f"{gate_id}-token-0123456789abcdef"
    code = secret_hash(f"code-{gate_id}")
    store.add_enrol_code(gate_id, code, NOW + timedelta(days=1))
    if not store.enrol(gate_id, code, secret_hash(token), NOW):
        raise RuntimeError(f"could not enrol {gate_id}")
    return token


# -- a gate-sync serve process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``gate-sync serve`` at ``url`` answers; raise with its log if it died."""
    deadline = time.monotonic() + 120  # reached only when the server is broken
    while True:
        try:
            httpx.get(f"{url}/v1/admin/gates", timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                err = log.read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"gate-sync serve did not start: {err[-800:]}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def serving(data_dir: Path, dsn: str | None, workers: int = 1) -> Iterator[str]:
    """``gate-sync serve`` on a free loopback port, as an operator starts it; its URL."""
    with serve_process(data_dir, dsn, workers) as (url, _):
        yield url


@contextlib.contextmanager
def serve_process(
    data_dir: Path, dsn: str | None, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serving``, with the process too (the soak reads its memory)."""
    token = data_dir / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    port = free_port()
    script = shutil.which("gate-sync", path=str(Path(sys.executable).parent))
    if script is None:
        raise RuntimeError("gate-sync is not installed beside this Python")
    command = [script, "--data-dir", str(data_dir), "serve", "--port", str(port),
               "--admin-token-file", str(token)]  # fmt: skip
    if dsn is not None:
        command += ["--dsn", dsn]
    if workers > 1:
        command += ["--workers", str(workers)]
    # The log goes to a file: a pipe nobody reads would stall the server once full.
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, process, log_path)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def make_centre_key(data_dir: Path, dsn: str) -> None:
    """Over a shared database the centre key is made before any server starts."""
    with contextlib.closing(open_central(data_dir, dsn)) as store:
        Issuer(data_dir, store).centre_key()


def pg_store(dsn: str) -> StreamStore:
    """The PostgreSQL stream store at ``dsn`` (psycopg imported only then)."""
    from sync.store.streams_postgres import PostgresStreamStore  # noqa: PLC0415

    store: StreamStore = PostgresStreamStore(dsn)
    return store
