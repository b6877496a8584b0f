"""What every fault test checks afterwards, and a `gate-sync serve` process to kill."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gate_agent.core.chain import genesis_hash, row_hash
from tests.limits import PATIENCE_S

ADMIN_TOKEN = "fault-admin-token-0123456789"


def pull_entries(url: str, admin_token: str = ADMIN_TOKEN) -> list[dict[str, Any]]:
    """Everything the centre holds, through the admin endpoint, page by page."""
    rows: list[dict[str, Any]] = []
    after = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            page = client.get(
                f"/v1/admin/entries?after={after}&limit=1000",
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            assert page.status_code == 200, page.text
            lines = [json.loads(line) for line in page.text.splitlines()]
            if not lines:
                return rows
            rows += lines
            after = int(page.headers["X-Next-After"])


def sync_results(url: str, gate_id: str, admin_token: str = ADMIN_TOKEN) -> list[str]:
    """The centre's sync log results for a gate's batches, oldest first."""
    reply = httpx.get(
        f"{url}/v1/admin/gates/{gate_id}/sync-log?limit=1000",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return [row["result"] for row in reversed(reply.json()["batches"])]


def read_sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on a database file, read with plain sqlite3 (no project code)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def integrity_ok(path: Path) -> bool:
    """Whether SQLite's own integrity check finds the file sound."""
    return read_sqlite(path, "PRAGMA integrity_check") == [("ok",)]


def assert_exactly_once(url: str, ledger_path: Path, gate_id: str) -> int:
    """The gate's every committed entry is at the centre once, as the gate hashed it.

    Checks, for the gate's stream of N entries: the centre holds seq 1..N once each (no
    hole, no repeat, nothing else for the gate), every stored hash is the ledger's and is
    the hash of the stored content, the chain links, nothing is flagged, the centre's
    cursor is N, and the gate's acknowledged cursor is N with no alarm. Returns N.
    """
    (stream_id,) = read_sqlite(ledger_path, "SELECT stream_id FROM meta")[0]
    gate_rows = read_sqlite(ledger_path, "SELECT seq, hash FROM entries ORDER BY seq")
    gate_hashes = {int(seq): str(digest) for seq, digest in gate_rows}
    count = len(gate_rows)
    assert count > 0 and sorted(gate_hashes) == list(range(1, count + 1))

    held = [row for row in pull_entries(url) if row["gate_id"] == gate_id]
    assert {row["stream_id"] for row in held} == {stream_id}
    seqs = sorted(row["seq"] for row in held)
    assert seqs == list(range(1, count + 1)), _difference(seqs, count)
    by_seq = {row["seq"]: row for row in held}
    prev = genesis_hash(stream_id)
    for seq in range(1, count + 1):
        row = by_seq[seq]
        assert row["hash"] == gate_hashes[seq], f"entry {seq}: the centre's hash is not the gate's"
        assert row_hash(row["content"]) == row["hash"], f"entry {seq}: content does not hash"
        assert row["prev_hash"] == prev, f"entry {seq}: the chain is broken"
        assert not row["flagged"], f"entry {seq} flagged: {row['problem']}"
        prev = row["hash"]

    fleet = httpx.get(
        f"{url}/v1/admin/gates",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).json()
    (gate,) = [g for g in fleet["gates"] if g["gate_id"] == gate_id]
    assert gate["streams"] == [{"stream_id": stream_id, "stored_through": count}]

    state = read_sqlite(ledger_path, "SELECT stream_id, acked_through, alarm_code FROM sync_state")
    assert state == [(stream_id, count, None)], f"the gate's sync state is {state}"
    return count


def _difference(seqs: list[int], count: int) -> str:
    missing = sorted(set(range(1, count + 1)) - set(seqs))
    repeated = sorted({s for s in seqs if seqs.count(s) > 1})
    extra = sorted(set(seqs) - set(range(1, count + 1)))
    return f"missing {missing[:10]}, repeated {repeated[:10]}, extra {extra[:10]}"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(name: str) -> str:
    """The path of one of the project's console scripts in this environment."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed beside {sys.executable}"
    return found


def admin_token_file(data_dir: Path) -> Path:
    """The admin token file `gate-sync serve` reads (mode 0600)."""
    path = data_dir / "admin.token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(ADMIN_TOKEN, encoding="utf-8")
        path.chmod(0o600)
    return path


def start_serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`gate-sync serve` on ``data_dir`` as its own process, ready to answer; it and its port.

    Its output is appended to ``serve.log`` in ``data_dir`` (see ``server_errors``).
    """
    port = free_port()
    with (data_dir / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [command("gate-sync"), "--data-dir", str(data_dir), "serve", "--port", str(port),
             "--admin-token-file", str(admin_token_file(data_dir))],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_until_up(f"http://127.0.0.1:{port}", process)
    return process, port


def server_errors(data_dir: Path) -> list[str]:
    """The lines of the server's log that are errors or tracebacks."""
    text = (data_dir / "serve.log").read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if line.startswith("ERROR") or "Traceback" in line]


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the server answers."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            httpx.get(f"{url}/v1/admin/gates", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
