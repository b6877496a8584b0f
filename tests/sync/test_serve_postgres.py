"""`gate-sync serve --dsn`: a real server process keeping gates' streams in PostgreSQL."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sync import cli
from sync.lists import verify_lists
from tests.limits import PATIENCE_S
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


@contextmanager
def serving(data: Path, dsn: str, *dsn_before: str) -> Iterator[str]:
    """`gate-sync serve --dsn` as its own process, as systemd would run it; its URL.

    ``dsn_before`` ("--dsn", dsn) puts the option before the command instead of after it.
    """
    token = data / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    port = free_port()
    script = shutil.which("gate-sync", path=str(Path(sys.executable).parent))
    assert script
    after = [] if dsn_before else ["--dsn", dsn]
    process = subprocess.Popen(
        [script, "--data-dir", str(data), *dsn_before, "serve", "--port", str(port),
         "--admin-token-file", str(token), *after],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gate-sync serve did not answer"
            try:
                httpx.get(f"{url}/v1/admin/gates", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=20)


@pytest.fixture
def server(tmp_path: Path, postgres_dsn: str) -> Iterator[tuple[str, Path]]:
    """A server over a fresh PostgreSQL schema; URL and data dir."""
    data = tmp_path / "central"
    data.mkdir()
    # Over a shared database the centre key is made on purpose, never by a server.
    assert cli.main(["--data-dir", str(data), "--dsn", postgres_dsn, "keys", "centre"]) == 0
    with serving(data, postgres_dsn) as url:
        yield url, data


def test_a_server_over_a_shared_database_never_makes_its_own_centre_key(
    tmp_path: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    code = cli.main(["--data-dir", str(tmp_path / "replica"), "--dsn", postgres_dsn,
                          "serve", "--admin-token-file", str(token)])  # fmt: skip
    assert code == 1
    assert "no centre key" in capsys.readouterr().err
    assert not (tmp_path / "replica" / "keys" / "centre.pem").exists()


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
    # Nothing went to a SQLite file in the data folder: streams and issuer data alike.
    assert not (data / "central.sqlite3").exists()
    assert cli.main(["--data-dir", str(data), "pull", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 20


def test_admin_commands_and_a_serving_replica_share_one_database(
    tmp_path: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue, revoke and set on the issuing machine; a replica with only the centre key serves."""
    issuing = tmp_path / "issuing"

    def admin(*command: str) -> str:
        assert cli.main(["--data-dir", str(issuing), "--dsn", postgres_dsn, *command]) == 0, (
            capsys.readouterr().err
        )
        return capsys.readouterr().out.strip()

    kid = admin("keys", "new")
    person = ["--kind", "resident", "--household", "H1", "--name", "王小明", "--days", "30"]
    admin("passes", "issue", *person, "--scope", "compound:C1", "--pass-id", "PASS000001")
    admin("passes", "issue", *person, "--scope", "compound:C1", "--pass-id", "PASS000002")
    assert admin("passes", "revoke", "PASS000001", "--reason", "lost") == "PASS000001 revoked"
    admin("gates", "set", "mode=lockdown")
    centre_kid = admin("keys", "centre").split()[0]
    code = admin("gates", "enrol", GATE)
    assert kid in admin("keys", "list")
    assert "lockdown" in admin("gates", "settings")

    # The replica's data folder holds only the centre key that signs the lists, copied as
    # a deployment would (the keys folder mounted read-only, a systemd credential).
    replica = tmp_path / "replica"
    (replica / "keys").mkdir(parents=True, mode=0o700)
    copied = replica / "keys" / "centre.pem"
    copied.write_bytes((issuing / "keys" / "centre.pem").read_bytes())
    copied.chmod(0o600)
    with (
        serving(replica, postgres_dsn, "--dsn", postgres_dsn) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        enrolled = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": code})
        assert enrolled.status_code == 200, enrolled.text
        centre_key = enrolled.json()["centre_key"]
        assert centre_key["kid"] == centre_kid
        trusted = {centre_key["kid"]: base64.b64decode(centre_key["public_key"])}
        auth = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        reply = client.get(f"/v1/gates/{GATE}/lists", headers=auth)
        assert reply.status_code == 200, reply.text
        lists = {u.name: u for u in verify_lists(reply.content, trusted, gate_id=GATE).lists}
        assert [item["pass_id"] for item in lists["revocations"].items] == ["PASS000001"]
        assert lists["revocations"].items[0]["reason"] == "lost"
        assert lists["settings"].items == ({"key": "mode", "value": "lockdown"},)
        assert [item["pass_id"] for item in lists["directory"].items] == ["PASS000002"]
        assert [item["kid"] for item in lists["keys"].items] == [kid]

        # Revoked on the issuing machine while the replica runs: its next answer has it.
        held = ",".join(f"{u.name}:{u.version}" for u in lists.values())
        admin("passes", "revoke", "PASS000002", "--reason", "moved out")
        later = client.get(f"/v1/gates/{GATE}/lists?have={held}", headers=auth)
        changed = {u.name: u for u in verify_lists(later.content, trusted, gate_id=GATE).lists}
    assert set(changed) == {"revocations", "directory"}
    assert {item["pass_id"] for item in changed["revocations"].items} >= {"PASS000002"}
    assert changed["revocations"].version == lists["revocations"].version + 1
    # Neither folder grew a SQLite database: everything but key files is in PostgreSQL.
    assert not (issuing / "central.sqlite3").exists()
    assert sorted(path.name for path in replica.iterdir()) == ["admin.token", "keys"]
