"""Serving the console beside the scan loop: uvicorn in a thread of the gate's process."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gate_agent.assemble import Gate
from gate_agent.clock import Clock
from gate_agent.config import ConsoleSection
from gate_agent.console.app import create_app
from gate_agent.console.auth import Roster
from gate_agent.console.deps import Console
from gate_agent.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)


def roster_path(data_dir: Path) -> Path:
    """Where a gate keeps its guards' shift PINs."""
    return data_dir / "guards.json"


def read_admin_token(path: Path | None, what: str = "admin") -> str | None:
    """The admin token from its file, or None when the console has no admin sign-in."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"console {what} token file {path}: {exc}") from exc
    if len(token) < 16:
        raise ConfigError(f"console {what} token in {path} is too short (16 characters at least)")
    return token


def console_app(gate: Gate, section: ConsoleSection, clock: Clock) -> FastAPI:
    """The console app for a gate, as its config describes it."""
    return create_app(
        gate,
        clock=clock,
        roster=Roster(roster_path(gate.config.gate.data_dir)),
        admin_token=read_admin_token(section.admin_token_file),
        session_hours=section.session_hours,
        metrics_token=read_admin_token(section.metrics_token_file, "metrics"),
    )


class ConsoleServer:
    """uvicorn on a socket we bind ourselves (so port 0 works in tests), in a thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        # Set while stopping: the app's open event streams end (see ``stop``).
        console: Console = app.state.console
        self._closing = console.closing
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="console", daemon=True)

    @property
    def url(self) -> str:
        """Where the console answers."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server's thread is still serving."""
        return self._thread.is_alive()

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve until ``stop``; returns once the server accepts connections."""
        self._closing.clear()  # the same app may be served again after a stop
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DeviceError(f"the console did not start on {self.host}:{self.port}")
            time.sleep(0.02)

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        """Stop serving and close the socket.

        Open event streams are told to end first: uvicorn's graceful stop waits for every
        response to finish, and a page's stream would otherwise never finish.
        """
        self._closing.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
