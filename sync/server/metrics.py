"""The centre's health and Prometheus metrics: ``/healthz`` (open) and ``/metrics`` (a token).

What the store holds is read at scrape time by a custom collector (batches and
entries by result from the sync log, the fleet's gates, their backlogs and last
contact), so it is the same whichever worker process answers. What only a
process sees (requests and their latency, lists documents served) is counted in
the process; with ``gate-sync serve --workers N`` the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder and every worker's counts are
summed at scrape time (prometheus-client's multiprocess mode).

``/metrics`` reveals the fleet, so it asks for the admin token or the metrics
token (``--metrics-token-file``) as ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.errors import StoreError
from sync.server.auth import bearer
from sync.store.streams import StreamStore

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: A gate silent for longer than this is stale: as long as a gate's lists may age
#: before the gate itself warns (gate.toml's lists_max_age_hours, 24 by default).
DEFAULT_STALE_AFTER = timedelta(hours=24)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The server's own counters (a registry per app, never the global one)."""

    def __init__(self, store: StreamStore, clock: Clock, stale_after: timedelta) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "gate_sync_request_seconds",
            "Time to answer a request, by route template (not raw path) and method",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "gate_sync_responses",
            "Answers by route template, method and HTTP status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.lists_served = Counter(
            "gate_sync_lists_served",
            "Signed lists documents sent to gates",
            registry=self.registry,
        )
        self.store_collector = StoreCollector(store, clock, stale_after)
        self.registry.register(self.store_collector)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format; workers' counts summed when many."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        registry.register(self.store_collector)
        return generate_latest(registry)


class StoreCollector(Collector):
    """Reads the stream store at scrape time; a store that fails leaves its part out."""

    def __init__(self, store: StreamStore, clock: Clock, stale_after: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._stale_after = stale_after
        self._kind = "postgres" if "postgres" in type(store).__module__ else "sqlite"

    def collect(self) -> Iterator[Metric]:
        """Every store-backed metric, read now."""
        store_up = 1.0
        try:
            yield from self._sync_log()
            yield from self._fleet()
        except StoreError as exc:
            store_up = 0.0
            logger.warning("metrics: the store could not be read: %s", exc)
        kind = GaugeMetricFamily("gate_sync_store_info", "The stream store in use", labels=["kind"])
        kind.add_metric([self._kind], 1.0)
        yield kind
        yield GaugeMetricFamily(
            "gate_sync_store_up", "1 when the store answered this scrape", value=store_up
        )

    def _sync_log(self) -> Iterator[Metric]:
        batches = CounterMetricFamily(
            "gate_sync_batches", "Batches answered, by result (the sync log)", labels=["result"]
        )
        sent = CounterMetricFamily(
            "gate_sync_entries_received",
            "Entries the batches carried, by the batch's result",
            labels=["result"],
        )
        stored = CounterMetricFamily(
            "gate_sync_entries_stored", "Entries newly stored (first time seen)"
        )
        newly = 0
        for total in self._store.sync_totals():
            batches.add_metric([total.result], total.batches)
            sent.add_metric([total.result], total.entries_sent)
            newly += total.entries_stored
        stored.add_metric([], newly)
        yield from (batches, sent, stored)

    def _fleet(self) -> Iterator[Metric]:
        now = self._clock()
        horizon = now - self._stale_after
        gates = self._store.gates()
        enrolled = [g for g in gates if g.enrolled_at is not None]
        stale = [g for g in enrolled if g.last_seen is None or g.last_seen < horizon]
        yield GaugeMetricFamily(
            "gate_sync_gates_known", "Gates with a code or enrolled", len(gates)
        )
        yield GaugeMetricFamily("gate_sync_gates_enrolled", "Gates enrolled", len(enrolled))
        yield GaugeMetricFamily(
            "gate_sync_gates_stale",
            f"Enrolled gates not heard from for {self._stale_after.total_seconds():g} s or never",
            len(stale),
        )
        backlog = GaugeMetricFamily(
            "gate_sync_gate_backlog_entries",
            "Entries the gate said it still had to send, at its last batch",
            labels=["gate"],
        )
        seen = GaugeMetricFamily(
            "gate_sync_gate_last_seen_timestamp_seconds",
            "When the gate last uploaded (Unix time)",
            labels=["gate"],
        )
        offset = GaugeMetricFamily(
            "gate_sync_gate_clock_offset_seconds",
            "The gate's clock minus the centre's, at its last batch",
            labels=["gate"],
        )
        for gate in enrolled:
            if gate.last_backlog is not None:
                backlog.add_metric([gate.gate_id], gate.last_backlog)
            if gate.last_seen is not None:
                seen.add_metric([gate.gate_id], gate.last_seen.timestamp())
            if gate.last_clock_offset_ms is not None:
                offset.add_metric([gate.gate_id], gate.last_clock_offset_ms / 1000)
        yield from (backlog, seen, offset)


class RequestTimer:
    """ASGI middleware timing each HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request; the route is known once the router has matched it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or _unmatched(scope)
            method = str(scope.get("method", ""))
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, method).observe(elapsed)
            self.metrics.responses.labels(route, method, str(status)).inc()


def _unmatched(scope: Scope) -> str:
    # A raw path would make a label per gate or per typo: only the static mounts are named.
    path = str(scope.get("path", ""))
    return "/admin/static" if path.startswith("/admin/") else "other"


def install(
    app: FastAPI,
    store: StreamStore,
    *,
    clock: Clock,
    tokens: tuple[str, ...],
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> ServerMetrics:
    """Add ``/healthz``, ``/metrics`` and the request timer to the server's app."""
    metrics = ServerMetrics(store, clock, stale_after)
    app.add_middleware(RequestTimer, metrics=metrics)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            store.ping()
        except StoreError as exc:
            logger.error("health: the store does not answer: %s", exc)
            body: dict[str, Any] = {"status": "failing", "code": "store_unavailable"}
            return JSONResponse(body, status_code=503, headers={"Cache-Control": "no-store"})
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        given = bearer(request.headers.get("authorization"))
        if given is None or not any(
            hmac.compare_digest(given.encode(), t.encode()) for t in tokens
        ):
            return JSONResponse(
                {"error": "unauthorized", "detail": "the admin or metrics token is needed"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        data = await run_in_threadpool(metrics.exposition)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return metrics
