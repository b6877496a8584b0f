"""sd_notify and the watchdog (gate_agent/service.py), against real unix datagram sockets."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from gate_agent.service import Notifier, Watchdog, watchdog_interval
from tests.systemd_fakes import NotifyListener, short_dir


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    with short_dir() as folder:
        sock = NotifyListener(folder / "notify")
        yield sock
        sock.close()


def test_each_state_goes_as_one_datagram_of_assignments(listener: NotifyListener) -> None:
    notifier = Notifier(str(listener.path))
    assert notifier.enabled
    assert notifier.ready("gate G1:\n2 lanes")
    assert listener.messages() == ["READY=1", "STATUS=gate G1: 2 lanes"]
    assert notifier.status("ledger seq 7")
    assert listener.messages() == ["STATUS=ledger seq 7"]
    assert notifier.ping()
    assert listener.messages() == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert listener.messages() == ["STOPPING=1"]


def test_an_abstract_socket_address_starts_with_at() -> None:
    name = f"gate-station-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert Notifier("@" + name).ready()
        assert sock.recv(100) == b"READY=1"


def test_outside_systemd_nothing_happens() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.watchdog_s is None
    assert not notifier.ready("x")
    assert not notifier.ping()
    assert not Watchdog(notifier, lambda: None, ready=True).needed


def test_a_vanished_socket_is_warned_about_once(
    listener: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(listener.path))
    listener.close()
    with caplog.at_level(logging.WARNING, logger="gate_agent.service"):
        assert not notifier.ping()
        assert not notifier.ping()
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_read_as_sd_watchdog_enabled_reads_it(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ) == expected


def test_the_variables_can_be_taken_from_the_environment_children_inherit() -> None:
    environ = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "PATH": "/bin"}
    notifier = Notifier.from_environ(environ, unset=True)
    assert (notifier.address, notifier.watchdog_s) == ("/run/x", 2.0)
    assert environ == {"PATH": "/bin"}


class Switch:
    """A health check a test turns: None when healthy, else the problem."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.lock = threading.Lock()

    def __call__(self) -> str | None:
        with self.lock:
            return self.problem


def test_pings_stop_while_the_check_names_a_problem_and_resume_after(
    listener: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    switch = Switch()
    notifier = Notifier(str(listener.path), watchdog_s=0.1)
    with caplog.at_level(logging.INFO), Watchdog(notifier, switch) as watchdog:
        listener.wait_for(lambda m: m == ["WATCHDOG=1"])
        switch.problem = "worker stuck for 40 s"
        turns = watchdog.turns
        assert watchdog.wait_turns(turns + 2, timeout_s=20)  # the switch is seen by now
        listener.drain()
        turns = watchdog.turns
        assert watchdog.wait_turns(turns + 3, timeout_s=20)
        assert "WATCHDOG=1" not in {line for m in listener.drain() for line in m.decode().split()}
        assert watchdog.problem == "worker stuck for 40 s"
        switch.problem = None
        seen = listener.wait_for(lambda m: m == ["STATUS=healthy again"])
        assert seen[0] == ["WATCHDOG=1"]  # the first ping of the recovered turn
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # said once, not once a turn
    assert "not pinging systemd: worker stuck for 40 s" in errors[0]


def test_ready_waits_for_the_first_good_check(listener: NotifyListener) -> None:
    switch = Switch()
    switch.problem = "no answer on 127.0.0.1:8600"
    notifier = Notifier(str(listener.path))  # no watchdog: only READY=1 to send
    with Watchdog(notifier, switch, ready=True, ready_status=lambda: "serving") as watchdog:
        assert watchdog.wait_turns(3, timeout_s=20)
        assert listener.drain() == []  # nothing said while starting
        switch.problem = None
        assert listener.messages() == ["READY=1", "STATUS=serving"]
        assert watchdog.join(timeout_s=20)


def test_a_check_that_raises_is_a_problem_not_a_dead_thread(listener: NotifyListener) -> None:
    def check() -> str | None:
        raise RuntimeError("store gone")

    with Watchdog(Notifier(str(listener.path), watchdog_s=0.1), check) as watchdog:
        assert watchdog.wait_turns(2, timeout_s=20)
        assert watchdog.problem == "the health check failed: RuntimeError('store gone')"
        assert watchdog.pings == 0
