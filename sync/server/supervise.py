"""`gate-sync serve` under systemd: ready once it answers, the watchdog fed while it does.

A thread of the main process (the only one systemd hears, NotifyAccess=main) asks
the server over HTTP for ``/healthz``, as a client would; with ``--workers N`` any
worker may answer, since they share the socket. The first answer sends READY=1,
each later one pings the watchdog. An answer of 500 or above (``/healthz`` says 503
when the store does not answer) or no answer at all stops the pings, and systemd
restarts the server after WatchdogSec.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from types import FrameType

import uvicorn

from gate_agent.service import Notifier, Watchdog

HEALTH_PATH = "/healthz"
#: The longest wait for an answer; a server slower than this is as good as stuck.
PROBE_TIMEOUT_S = 10.0


def probe_host(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - a listening address, not a bind
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def problem(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the server at ``host``:``port`` answers below 500, else what went wrong."""
    target = probe_host(host)
    connection = http.client.HTTPConnection(target, port, timeout=timeout_s)
    try:
        connection.request("GET", HEALTH_PATH, headers={"User-Agent": "gate-sync-watchdog"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer from {target}:{port}: {exc or type(exc).__name__}"
    finally:
        connection.close()
    if response.status >= 500:
        return f"GET {HEALTH_PATH} on {target}:{port} answered {response.status}"
    return None


def serve_watchdog(
    notifier: Notifier,
    host: str,
    port: int,
    status: Callable[[], str],
    stopping: Callable[[], bool] | None = None,
) -> Watchdog:
    """The watchdog thread for a server on ``host``:``port`` (started by ``with``).

    ``stopping`` tells when the server shuts down on purpose (SIGTERM), so that the
    answers ending then are not taken for a hang.
    """
    timeout_s = min(PROBE_TIMEOUT_S, (notifier.watchdog_s or PROBE_TIMEOUT_S * 4) / 4)
    return Watchdog(
        notifier,
        lambda: problem(host, port, timeout_s),
        ready=True,
        ready_status=status,
        stopping=stopping,
        name="serve-watchdog",
    )


class NotifyingServer(uvicorn.Server):
    """uvicorn's server for one process, saying STOPPING=1 the moment a signal stops it."""

    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: tell systemd, then shut down as uvicorn does."""
        if not self.should_exit:
            self.notifier.stopping()
        super().handle_exit(sig, frame)
