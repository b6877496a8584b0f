"""A running gate enrols with a real `gate-sync serve` process and every entry arrives once."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from gate_agent import cli as agent_cli
from gate_agent.assemble import open_gate
from gate_agent.clock import SystemClock
from gate_agent.config import load_config
from gate_agent.console.auth import Roster
from gate_agent.console.server import ConsoleServer, console_app, roster_path
from sync import cli as sync_cli
from tests.limits import PATIENCE_S
from tests.test_station import make_pass, trust_key

ADMIN_TOKEN = "central-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`gate-sync serve` as its own process, as systemd would run it."""
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
         "--admin-token-file", str(token)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/v1/admin/gates", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, data
    finally:
        process.terminate()
        process.communicate(timeout=20)


def gate_toml(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(
        f"""[gate]
id = "G1"
compound_id = "C1"
community_id = "M1"
data_dir = "gate"

[[cameras]]
source = "sim:"
direction = "in"

[scanner]
debounce_seconds = 0.5

[thermometer]
kind = "none"

[signals]
kind = "mock"

[console]
enabled = false

[sync]
enabled = true
server_url = "{url}"
poll_seconds = 0.2
lists_poll_seconds = 0.3
""",
        encoding="utf-8",
    )
    return path


def enrolled_gate(
    tmp_path: Path, centre: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> tuple[Path, str]:
    """gate.toml of gate G1, enrolled with ``centre`` through both CLIs; and the code used."""
    url, data = centre
    assert sync_cli.main(["--data-dir", str(data), "gates", "enrol", "G1"]) == 0
    code = capsys.readouterr().out.strip()
    path = gate_toml(tmp_path, url)
    assert agent_cli.main(["--config", str(path), "sync", "enrol", "--code", code]) == 0
    return path, code


def test_a_gate_enrols_and_its_entries_reach_the_centre_once(
    tmp_path: Path, centre: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, data = centre
    path, code = enrolled_gate(tmp_path, centre, capsys)
    assert agent_cli.main(["--config", str(path), "sync", "enrol", "--code", code]) == 1
    config = load_config(path)
    with open_gate(config) as gate:
        trust_key(gate)
        assert gate.uploader is not None
        camera = gate.simulated_camera("in")
        for i in range(3):
            camera.show_pass(make_pass(f"SYNC000{i}"))
            deadline = time.monotonic() + PATIENCE_S
            while gate.ledger.count() < i + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            camera.show_nothing()
            time.sleep(0.6)
        deadline = time.monotonic() + PATIENCE_S
        while gate.uploader.status().backlog and time.monotonic() < deadline:
            time.sleep(0.1)
        status = gate.uploader.status()
        entries = gate.ledger.entries()
    assert (status.backlog, status.acked_through, status.alarm) == (0, 3, None)
    pulled = httpx.get(
        f"{url}/v1/admin/entries?after=0&limit=100",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    rows = [json.loads(line) for line in pulled.text.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r["hash"] for r in rows] == [e.hash for e in entries]
    assert not any(r["flagged"] for r in rows)
    assert agent_cli.main(["--config", str(path), "sync", "status"]) == 0
    assert "backlog 0" in capsys.readouterr().out

    # The admin's view of the fleet: G1 seen just now with all 3 stored; G2 never came.
    assert sync_cli.main(["--data-dir", str(data), "gates", "enrol", "G2"]) == 0
    capsys.readouterr()
    assert sync_cli.main(["--data-dir", str(data), "gates", "list", "--json"]) == 0
    fleet = {g["gate_id"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert (fleet["G1"]["stored"], fleet["G1"]["stale"]) == (3, False)
    assert 1 <= fleet["G1"]["backlog"] <= 3  # as the gate said with its last batch
    assert (fleet["G2"]["last_seen"], fleet["G2"]["stale"]) == (None, True)
    assert sync_cli.main(["--data-dir", str(data), "gates", "list"]) == 0
    table = capsys.readouterr()
    assert any(line.startswith("G2") and "never" in line and "STALE" in line
               for line in table.out.splitlines())  # fmt: skip
    assert "2 gates, 1 not seen in 60 min" in table.err
    assert sync_cli.main(["--data-dir", str(data), "gates", "log", "G1"]) == 0
    log = capsys.readouterr().out.splitlines()
    assert log and all(" stored " in line or " repeat " in line for line in log)
    assert sum(int(line.rsplit("+", 1)[1]) for line in log) == 3


def test_what_the_centre_decides_reaches_the_running_gate(
    tmp_path: Path, centre: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys, a revocation and a lockdown set at the centre come down, signed, by themselves."""
    url, data = centre

    def admin(*args: str) -> str:
        assert sync_cli.main(["--data-dir", str(data), *args]) == 0
        return capsys.readouterr().out.strip()

    admin("keys", "new")
    text = admin("passes", "issue", "--kind", "resident", "--household", "H0301",
                 "--name", "张三明", "--scope", "compound:C1", "--days", "30")  # fmt: skip
    code = admin("gates", "enrol", "G1")
    path = gate_toml(tmp_path, url)
    assert agent_cli.main(["--config", str(path), "sync", "enrol", "--code", code]) == 0
    with open_gate(load_config(path)) as gate:
        state = gate.ledger.state

        def until(ready: Callable[[], bool]) -> None:
            deadline = time.monotonic() + PATIENCE_S
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready()

        until(lambda: len(state.issuer_keys()) == 1 and state.directory_status().items == 1)
        assert gate.station.assessor.mode().value == "screening"

        pass_id = state.directory_search()[0]["pass_id"]
        admin("passes", "revoke", pass_id, "--reason", "lost card")
        admin("gates", "set", "mode=lockdown", "fever_celsius=37.5", "--gate", "G1")
        until(lambda: pass_id in state.revoked_pass_ids())
        until(lambda: gate.station.assessor.mode().value == "lockdown")
        assert gate.station.assessor.settings.fever_celsius == 37.5
        assert state.directory_status().items == 0  # the revoked pass left the directory
        assert state.local_mode() is not None
        assert state.local_mode()[2] == "centre"  # type: ignore[index]

        gate.simulated_camera("in").show_pass(text)
        until(lambda: gate.ledger.count() == 1)
        (entry,) = gate.ledger.entries()
        assert (entry.outcome, entry.reason) == ("deny", "revoked")
        status = gate.uploader.status() if gate.uploader else None
        assert status is not None and status.last_error is None


def test_serve_with_two_workers_takes_uploads_on_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gate-sync serve --workers 2`: two processes, one port, one store, one centre key."""
    from tests.sync.stream_helpers import batch_dict, fill_ledger, gzip_body, ledger_entries

    data = tmp_path / "central"
    data.mkdir()
    token = data / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    assert sync_cli.main(["--data-dir", str(data), "gates", "enrol", "gate-a"]) == 0
    code = capsys.readouterr().out.strip()
    port = free_port()
    script = shutil.which("gate-sync", path=str(Path(sys.executable).parent))
    assert script
    process = subprocess.Popen(
        [script, "--data-dir", str(data), "serve", "--port", str(port),
         "--admin-token-file", str(token), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                httpx.get(f"{url}/v1/admin/gates", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        enrolled = httpx.post(f"{url}/v1/gates/enrol", json={"gate_id": "gate-a", "code": code})
        gate_token = enrolled.json()["token"]
        stream = fill_ledger(tmp_path / "gate.sqlite3", 40)
        entries = ledger_entries(tmp_path / "gate.sqlite3")
        auth = {"Authorization": f"Bearer {gate_token}", "Content-Encoding": "gzip"}
        with httpx.Client(base_url=url, timeout=10) as client:
            for first in range(0, 40, 4):  # new connections: either worker may answer
                reply = client.post(
                    f"/v1/gates/gate-a/streams/{stream}/batches",
                    content=gzip_body(batch_dict(entries[first : first + 4])),
                    headers={**auth, "Connection": "close"},
                )
                assert reply.status_code == 200, reply.text
                assert reply.json()["stored_through"] == first + 4
            # Lists from either worker carry the one centre key's signature.
            kids = {
                client.get(
                    "/v1/gates/gate-a/lists",
                    headers={"Authorization": f"Bearer {gate_token}", "Connection": "close"},
                ).json()["kid"]
                for _ in range(6)
            }
        assert kids == {enrolled.json()["centre_key"]["kid"]}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert [p.name for p in (data / "keys").iterdir()] == ["centre.pem"]
    assert "Traceback" not in err


RETURNEE = {
    "name": "陈静", "phone": "13900139000", "household_id": "H0305", "from_place": "武汉",
    "returned_on": "2026-02-20", "transport": "G507", "health": "well",
    "temperature_celsius": 36.4,
}  # fmt: skip


def test_a_returnee_registered_at_the_console_reaches_the_centres_ledger(
    tmp_path: Path, centre: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 4: "returnee registration at the gate … a returnee record that syncs up"."""
    url, data = centre
    path, _ = enrolled_gate(tmp_path, centre, capsys)
    config = load_config(path)
    clock = SystemClock()
    pin = Roster(roster_path(config.gate.data_dir)).add(
        "王师傅", until=clock.now() + timedelta(hours=8)
    )
    with open_gate(config, clock=clock) as gate:
        assert gate.uploader is not None
        server = ConsoleServer(console_app(gate, config.console, clock), "127.0.0.1", 0)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as guard:
                signed = guard.post("/api/session/guard", json={"name": "王师傅", "pin": pin})
                guard.headers["X-CSRF-Token"] = signed.json()["csrf"]
                answer = guard.post("/api/returnees", json=RETURNEE).json()
                assert (answer["outcome"], answer["manual_identity"]) == ("allow", "returnee")

                def sync() -> dict[str, Any]:
                    return dict(guard.get("/api/status").json()["sync"])

                deadline = time.monotonic() + PATIENCE_S
                while sync()["backlog"] and time.monotonic() < deadline:
                    time.sleep(0.1)
                shown = sync()  # what the guard's status panel says
        finally:
            server.stop()
    assert (shown["configured"], shown["backlog"], shown["acked_through"]) == (True, 0, 1)
    assert shown["last_success"] is not None and shown["last_error"] is None
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    pulled = httpx.get(f"{url}/v1/admin/entries?after=0&limit=100", headers=admin, timeout=10)
    (row,) = [json.loads(line) for line in pulled.text.splitlines()]
    assert (row["gate_id"], row["seq"], row["flagged"]) == ("G1", answer["seq"], False)
    content = row["content"]
    assert (content["manual_identity"], content["household_id"], content["guard"]) == (
        "returnee", "H0305", "王师傅",
    )  # fmt: skip
    assert content["temperature_celsius"] == pytest.approx(36.4)

    # The community workers' returnees ledger, as the admin page downloads it ...
    book = httpx.get(f"{url}/v1/admin/ledgers/returnees.xlsx", headers=admin, timeout=10)
    assert book.status_code == 200, book.text
    out = tmp_path / "returnees.xlsx"
    out.write_bytes(book.content)
    # ... and as `gate-sync ledgers` writes it: one returnee, with what the guard typed.
    again = tmp_path / "returnees-cli.xlsx"
    command = ["--data-dir", str(data), "ledgers", "returnees", "--out", str(again)]
    assert sync_cli.main(command) == 0
    for sheet in (out, again):
        book_sheet = load_workbook(sheet).active
        assert book_sheet is not None
        rows = list(book_sheet.iter_rows(values_only=True))
        assert len(rows) == 3  # the Chinese header, the English one, the returnee
        returnee = dict(zip(rows[1], rows[2], strict=True))
        assert (returnee["gate"], returnee["household"], returnee["name"], returnee["phone"]) == (
            "G1", "H0305", "陈静", "13900139000",
        )  # fmt: skip
        assert (returnee["coming from"], returnee["returned on"]) == ("武汉", "2026-02-20")
        assert (returnee["transport (train/flight)"], returnee["health"]) == ("G507", "well")
        assert (returnee["outcome"], returnee["guard"]) == ("allow", "王师傅")
        assert float(returnee["temperature (°C)"]) == pytest.approx(36.4)
