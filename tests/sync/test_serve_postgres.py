"""`gate-sync serve --dsn`: a real server process keeping gates' streams in PostgreSQL."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync import cli
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    batch_dict,
    fill_ledger,
    gzip_body,
    ledger_entries,
)

psycopg = pytest.importorskip("psycopg")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, postgres_dsn: str) -> Iterator[tuple[str, Path]]:
    """`gate-sync serve --dsn` as its own process, as systemd would run it; URL and data dir."""
    data = tmp_path / "central"
    data.mkdir()
    token = data / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    port = free_port()
    script = shutil.which("gate-sync", path=str(Path(sys.executable).parent))
    assert script
    process = subprocess.Popen(
        [script, "--data-dir", str(data), "serve", "--port", str(port),
         "--admin-token-file", str(token), "--dsn", postgres_dsn],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gate-sync serve did not answer"
            try:
                httpx.get(f"{url}/v1/admin/gates", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, data
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_serve_with_a_dsn_stores_uploads_in_postgresql(
    server: tuple[str, Path],
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, data = server
    # The admin's commands find the database through the environment as well.
    monkeypatch.setenv("GATE_SYNC_DSN", postgres_dsn)
    assert cli.main(["--data-dir", str(data), "gates", "enrol", GATE]) == 0
    code = capsys.readouterr().out.strip()
    ledger = tmp_path / "gate" / "ledger.sqlite3"
    stream_id = fill_ledger(ledger, 20)
    entries = ledger_entries(ledger)
    with httpx.Client(base_url=url, timeout=10) as client:
        enrolled = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": code})
        assert enrolled.status_code == 200, enrolled.text
        headers = {
            "Authorization": f"Bearer {enrolled.json()['token']}",
            "Content-Encoding": "gzip",
        }
        path = f"/v1/gates/{GATE}/streams/{stream_id}/batches"
        reply = client.post(path, content=gzip_body(batch_dict(entries)), headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["stored_through"] == 20

        # The database fails: 503 with Retry-After, and the gate's resend is stored once.
        with psycopg.connect(postgres_dsn, autocommit=True) as control:
            control.execute("ALTER TABLE sync_log RENAME TO sync_log_away")
            more = gzip_body(batch_dict(entries[15:]))
            down = client.post(path, content=more, headers=headers)
            assert down.status_code == 503
            assert down.json()["error"] == "store_unavailable"
            assert down.headers["Retry-After"] == "5"
            control.execute("ALTER TABLE sync_log_away RENAME TO sync_log")
        again = client.post(path, content=more, headers=headers)
        assert again.json()["stored_through"] == 20
        pulled = client.get("/v1/admin/entries?limit=100", headers=ADMIN).text.splitlines()
    assert [json.loads(line)["seq"] for line in pulled] == list(range(1, 21))
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (20,)
    # Nothing of the streams went to the data folder's SQLite file.
    with sqlite3.connect(data / "central.sqlite3") as local:
        tables = {name for (name,) in local.execute("SELECT name FROM sqlite_master")}
    assert "entries" not in tables
    assert cli.main(["--data-dir", str(data), "pull", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 20
