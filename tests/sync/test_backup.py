"""`gate-sync backup`: a consistent copy while serving; a restore the gates refill."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, UplinkSettings, Uploader
from gate_agent.uplink_http import enrol
from sync import backup
from sync import cli as sync_cli
from sync.server.app import create_app
from tests.ledger.helpers import draft
from tests.pg import PostgresServer
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE, STORES, centre, serving

N, M = 40, 25
_databases = itertools.count(1)


def gs(data: Path, *args: str) -> int:
    return sync_cli.main(["--data-dir", str(data), *args])


def new_database(server: PostgresServer) -> str:
    """A new empty database of the test cluster (pg_restore wants a whole database)."""
    name = f"backup_{os.getpid()}_{next(_databases)}"
    server.admin(f"CREATE DATABASE {name} TEMPLATE template0")
    return server.dsn(name)


@contextmanager
def running_centre(data: Path, dsn: str | None) -> Iterator[str]:
    """`gate-sync serve` of the data folder (or database) on 127.0.0.1: its URL."""
    with (
        centre(data, dsn) as opened,
        serving(create_app(opened.streams, opened.issuer, ADMIN_TOKEN)) as url,
    ):
        yield url


def stored(data: Path, dsn: str | None) -> list[tuple[int, str]]:
    with centre(data, dsn) as opened:
        return [(r.seq, r.hash) for r in opened.streams.entries_after(0, 10_000)]


def ledger_hashes(ledger: Ledger) -> list[tuple[int, str]]:
    return [(e.seq, e.hash) for e in ledger.entries(limit=10_000)]


def fill(ledger: Ledger, count: int) -> None:
    start = ledger.last_seq()
    for n in range(start, start + count):
        ledger.append(draft(n))


def uploader(ledger: Ledger, url: str, token: str, batch: int = 500) -> Uploader:
    settings = UplinkSettings(max_entries=batch)
    return Uploader(
        ledger, base_url=url, gate_id=GATE, token=token, clock=FakeClock(), settings=settings
    )


@pytest.mark.parametrize("kind", STORES)
def test_a_restored_centre_gets_back_every_entry_exactly_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, saved = tmp_path / "central", tmp_path / "backup"
    dsn = None
    on_dsn: list[str] = []
    if kind == "postgres":
        server = request.getfixturevalue("postgres_server")
        dsn = new_database(server)
        on_dsn = ["--dsn", dsn]
    assert gs(data, *on_dsn, "keys", "new") == 0
    assert gs(data, *on_dsn, "keys", "centre") == 0
    assert gs(data, *on_dsn, "gates", "enrol", GATE) == 0
    code = capsys.readouterr().out.splitlines()[-1].strip()
    with Ledger.open(tmp_path / "gate" / "ledger.sqlite3", gate_id=GATE) as ledger:
        with running_centre(data, dsn) as url:
            token = enrol(url, GATE, code).token
            fill(ledger, N)
            with uploader(ledger, url, token) as up:
                assert up.drain() is Step.IDLE
                # Backed up while the server serves.
                assert gs(data, *on_dsn, "backup", str(saved)) == 0
                fill(ledger, M)
                assert up.drain() is Step.IDLE
        assert len(stored(data, dsn)) == N + M
        # The central machine is lost after the backup: a new one from the backup.
        if dsn is None:
            assert gs(data, "restore-backup", str(saved)) == 0
        else:
            dsn = new_database(request.getfixturevalue("postgres_server"))
            assert gs(data, "--dsn", dsn, "restore-backup", str(saved)) == 0
        out = capsys.readouterr().out
        assert "restored into" in out
        assert [seq for seq, _ in stored(data, dsn)] == list(range(1, N + 1))
        with running_centre(data, dsn) as url, uploader(ledger, url, token) as up:
            # The gate knows nothing of the restore: its cursor says N + M are stored.
            assert up.status().acked_through == N + M
            fill(ledger, 1)  # its next entry meets the restored centre's cursor: N
            assert up.drain() is Step.IDLE
            status = up.status()
        assert (status.acked_through, status.alarm) == (N + M + 1, None)
        assert stored(data, dsn) == ledger_hashes(ledger)  # every entry, each once


def test_the_backup_holds_the_database_keys_and_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    assert gs(data, "keys", "new") == 0
    assert gs(data, "keys", "centre") == 0
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN)
    token.chmod(0o600)
    capsys.readouterr()
    assert gs(data, "backup", str(tmp_path / "plain"), "--json") == 0
    files = {f["path"]: f for f in json.loads(capsys.readouterr().out)}
    assert "admin.token" not in files  # not unless asked
    assert files["keys/centre.pem"]["mode"] == "0600"
    assert len([p for p in files if p.startswith("keys/")]) == 2
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o700
    assert not (tmp_path / "plain" / "central.sqlite3-wal").exists()  # one file, no WAL
    for path, entry in files.items():
        assert entry["bytes"] == (tmp_path / "plain" / path).stat().st_size
    assert gs(data, "backup", str(tmp_path / "full"), "--admin-token-file", str(token)) == 0
    assert (tmp_path / "full" / "admin.token").read_text() == ADMIN_TOKEN
    assert stat.S_IMODE((tmp_path / "full" / "admin.token").stat().st_mode) == 0o600
    assert gs(data, "verify-backup", str(tmp_path / "full")) == 0


def test_damage_and_wrong_places_are_refused_with_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, saved = tmp_path / "central", tmp_path / "backup"
    assert gs(data, "keys", "centre") == 0
    assert gs(data, "backup", str(saved)) == 0
    capsys.readouterr()
    # Into a folder that holds something: refused, nothing touched.
    assert gs(data, "backup", str(saved)) == 2
    assert "[dest_exists]" in capsys.readouterr().err
    # A data folder with no database is not the centre's: nothing is created in it.
    assert gs(tmp_path / "elsewhere", "backup", str(tmp_path / "b2")) == 2
    assert "[no_database]" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "b2").exists()
    # A changed file fails the check, and is not restored.
    with sqlite3.connect(saved / "central.sqlite3") as db:
        db.execute("CREATE TABLE planted (x)")
    db.close()
    assert gs(data, "verify-backup", str(saved)) == 2
    err = capsys.readouterr().err
    assert "[backup_damaged]" in err and "central.sqlite3: its SHA-256 differs" in err
    before = (data / "central.sqlite3").read_bytes()
    assert gs(data, "restore-backup", str(saved)) == 2
    assert (data / "central.sqlite3").read_bytes() == before
    assert gs(data, "verify-backup", str(tmp_path)) == 2
    assert "[no_manifest]" in capsys.readouterr().err


def test_a_restore_keeps_the_current_keys_and_refuses_another_centre_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, saved = tmp_path / "central", tmp_path / "backup"
    assert gs(data, "keys", "new") == 0
    assert gs(data, "keys", "centre") == 0
    assert gs(data, "backup", str(saved)) == 0
    keys = sorted(p.name for p in (data / "keys").iterdir())
    issuer_key = next(name for name in keys if name != "centre.pem")
    (data / "keys" / issuer_key).unlink()  # lost with the disk, say
    assert gs(data, "restore-backup", str(saved)) == 0
    assert sorted(p.name for p in (data / "keys").iterdir()) == keys
    assert stat.S_IMODE((data / "keys" / issuer_key).stat().st_mode) == 0o600
    assert "key files copied back: " + issuer_key in capsys.readouterr().out
    assert len(list(data.glob("before-restore-*"))) == 1
    (data / "keys" / "centre.pem").write_bytes(b"another centre's key")
    assert gs(data, "restore-backup", str(saved)) == 2
    assert "[centre_key_differs]" in capsys.readouterr().err


def test_a_backup_while_gates_upload_is_a_consistent_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    assert gs(data, "gates", "enrol", GATE) == 0
    code = capsys.readouterr().out.strip()
    with Ledger.open(tmp_path / "gate" / "ledger.sqlite3", gate_id=GATE) as ledger:
        fill(ledger, 600)
        with running_centre(data, None) as url:
            token = enrol(url, GATE, code).token
            up = uploader(ledger, url, token, batch=20)  # many commits to land between
            worker = threading.Thread(target=up.drain)
            worker.start()
            made = 0
            try:
                while worker.is_alive() or made == 0:
                    made += 1
                    assert gs(data, "backup", str(tmp_path / f"b{made}")) == 0
            finally:
                worker.join()
                up.close()
    for number in range(1, made + 1):
        copy = tmp_path / f"b{number}"
        backup.verify(copy)
        db = sqlite3.connect(copy / "central.sqlite3")
        try:
            (through,) = db.execute("SELECT max(stored_through) FROM streams").fetchone()
            seqs = [seq for (seq,) in db.execute("SELECT seq FROM entries ORDER BY seq")]
        finally:
            db.close()
        # Whatever moment it caught: the cursor and the entries agree, with no hole.
        assert seqs == list(range(1, (through or 0) + 1))


def test_a_dsn_password_goes_to_pg_dump_in_the_environment_not_the_command_line() -> None:
    pytest.importorskip("psycopg")
    conninfo, env = backup.pg_environment(
        "postgresql://gate_sync:s3cr%40t@db.internal:5432/gate_sync?options=-csearch_path%3Dgs"
    )
    assert env["PGPASSWORD"] == "s3cr@t"
    assert "s3cr" not in " ".join(backup.pg_dump_command(conninfo, Path("out")))
    assert "dbname=gate_sync" in conninfo and "search_path=gs" in conninfo
