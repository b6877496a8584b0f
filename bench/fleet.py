"""Many gates posting at the same moment, from one asyncio loop: the fleet ``bench.sync`` times.

Every request is encoded before any clock starts and written on one kept-alive
connection per gate, so the client spends next to nothing of the cores the server needs.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from dataclasses import dataclass
from typing import Any

from bench.centre import NOW
from sync.protocol import Batch


@dataclass
class FleetGate:
    gate_id: str
    stream: str
    token: str
    entries: list[dict[str, Any]]


def fleet_requests(gates: list[FleetGate], host: str, rounds: int, size: int) -> list[list[bytes]]:
    """Per round, every gate's whole HTTP/1.1 request, encoded before any clock starts."""
    made = []
    for r in range(rounds):
        first = 1 + r * size
        requests = []
        for gate in gates:
            batch = Batch(
                first_seq=first,
                entries=gate.entries[first - 1 : first - 1 + size],
                sent_at=NOW,
                sent_monotonic_ns=0,
                boot_id="bench",
                clock_synced=True,
                backlog=len(gate.entries) - first + 1,
            )
            body = gzip.compress(batch.model_dump_json().encode(), mtime=0)
            head = (
                f"POST /v1/gates/{gate.gate_id}/streams/{gate.stream}/batches HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {gate.token}\r\n"
                "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            requests.append(head.encode("ascii") + body)
        made.append(requests)
    return made


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[float, int]:
    """Send one request on a kept-alive connection; (ms until the whole reply, status)."""
    start = time.perf_counter()
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    status = int(status_line.split()[1]) if status_line else 0
    return (time.perf_counter() - start) * 1000, status


def fleet(gates: list[FleetGate], url: str, rounds: int, size: int) -> list[tuple[float, int]]:
    """Every gate posts a batch at the same moment, ``rounds`` times; (ms, status) each.

    The load comes from one asyncio loop writing pre-encoded requests on one kept-alive
    connection per gate, so the client spends next to nothing of the two cores the
    server needs (an HTTP client library here took three times the server's CPU).
    """
    host, port = url.removeprefix("http://").split(":")
    planned = fleet_requests(gates, f"{host}:{port}", rounds, size)

    async def run() -> list[tuple[float, int]]:
        connections = [await asyncio.open_connection(host, int(port)) for _ in gates]
        results: list[tuple[float, int]] = []
        try:
            for requests in planned:
                results += await asyncio.gather(
                    *(
                        _exchange(reader, writer, request)
                        for (reader, writer), request in zip(connections, requests, strict=True)
                    ),
                    return_exceptions=False,
                )
        finally:
            for _, writer in connections:
                writer.close()
        return results

    return asyncio.run(run())
