"""Running under systemd: the sd_notify protocol and a watchdog pinged only while healthy.

Our own few lines of the protocol (``sd_notify(3)``), so neither the gate nor the
central server needs python-systemd: a datagram of ``KEY=value`` lines to the unix
socket named in ``$NOTIFY_SOCKET`` (a leading ``@`` names the abstract namespace).
Outside systemd there is no socket and every call quietly does nothing.

The watchdog follows ``sd_watchdog_enabled(3)``: ``$WATCHDOG_USEC`` is the interval,
and when ``$WATCHDOG_PID`` is set it must be this process. ``Watchdog`` pings at half
the interval, but only while its check finds nothing wrong; when the check names a
problem it stops pinging and says why, and systemd restarts the service. Stdlib only:
the central server imports it too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

#: The variables systemd passes a Type=notify service.
NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
#: Turns of the watchdog thread while it waits for the first healthy check (READY=1).
STARTUP_POLL_S = 0.25
#: The longest STATUS= text sent: systemctl status shows one line.
_STATUS_MAX = 200


class Notifier:
    """Sends state changes to the service manager; does nothing when there is none."""

    def __init__(self, address: str | None, *, watchdog_s: float | None = None) -> None:
        self.address = address or None
        #: The watchdog interval systemd expects pings within; None when it watches nothing.
        self.watchdog_s = watchdog_s if self.address else None
        self._warned = False

    @classmethod
    def from_environ(
        cls,
        environ: MutableMapping[str, str] | None = None,
        *,
        pid: int | None = None,
        unset: bool = False,
    ) -> Notifier:
        """The notifier systemd's variables describe for process ``pid`` (this one).

        ``unset`` removes the variables afterwards, as ``sd_notify``'s own flag does, so
        child processes (uvicorn's workers, tools the agent runs) never notify in our name.
        """
        env = os.environ if environ is None else environ
        notifier = cls(env.get(NOTIFY_SOCKET), watchdog_s=watchdog_interval(env, pid=pid))
        if unset:
            for name in (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID):
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; False when nobody got them."""
        if self.address is None:
            return False
        if self.address.startswith("@"):
            target = "\0" + self.address[1:]
        elif self.address.startswith("/"):
            target = self.address
        else:  # vsock: and the like, which systemd offers to virtual machines
            self._warn_once(f"unsupported {NOTIFY_SOCKET} address {self.address!r}")
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(assignments).encode(), target)
        except OSError as exc:
            self._warn_once(f"cannot notify systemd at {self.address}: {exc}")
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up is done (systemctl start returns, After= units start)."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """STATUS=…: the line `systemctl status` shows."""
        return self.notify(*_status(text))

    def ping(self) -> bool:
        """WATCHDOG=1: alive and well."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutting down on purpose."""
        return self.notify("STOPPING=1", *_status(status))

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s", message)


def _status(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.split())[:_STATUS_MAX]]


def watchdog_interval(
    environ: MutableMapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """The watchdog interval in seconds, or None when systemd watches nothing here.

    As ``sd_watchdog_enabled(3)``: ``$WATCHDOG_USEC`` a positive integer, and, when
    ``$WATCHDOG_PID`` is set, this process's id (else the watchdog is another's).
    """
    env = os.environ if environ is None else environ
    usec_text = env.get(WATCHDOG_USEC)
    if usec_text is None:
        return None
    pid_text = env.get(WATCHDOG_PID)
    try:
        usec = int(usec_text)
        watched = int(pid_text) if pid_text is not None else None
    except ValueError:
        log.warning("ignoring %s=%r %s=%r", WATCHDOG_USEC, usec_text, WATCHDOG_PID, pid_text)
        return None
    if usec <= 0 or (watched is not None and watched != (os.getpid() if pid is None else pid)):
        return None
    return usec / 1_000_000


class Watchdog:
    """A thread that pings the watchdog at half its interval while ``check`` returns None.

    ``check`` returns None when all is well, else the problem in a few words. With
    ``ready`` it also sends READY=1 on the first good check (the central server is
    ready once it answers). Without a watchdog interval it stops after that, and once
    ``stopping`` says the service is shutting down on purpose.
    """

    def __init__(
        self,
        notifier: Notifier,
        check: Callable[[], str | None],
        *,
        ready: bool = False,
        ready_status: Callable[[], str] | None = None,
        stopping: Callable[[], bool] | None = None,
        name: str = "watchdog",
    ) -> None:
        self.notifier = notifier
        self.interval_s = notifier.watchdog_s
        self._check = check
        self._want_ready = ready
        self._ready_status = ready_status
        self._stopping = stopping
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: Turns taken, pings sent, and the problem the last turn found (None: healthy).
        self.turns = 0
        self.pings = 0
        self.problem: str | None = None

    @property
    def needed(self) -> bool:
        """Whether there is anything to do: a READY=1 to send, or a watchdog to ping."""
        return self.notifier.enabled and (self._want_ready or self.interval_s is not None)

    def start(self) -> Watchdog:
        """Start the thread (if there is anything to do); returns self."""
        if self.needed:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; pings end with it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end (it ends after READY=1 when there is no watchdog)."""
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def wait_turns(self, turns: int, timeout_s: float) -> bool:
        """Wait until the thread has taken ``turns`` turns in all (for tests and tools)."""
        return self.wait_until(lambda: self.turns >= turns, timeout_s)

    def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait, checking ``condition`` after each turn, until it holds or time runs out."""
        with self._changed:
            return self._changed.wait_for(condition, timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._stopping is not None and self._stopping():
                return  # shutting down on purpose: read nothing into the silence
            problem = self._safe_check()
            if problem is None:
                if self._want_ready:
                    status = self._ready_status() if self._ready_status else None
                    self.notifier.ready(status)
                    self._want_ready = False
                if self.interval_s is not None and self.notifier.ping():
                    self.pings += 1
            self._note(problem)
            if self.interval_s is None and not self._want_ready:
                return  # ready, and no watchdog to feed
            if self._want_ready or self.interval_s is None:
                self._stop.wait(STARTUP_POLL_S)
            else:
                self._stop.wait(self.interval_s / 2)

    def _safe_check(self) -> str | None:
        try:
            return self._check()
        except Exception as exc:  # noqa: BLE001 - a failed check is a problem, not a dead thread
            return f"the health check failed: {exc!r}"

    def _note(self, problem: str | None) -> None:
        before = self.problem
        if self._want_ready:
            pass  # still starting: no answer yet is no news
        elif problem is not None and before is None:
            log.error(
                "watchdog: not pinging systemd: %s; unless this clears within %s s,"
                " systemd restarts the service",
                problem,
                self.interval_s,
            )
            self.notifier.status(f"unhealthy: {problem}")
        elif problem is None and before is not None:
            log.warning("watchdog: healthy again (was: %s); pinging systemd again", before)
            self.notifier.status("healthy again")
        with self._changed:
            self.problem = problem
            self.turns += 1
            self._changed.notify_all()
