"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, between the gate's uploader and a real server.

A test programs, request by request (numbered from 1 across all connections), what the
proxy does; every request not programmed passes. Holding faults stop at a chosen point
until the test calls ``release()``, and say so through ``wait_held()``, so a test can land
a SIGKILL in a known window (``HOLD_REPLY``: the server has answered, so it has committed).

It knows just enough HTTP/1.1 for the uplink: a message is a head and a Content-Length body
(a reply without one runs to the close; chunked bodies are refused as a proxy error), and a
client connection carries one request after another (httpx keeps connections alive). Each
request goes upstream on a fresh connection, so a server restarted on another port can take
over by setting ``upstream``.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

UPSTREAM_TIMEOUT_S = 10.0


class Fault(enum.Enum):
    """What the proxy does with one request."""

    PASS = "pass"  # forward the request, relay the reply
    RESET = "reset"  # read the request, answer with a TCP reset; nothing is forwarded
    CUT = "cut"  # forward the head and half the body, then close both sides
    DROP_REPLY = "drop_reply"  # forward it all, read the server's reply, close without it
    DUPLICATE = "duplicate"  # forward it twice at once on two connections, relay one reply
    STALL = "stall"  # hold it unforwarded until released, then forward it late; close the client
    HOLD_BODY = "hold_body"  # forward the head and half the body, hold until released, cut
    HOLD_SENT = "hold_sent"  # forward it all, hold until released, then relay a reply if any
    HOLD_REPLY = "hold_reply"  # forward it all, read the reply, hold until released, drop it


class ProxyError(Exception):
    """The proxy met HTTP it does not handle (a test bug, not a fault it injects)."""


@dataclass
class Message:
    """One HTTP message as bytes: its head (through the blank line) and its body."""

    head: bytes
    body: bytes

    @property
    def first_line(self) -> str:
        """The request line or status line."""
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def status(self) -> int:
        """A reply's status code."""
        return int(self.first_line.split()[1])

    def header(self, name: str) -> str | None:
        """A header's value (the first of that name), or None."""
        for line in self.head.split(b"\r\n")[1:]:
            key, sep, value = line.partition(b":")
            if sep and key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


@dataclass
class Seen:
    """A request the proxy handled: its number, connection, fault and the server's replies."""

    number: int
    connection: int
    fault: Fault
    request_line: str
    replies: list[Message] = field(default_factory=list)  # as read from the server
    relayed: bool = False  # whether a reply reached the client


class _Reader:
    """Buffered reads of HTTP messages from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _more(self) -> bool:
        chunk = self._sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def message(self, *, reply: bool) -> Message | None:
        """The next message; None at a clean end of stream before any byte of it."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._more():
                if self._buffer:
                    raise ConnectionError("the stream ended inside a message head")
                return None
        end = self._buffer.index(b"\r\n\r\n") + 4
        head, self._buffer = self._buffer[:end], self._buffer[end:]
        partial = Message(head, b"")
        if partial.header("transfer-encoding") is not None:
            raise ProxyError(f"chunked bodies are not handled: {partial.first_line}")
        length = partial.header("content-length")
        if length is not None:
            partial.body = self._exactly(int(length))
        elif reply and partial.status not in (204, 304) and partial.status >= 200:
            while self._more():
                pass
            partial.body, self._buffer = self._buffer, b""
        return partial

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._more():
                raise ConnectionError("the stream ended inside a body")
        body, self._buffer = self._buffer[:count], self._buffer[count:]
        return body


