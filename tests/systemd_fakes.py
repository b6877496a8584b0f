"""Real unix datagram sockets standing in for systemd's notify socket and journald."""

from __future__ import annotations

import array
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.limits import PATIENCE_S


class DatagramListener:
    """A bound SOCK_DGRAM unix socket a test reads what was sent to it from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        # Room for a big journal entry arriving as one datagram.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # Who sent each datagram, as systemd checks it for NotifyAccess=main.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.senders: set[int] = set()

    def receive(self, timeout_s: float = 10.0) -> bytes | None:
        """The next datagram's bytes (a passed memfd's contents instead), or None on timeout."""
        self.sock.settimeout(timeout_s)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4) * 2)
        except TimeoutError:
            return None
        for level, kind, payload in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                pid, _, _ = struct.unpack("3i", payload[:12])
                self.senders.add(pid)
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                for fd in fds:
                    with os.fdopen(fd, "rb") as memfd:
                        memfd.seek(0)
                        data += memfd.read()
        return data

    def drain(self) -> list[bytes]:
        """Whatever is waiting now, without waiting for more."""
        got = []
        while (data := self.receive(timeout_s=0.001)) is not None:
            got.append(data)
        return got

    def close(self) -> None:
        """Close and remove the socket."""
        self.sock.close()
        self.path.unlink(missing_ok=True)


class NotifyListener(DatagramListener):
    """What a Type=notify service tells systemd: each datagram as its KEY=value lines."""

    def messages(self, timeout_s: float = 10.0) -> list[str] | None:
        """The next datagram's assignments, or None on timeout."""
        data = self.receive(timeout_s)
        return None if data is None else data.decode().split("\n")

    def wait_for(
        self, wanted: Callable[[list[str]], bool], timeout_s: float = PATIENCE_S
    ) -> list[list[str]]:
        """Every datagram up to and including the first ``wanted`` one (asserts it came)."""
        seen: list[list[str]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.messages(max(0.01, deadline - time.monotonic()))
            if message is None:
                break
            seen.append(message)
            if wanted(message):
                return seen
        raise AssertionError(f"the awaited notification never came; got {seen}")


def journal_fields(data: bytes) -> dict[str, str]:
    """Parse one native-protocol journal entry (both forms of field)."""
    entry: dict[str, str] = {}
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        line = data[at:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            entry[key.decode()] = value.decode()
            at = end + 1
        else:
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            entry[line.decode()] = data[end + 9 : end + 9 + size].decode()
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            at = end + 10 + size
    return entry


@contextmanager
def short_dir() -> Iterator[Path]:
    """A fresh folder with a short path (unix socket paths hold at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="gs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
