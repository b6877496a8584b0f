"""An idle gate's connection stays open between its polls (`gate-sync serve`).

Found by the 500-gate soak (bench/soak_centre.py): one lists poll in 5,000 was answered
by a dropped connection. uvicorn closes an idle connection after 5 s by default, the
same as the uploader's poll, so a request could meet the close on the wire. The server
now keeps idle connections for longer than a gate's lists poll.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.centre import serving
from sync.cli_serve import KEEP_ALIVE_S


def get(sock: socket.socket, host: str) -> bytes:
    """One HTTP/1.1 request on a kept-alive connection; the whole response."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_an_idle_connection_outlives_the_upload_poll(tmp_path: Path) -> None:
    assert KEEP_ALIVE_S > 60  # longer than the uploader's lists poll
    with serving(tmp_path, None) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            assert get(sock, parts.netloc).startswith(b"HTTP/1.1 200")
            time.sleep(6)  # past uvicorn's default of 5 s
            readable, _, _ = select.select([sock], [], [], 0)
            assert readable == [], "the server closed the idle connection"
            assert get(sock, parts.netloc).startswith(b"HTTP/1.1 200")  # the same one
