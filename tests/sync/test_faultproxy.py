"""The fault proxy itself, against a small echo server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.limits import PATIENCE_S
from tests.sync.faultproxy import Fault, FaultProxy
from tests.sync.stream_helpers import serving

BODY = b"x" * 5000


class Echo:
    """An upstream that counts the whole requests it read and the ones cut short."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.whole: list[int] = []  # body lengths of requests read to the end
        self.cut = 0  # requests whose client went away inside the body
        self.arrived = threading.Event()

    async def echo(self, request: Request) -> JSONResponse:
        """Answer with how many whole requests came so far and this one's length."""
        try:
            body = await request.body()
        except ClientDisconnect:
            self.cut += 1
            self.arrived.set()
            return JSONResponse({}, status_code=400)
        self.whole.append(len(body))
        self.arrived.set()
        return JSONResponse({"count": len(self.whole), "length": len(body)})


@pytest.fixture
def echo() -> Echo:
    """A fresh echo upstream."""
    return Echo()


@pytest.fixture
def proxy(echo: Echo) -> Iterator[FaultProxy]:
    """The proxy in front of the echo server."""
    app = Starlette(routes=[Route("/echo", echo.echo, methods=["POST"])])
    with serving(app) as url:
        address = urlsplit(url)
        assert address.hostname is not None and address.port is not None
        with FaultProxy((address.hostname, address.port)) as opened:
            yield opened


def post(client: httpx.Client) -> httpx.Response:
    return client.post("/echo", content=BODY)


def test_requests_pass_on_one_kept_alive_connection(proxy: FaultProxy, echo: Echo) -> None:
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        replies = [post(client).json() for _ in range(3)]
    assert replies == [{"count": n, "length": len(BODY)} for n in (1, 2, 3)]
    # The proxy marks a reply relayed once sendall returns, which may be after the client
    # has read it (CI saw that): look only when the proxy is done.
    assert proxy.settle()
    assert [(s.number, s.connection, s.fault, s.relayed) for s in proxy.seen] == [
        (n, 1, Fault.PASS, True) for n in (1, 2, 3)
    ]
    assert proxy.seen[0].request_line == "POST /echo HTTP/1.1"


def test_a_reset_forwards_nothing_and_the_next_request_goes_through(
    proxy: FaultProxy, echo: Echo
) -> None:
    proxy.program({2: Fault.RESET})
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        assert post(client).json()["count"] == 1
        with pytest.raises(httpx.ReadError):  # ECONNRESET, not an orderly close
            post(client)
        assert post(client).json()["count"] == 2
    assert echo.whole == [len(BODY)] * 2
    assert [s.connection for s in proxy.seen] == [1, 1, 2]


def test_a_cut_delivers_half_a_body_and_no_reply(proxy: FaultProxy, echo: Echo) -> None:
    proxy.program({1: Fault.CUT})
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            post(client)
        assert echo.arrived.wait(5)
        assert (echo.whole, echo.cut) == ([], 1)
        assert post(client).json()["count"] == 1


def test_a_dropped_reply_was_answered_upstream(proxy: FaultProxy, echo: Echo) -> None:
    proxy.program({1: Fault.DROP_REPLY})
    with (
        httpx.Client(base_url=proxy.url, timeout=5) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        post(client)
    assert echo.whole == [len(BODY)]
    (seen,) = proxy.seen
    assert [reply.status for reply in seen.replies] == [200] and not seen.relayed


def test_a_duplicate_reaches_the_server_twice_and_the_client_once(
    proxy: FaultProxy, echo: Echo
) -> None:
    proxy.program({1: Fault.DUPLICATE})
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        assert post(client).json()["count"] in (1, 2)
    assert echo.whole == [len(BODY)] * 2
    assert len(proxy.seen[0].replies) == 2


def test_a_stall_outlasts_the_timeout_and_arrives_late(proxy: FaultProxy, echo: Echo) -> None:
    proxy.program({1: Fault.STALL})
    with httpx.Client(base_url=proxy.url, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        post(client)
    assert proxy.wait_held()
    assert echo.whole == []
    proxy.release()
    assert proxy.settle()
    assert echo.whole == [len(BODY)] and not proxy.seen[0].relayed


def test_holds_stop_at_the_body_after_the_request_and_after_the_reply(
    proxy: FaultProxy, echo: Echo
) -> None:
    proxy.program({1: Fault.HOLD_BODY, 2: Fault.HOLD_SENT, 3: Fault.HOLD_REPLY})
    results: list[object] = []

    def send() -> None:
        with httpx.Client(base_url=proxy.url, timeout=5) as client:
            try:
                results.append(post(client).json())
            except httpx.TransportError as exc:
                results.append(type(exc))

    def held(count: int) -> None:
        thread = threading.Thread(target=send)
        thread.start()
        assert proxy.wait_held(count)
        before = (list(echo.whole), echo.cut)
        proxy.release()
        thread.join(10)
        assert proxy.settle()
        results.append(before)

    held(1)  # half the body: the server has nothing whole; released, it is cut
    deadline = time.monotonic() + PATIENCE_S
    while echo.cut == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    held(2)  # the whole request: the server may have answered; released, the reply is relayed
    held(3)  # the reply read: the server has answered; released, the reply is dropped
    assert results[0:2] == [httpx.RemoteProtocolError, ([], 0)]
    assert results[2] == {"count": 1, "length": len(BODY)}
    assert results[4:6] == [httpx.RemoteProtocolError, ([len(BODY)] * 2, 1)]
    assert (echo.whole, echo.cut) == ([len(BODY)] * 2, 1)


def test_a_server_gone_looks_like_a_reset(proxy: FaultProxy) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        proxy.upstream = ("127.0.0.1", int(unused.getsockname()[1]))
        client = httpx.Client(base_url=proxy.url, timeout=5)
        with client, pytest.raises(httpx.ReadError):
            post(client)
    assert proxy.seen[0].replies == [] and not proxy.seen[0].relayed
