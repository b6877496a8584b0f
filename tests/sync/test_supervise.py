"""`gate-sync serve` under a fake systemd: READY=1 once it answers, the watchdog while it does."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.server.supervise import probe_host, problem
from tests.sync.fault_helpers import admin_token_file, command
from tests.systemd_fakes import NotifyListener, short_dir
from tests.test_gate_syncs import free_port


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    with short_dir() as folder:
        sock = NotifyListener(folder / "notify")
        yield sock
        sock.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_is_ready_once_it_answers_and_feeds_the_watchdog_from_the_main_process(
    tmp_path: Path, listener: NotifyListener, workers: int
) -> None:
    data = tmp_path / "central"
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen(
        [command("gate-sync"), "--data-dir", str(data), "serve", "--port", str(port),
         "--admin-token-file", str(admin_token_file(data)), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        seen = listener.wait_for(lambda m: m[0] == "READY=1", timeout_s=60)
        assert seen == [
            ["READY=1", f"STATUS=serving on 127.0.0.1:{port}, {workers} worker(s), store sqlite"]
        ]
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        process.send_signal(signal.SIGTERM)
        listener.wait_for(lambda m: m == ["STOPPING=1"], timeout_s=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    # One process: uvicorn raises the SIGTERM again once it has shut down, which systemd
    # counts as a clean stop; the supervisor of --workers N exits 0.
    assert process.returncode in (0, -signal.SIGTERM), errors
    # NotifyAccess=main: systemd would ignore (and complain of) any other sender.
    assert listener.senders == {process.pid}
    # With --workers N uvicorn's supervisor keeps its SIGTERM to itself, so a probe that
    # lands in the moment of shutdown may be reported; one process knows it is stopping.
    reported = [line for line in errors.splitlines() if "ERROR" in line]
    if workers > 1:
        reported = [line for line in reported if "watchdog: not pinging systemd" not in line]
    assert reported == [], errors


class Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the status the test's server was given."""

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_answer_below_500_is_healthy_and_one_above_or_none_is_a_problem(
    health: http.server.HTTPServer,
) -> None:
    port = health.server_address[1]
    health.status = 200  # type: ignore[attr-defined]
    assert problem("127.0.0.1", port) is None
    health.status = 404  # type: ignore[attr-defined]  # a server without /healthz still answers
    assert problem("0.0.0.0", port) is None  # noqa: S104 - listening everywhere: asked locally
    health.status = 503  # type: ignore[attr-defined]
    assert problem("127.0.0.1", port) == f"GET /healthz on 127.0.0.1:{port} answered 503"
    closed = free_port()
    assert (problem("127.0.0.1", closed) or "").startswith(f"no answer from 127.0.0.1:{closed}")


def test_a_wildcard_listening_address_is_asked_on_loopback() -> None:
    assert probe_host("0.0.0.0") == "127.0.0.1"  # noqa: S104
    assert probe_host("::") == "::1"
    assert probe_host("10.0.0.5") == "10.0.0.5"