class FaultProxy:
    """A threaded TCP proxy that injects programmed faults per HTTP request."""

    def __init__(
        self, upstream: tuple[str, int], faults: Mapping[int, Fault] | None = None
    ) -> None:
        """Listen on a free port of 127.0.0.1, forwarding to ``upstream``."""
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self._faults: dict[int, Fault] = dict(faults or {})
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._held = 0
        self._active = 0
        self._connections = 0
        self._closing = False
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._accepting = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def program(self, faults: Mapping[int, Fault]) -> None:
        """Set the faults of requests by number (1 is the first request the proxy sees)."""
        with self._lock:
            self._faults.update(faults)

    def faults_of(self, fault: Fault) -> list[Seen]:
        """The requests handled with ``fault``."""
        with self._lock:
            return [s for s in self.seen if s.fault is fault]

    def wait_held(self, count: int = 1, timeout_s: float = 10.0) -> bool:
        """Wait until ``count`` requests have reached their hold; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._held >= count, timeout_s)

    def release(self) -> None:
        """Let every request held now go on; later holds hold again."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no request is being handled; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout_s)

    def close(self) -> None:
        """Release holds, stop accepting, cut every open connection and join the threads."""
        with self._lock:
            self._closing = True
            self._release.set()
            open_sockets = list(self._sockets)
        self._accepting.join(5)
        self._listener.close()
        for sock in open_sockets:
            _shutdown(sock)
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> FaultProxy:
        """Use as a context manager that closes the proxy."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the proxy; a proxy error fails the test (unless it already fails)."""
        self.close()
        if exc_type is None and self.errors:
            raise ProxyError(f"the proxy failed: {self.errors!r}") from self.errors[0]

    # -- connections ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets.add(client)
            thread = threading.Thread(
                target=self._client, args=(client, number), name=f"faultproxy-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _client(self, client: socket.socket, connection: int) -> None:
        try:
            reader = _Reader(client)
            while not self._closing:
                try:
                    request = reader.message(reply=False)
                except OSError:
                    return  # the client went away (or the proxy is closing)
                if request is None:
                    return
                seen = self._begin(connection, request)
                try:
                    if not self._handle(client, request, seen):
                        return
                finally:
                    self._end()
        except BaseException as exc:  # noqa: BLE001 - recorded, and raised at close
            self.errors.append(exc)
        finally:
            self._forget(client)

    def _begin(self, connection: int, request: Message) -> Seen:
        with self._lock:
            number = len(self.seen) + 1
            fault = self._faults.get(number, Fault.PASS)
            seen = Seen(number, connection, fault, request.first_line)
            self.seen.append(seen)
            self._active += 1
            return seen

    def _end(self) -> None:
        with self._lock:
            self._active -= 1
            self._lock.notify_all()

    def _hold(self) -> None:
        with self._lock:
            release = self._release
            self._held += 1
            self._lock.notify_all()
            if self._closing:
                return
        release.wait()

    # -- faults -----------------------------------------------------------------------------

    def _handle(self, client: socket.socket, request: Message, seen: Seen) -> bool:
        """Act on one request; whether the client connection stays open for the next."""
        fault = seen.fault
        whole = request.head + request.body
        half = request.head + request.body[: len(request.body) // 2]
        if fault is Fault.RESET:
            _reset(client)
            return False
        if fault in (Fault.CUT, Fault.HOLD_BODY):
            try:
                with self._upstream() as up:
                    up.sendall(half)
                    if fault is Fault.HOLD_BODY:
                        self._hold()
            except OSError:
                pass  # the server is gone already: the cut is the same to the client
            return False
        if fault is Fault.STALL:
            self._hold()
            self._exchange(whole, seen)  # late: the client has given up by now
            return False
        if fault is Fault.HOLD_SENT:
            reply = None
            try:
                with self._upstream() as up:
                    up.sendall(whole)
                    self._hold()
                    reply = _read_reply(up, seen)
            except OSError:
                pass
            if reply is None:
                _reset(client)
                return False
            return self._relay(client, reply, seen)
        if fault is Fault.DUPLICATE:
            twin = threading.Thread(target=self._exchange, args=(whole, seen), daemon=True)
            twin.start()
            reply = self._exchange(whole, seen)
            twin.join(UPSTREAM_TIMEOUT_S)
        else:
            reply = self._exchange(whole, seen)
        if fault is Fault.HOLD_REPLY:
            self._hold()
        if fault in (Fault.DROP_REPLY, Fault.HOLD_REPLY):
            return False
        if reply is None:
            _reset(client)  # the server is gone: the client sees its connection reset
            return False
        return self._relay(client, reply, seen)

    def _relay(self, client: socket.socket, reply: Message, seen: Seen) -> bool:
        try:
            client.sendall(reply.head + reply.body)
        except OSError:
            return False
        seen.relayed = True
        closing = (reply.header("connection") or "").lower() == "close"
        return not closing

    def _exchange(self, data: bytes, seen: Seen) -> Message | None:
        """Send a whole request upstream and read the reply; None when the server is gone."""
        try:
            with self._upstream() as up:
                up.sendall(data)
                return _read_reply(up, seen)
        except OSError:
            return None

    def _upstream(self) -> _Upstream:
        return _Upstream(self)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()


class _Upstream:
    """A fresh connection to the server, tracked so ``close()`` can cut it."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._sock: socket.socket | None = None

    def __enter__(self) -> socket.socket:
        sock = socket.create_connection(self._proxy.upstream, timeout=UPSTREAM_TIMEOUT_S)
        with self._proxy._lock:
            self._proxy._sockets.add(sock)
        self._sock = sock
        return sock

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._proxy._forget(self._sock)


def _read_reply(up: socket.socket, seen: Seen) -> Message | None:
    try:
        reply = _Reader(up).message(reply=True)
    except OSError:
        return None
    if reply is not None:
        seen.replies.append(reply)
    return reply


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER on, zero seconds) instead of an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
