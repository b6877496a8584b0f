"""SIGKILL mid-batch: the server, then the gate's uploader, killed and started again.

Both run as processes of their own (`gate-sync serve`, `gate-agent run`), as systemd
runs them; the fault proxy holds a request so that the kill lands in a known window.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gate_agent import cli as agent_cli
from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, UplinkSettings, Uploader
from sync import cli as sync_cli
from sync.protocol import Ack
from tests.limits import PATIENCE_S
from tests.sync.conftest import FAULT_ENTRIES
from tests.sync.fault_helpers import (
    ADMIN_TOKEN,
    assert_exactly_once,
    command,
    integrity_ok,
    read_sqlite,
    server_errors,
    start_serve,
    sync_results,
)
from tests.sync.faultproxy import Fault, FaultProxy
from tests.sync.stream_helpers import GATE

ENTRIES = FAULT_ENTRIES
BATCH = 30


def enrol_code(data_dir: Path, gate_id: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A one-time code from `gate-sync gates enrol`."""
    capsys.readouterr()
    assert sync_cli.main(["--data-dir", str(data_dir), "gates", "enrol", gate_id]) == 0
    return capsys.readouterr().out.strip()


def stored_through(url: str, gate_id: str) -> list[int]:
    """The centre's cursors of a gate's streams, as the fleet view shows them."""
    fleet = httpx.get(
        f"{url}/v1/admin/gates", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    ).json()
    return [
        s["stored_through"] for g in fleet["gates"] if g["gate_id"] == gate_id for s in g["streams"]
    ]


def acked(ledger_path: Path) -> int:
    """The gate's acknowledged cursor, read from the ledger file."""
    rows = read_sqlite(ledger_path, "SELECT acked_through FROM sync_state")
    return int(rows[0][0]) if rows else 0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> None:
    """Wait (bounded) until ``condition`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def sigkill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL


@pytest.mark.parametrize(
    "window",
    [Fault.HOLD_BODY, Fault.HOLD_SENT, Fault.HOLD_REPLY],
    ids=["inside-the-body", "request-sent", "after-the-commit"],
)
def test_a_server_killed_mid_batch_restarts_and_loses_nothing(
    tmp_path: Path, gate_ledger: Path, capsys: pytest.CaptureFixture[str], window: Fault
) -> None:
    data = tmp_path / "central"
    code = enrol_code(data, GATE, capsys)
    ledger_path = gate_ledger
    server, port = start_serve(data)
    server_back = threading.Event()
    outcome: list[Step] = []

    def until_back() -> None:
        """The uploader's backoff: wait for the server to be back, never a real delay."""
        server_back.wait(30)

    try:
        url = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{url}/v1/gates/enrol", json={"gate_id": GATE, "code": code}, timeout=10
        ).json()["token"]
        with (
            FaultProxy(("127.0.0.1", port), {3: window}) as proxy,
            Ledger.open(ledger_path, gate_id=GATE) as ledger,
            Uploader(
                ledger,
                base_url=proxy.url,
                gate_id=GATE,
                token=token,
                clock=FakeClock(),
                settings=UplinkSettings(timeout_s=5.0, max_entries=BATCH),
                sleep=lambda _delay: until_back(),
            ) as uploader,
        ):
            drainer = threading.Thread(target=lambda: outcome.append(uploader.drain()))
            drainer.start()
            assert proxy.wait_held()  # the third batch (61..90) is in the window
            sigkill(server)
            proxy.release()
            server, port = start_serve(data)  # the same data folder, a new port
            url = f"http://127.0.0.1:{port}"
            proxy.upstream = ("127.0.0.1", port)
            server_back.set()
            drainer.join(60)
            assert outcome == [Step.IDLE]
            assert proxy.settle()
        assert_exactly_once(url, ledger_path, GATE)
        results = sync_results(url, GATE)
        (held,) = proxy.faults_of(window)
        if window is Fault.HOLD_BODY:
            # Half a body is no batch: 61..90 was stored once, after the restart.
            assert results == ["stored"] * (ENTRIES // BATCH)
        if window is Fault.HOLD_REPLY:
            # Committed and acknowledged before the kill, its Ack lost with the server:
            # the commit survived SIGKILL, and the resend after the restart is a repeat.
            assert Ack.model_validate_json(held.replies[0].body).stored_through == 3 * BATCH
            assert results[:4] == ["stored", "stored", "stored", "repeat"]
    finally:
        server_back.set()
        server.terminate()
        server.wait(20)
    assert integrity_ok(data / "central.sqlite3")
    assert server_errors(data) == []


def gate_toml(tmp_path: Path, server_url: str) -> Path:
    """A gate with no camera or sensor: only its ledger and uploader do anything."""
    path = tmp_path / "gate.toml"
    path.write_text(
        f"""[gate]
id = "{GATE}"
compound_id = "C1"
community_id = "M1"
data_dir = "gate"

[thermometer]
kind = "none"

[signals]
kind = "mock"

[console]
enabled = false

[sync]
enabled = true
server_url = "{server_url}"
timeout_seconds = 5
poll_seconds = 0.1
backoff_base_seconds = 0.01
backoff_cap_seconds = 0.05
batch_entries = {BATCH}
""",
        encoding="utf-8",
    )
    return path


def test_a_gate_killed_mid_upload_resumes_and_loses_nothing(
    tmp_path: Path, gate_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    code = enrol_code(data, GATE, capsys)
    ledger_path = gate_ledger
    server, port = start_serve(data)
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "gate-agent.log").open("wb")
    gate: subprocess.Popen[bytes] | None = None

    def run_gate() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [command("gate-agent"), "--config", str(config), "run"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    try:
        with FaultProxy(("127.0.0.1", port)) as proxy:
            config = gate_toml(tmp_path, proxy.url)
            assert agent_cli.main(["--config", str(config), "sync", "enrol", "--code", code]) == 0
            start = len(proxy.seen)

            # 1. Killed after the centre committed batch 4 (91..120), its Ack held back.
            proxy.program({start + 4: Fault.HOLD_REPLY})
            gate = run_gate()
            assert proxy.wait_held(1, timeout_s=30)
            sigkill(gate)
            proxy.release()
            assert acked(ledger_path) == 3 * BATCH
            assert stored_through(url, GATE) == [4 * BATCH]  # the centre is ahead of the gate
            assert agent_cli.main(["verify-ledger", str(ledger_path)]) == 0
            assert integrity_ok(ledger_path)
            assert proxy.settle()

            # 2. Started again, it drains the rest and stops cleanly.
            gate = run_gate()
            wait_for(lambda: acked(ledger_path) == ENTRIES, "the gate's backlog is gone")
            gate.send_signal(signal.SIGTERM)
            assert gate.wait(20) == 0
            gate = None
        assert_exactly_once(url, ledger_path, GATE)
        # 91..120 was resent after the restart, and was a repeat.
        assert sync_results(url, GATE)[:5] == ["stored"] * 4 + ["repeat"]
        assert agent_cli.main(["verify-ledger", str(ledger_path)]) == 0
        assert integrity_ok(ledger_path)
    finally:
        if gate is not None and gate.poll() is None:
            sigkill(gate)
        log.close()
        server.terminate()
        server.wait(20)
    assert integrity_ok(data / "central.sqlite3")
    assert server_errors(data) == []
