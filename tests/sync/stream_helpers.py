"""Helpers of the stream tests: a real gate ledger, its entries as batches, a central store."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gate_agent.ledger import Ledger
from gate_agent.ledger.wire import wire_entries
from sync.issuer import Issuer
from sync.protocol import Batch
from sync.server.auth import new_enrol_code
from sync.store import IssuerStore, SqliteCentralStore, SqliteStreamStore, StreamStore
from tests.ledger.helpers import draft
from tests.limits import PATIENCE_S

GATE = "gate-a"
OTHER_GATE = "gate-b"
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ADMIN_TOKEN = "admin-token-0123456789abcdef"
SENT_MONO = 5_000_000_000


def fill_ledger(path: Path, count: int, gate_id: str = GATE) -> str:
    """A gate ledger with ``count`` entries (every third with personal data); its stream id."""
    with Ledger.open(path, gate_id=gate_id) as ledger:
        for n in range(count):
            personal = {"name": f"张{n}", "phone": f"1380000{n:04d}"} if n % 3 == 0 else None
            ledger.append(replace(draft(n), personal=personal))
        return ledger.stream_id


def ledger_entries(path: Path, gate_id: str = GATE) -> list[dict[str, Any]]:
    """Every entry of a ledger in wire form."""
    with Ledger.open(path, gate_id=gate_id) as ledger:
        return wire_entries(ledger, 0, 10_000)


def batch_dict(
    entries: list[dict[str, Any]],
    *,
    clock_synced: bool = True,
    boot_id: str = "boot-1",
    sent_at: datetime = NOW,
    backlog: int = 0,
) -> dict[str, Any]:
    """A batch as JSON primitives for a contiguous slice of wire entries."""
    return {
        "first_seq": entries[0]["seq"],
        "entries": entries,
        "sent_at": sent_at.isoformat(),
        "sent_monotonic_ns": SENT_MONO,
        "boot_id": boot_id,
        "clock_synced": clock_synced,
        "backlog": backlog,
    }


def batch(entries: list[dict[str, Any]], **options: Any) -> Batch:
    """A validated ``Batch`` for a slice of wire entries."""
    return Batch.model_validate(batch_dict(entries, **options))


def gzip_body(payload: dict[str, Any]) -> bytes:
    """A JSON payload gzip-compressed, as the gate sends it."""
    return gzip.compress(json.dumps(payload).encode("utf-8"), mtime=0)


#: The stream store implementations every store and server test runs against.
STORES = ["sqlite", "postgres"]


def store_dsn(request: pytest.FixtureRequest) -> str | None:
    """A fresh PostgreSQL DSN when the test's param is ``postgres`` (else None); may skip."""
    if getattr(request, "param", "sqlite") != "postgres":
        return None
    return str(request.getfixturevalue("postgres_dsn"))


def open_store(request: pytest.FixtureRequest, data_dir: Path) -> StreamStore:
    """A fresh stream store of the kind the test's param names."""
    return open_streams(data_dir, store_dsn(request))


def open_streams(data_dir: Path, dsn: str | None) -> StreamStore:
    """The stream store on PostgreSQL when given a DSN, else in the data folder's SQLite file."""
    if dsn is not None:
        from sync.store.streams_postgres import PostgresStreamStore

        return PostgresStreamStore(dsn)
    return SqliteStreamStore(data_dir / "central.sqlite3")


def open_central(data_dir: Path, dsn: str | None) -> IssuerStore:
    """The issuer-side store on PostgreSQL when given a DSN, else in the data folder's file."""
    if dsn is not None:
        from sync.store.central_postgres import PostgresCentralStore

        return PostgresCentralStore(dsn)
    return SqliteCentralStore(data_dir / "central.sqlite3")


class Centre:
    """A central data folder: the issuer's store and the stream store, both in the folder's
    SQLite file or both in PostgreSQL when given a DSN (as `gate-sync --dsn` runs)."""

    def __init__(self, data_dir: Path, dsn: str | None = None) -> None:
        """Open both stores in ``data_dir`` (or on ``dsn`` when given); key files in the folder."""
        self.data_dir = data_dir
        self.central = open_central(data_dir, dsn)
        self.streams = open_streams(data_dir, dsn)
        self.issuer = Issuer(data_dir, self.central)

    def code(self, gate_id: str = GATE, now: datetime = NOW) -> str:
        """A fresh enrolment code for a gate."""
        return new_enrol_code(self.streams, gate_id, now)

    def close(self) -> None:
        """Close both stores."""
        self.streams.close()
        self.central.close()


@contextmanager
def centre(data_dir: Path, dsn: str | None = None) -> Iterator[Centre]:
    """An open ``Centre``, closed afterwards."""
    opened = Centre(data_dir, dsn)
    try:
        yield opened
    finally:
        opened.close()


class TickingClock:
    """A clock tests set: ``now`` advances only when told to."""

    def __init__(self, start: datetime = NOW) -> None:
        """Start at ``start``."""
        self.now = start

    def __call__(self) -> datetime:
        """The current time."""
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock on."""
        self.now += timedelta(**delta)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a port of its own) in a thread; its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + PATIENCE_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
