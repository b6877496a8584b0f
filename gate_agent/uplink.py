"""The gate's uploader: contiguous batches of ledger entries to the centre, exactly once.

The centre acknowledges cumulatively ("everything through N is stored") and answers a
repeat with the same acknowledgement, so the gate may always send again what it is not
sure of. The cursor lives in the ledger (``Ledger.sync``), so a restart resumes where
the last acknowledgement left off. The uploader runs in a thread of its own and reads
the ledger in short reads under its lock: scanning never waits for the network.

Replies: 200 ``Ack`` moves the cursor; 409 ``StreamConflict`` takes the centre's cursor
(a gap, or a centre restored from backup) or, for different content at a stored number,
raises the alarm; 413 halves the batch; 401/403 raise the alarm (re-enrol the gate);
network errors, 429 and 5xx retry after full-jitter exponential backoff, honouring
``Retry-After``. An alarm stops uploads until an operator clears it.

The same thread brings the centre's lists down (``refresh_lists``, through
``gate_agent.downlink.ListsDownlink``): when an acknowledgement names a list version
newer than the gate's, and every ``lists_poll_s`` otherwise.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from gate_agent.clock import Clock
from gate_agent.downlink import ListsDownlink
from gate_agent.errors import GateError
from gate_agent.ledger import Ledger
from gate_agent.ledger.sync_state import SyncStatus
from gate_agent.ledger.wire import wire_entry
from gate_agent.uplink_http import (
    batch_path,
    full_jitter,
    gzip_json,
    make_client,
    retry_after_seconds,
)
from sync.protocol import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Ack, Batch, StreamConflict

logger = logging.getLogger(__name__)

#: A batch prepared in advance is sent only if it was made this recently.
PREFETCH_FRESH_S = 2.0

Sleep = Callable[[float], object]


class Step(enum.Enum):
    """What one upload step came to."""

    SENT = "sent"  # the cursor moved (or the batch shrank): go on
    IDLE = "idle"  # nothing left to send
    RETRY = "retry"  # a transient failure: wait, then go on
    ALARM = "alarm"  # uploads stopped until an operator clears the alarm


@dataclass(frozen=True)
class UplinkSettings:
    """How the uploader talks to the centre."""

    timeout_s: float = 30.0
    poll_s: float = 5.0  # how often a quiet gate looks for new entries
    lists_poll_s: float = 60.0  # how often a gate asks for newer lists unprompted
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    max_entries: int = MAX_BATCH_ENTRIES
    max_bytes: int = MAX_BATCH_BYTES


@dataclass(frozen=True)
class UplinkStatus:
    """What the console's status panel shows about sync."""

    configured: bool
    running: bool
    acked_through: int
    backlog: int
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: tuple[str, str] | None  # (code, text)
    alarm: tuple[str, str] | None  # (code, text)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "configured": self.configured,
            "running": self.running,
            "acked_through": self.acked_through,
            "backlog": self.backlog,
            "last_success": _iso(self.last_success_at),
            "last_attempt": _iso(self.last_attempt_at),
            "last_error": None
            if self.last_error is None
            else dict(zip(("code", "text"), self.last_error, strict=True)),
            "alarm": None
            if self.alarm is None
            else dict(zip(("code", "text"), self.alarm, strict=True)),
        }


class Uploader:
    """Uploads the ledger's unacknowledged entries to the centre, in its own thread."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        base_url: str,
        gate_id: str,
        token: str,
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
        settings: UplinkSettings | None = None,
        sleep: Sleep | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """Bind to an open ledger; ``sleep`` and ``rand`` are injectable for tests.

        ``sleep(seconds)`` waits before a retry; by default it waits on the stop event,
        so ``stop()`` cuts a backoff short.
        """
        self._ledger = ledger
        self._gate_id = gate_id
        self._token = token
        self._clock = clock
        self._settings = settings or UplinkSettings()
        if not 1 <= self._settings.max_entries <= MAX_BATCH_ENTRIES:
            raise ValueError(f"max_entries must be between 1 and {MAX_BATCH_ENTRIES}")
        self._client = make_client(
            base_url, transport=transport, timeout_s=self._settings.timeout_s
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sleep: Sleep = sleep or self._stop.wait
        self._rand = rand
        self._batch_limit = self._settings.max_entries
        self._failures = 0
        self._thread: threading.Thread | None = None
        self._downlink = ListsDownlink(
            ledger,
            self._client,
            gate_id=gate_id,
            token=token,
            clock=clock,
            poll_s=self._settings.lists_poll_s,
            alarm=self._alarm,
        )
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-encode")
        self._prefetch: tuple[int, int, int, Future[tuple[bytes | None, int] | None]] | None = None

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Start uploading in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the uploader is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for new entries now rather than at the next poll (after an append)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread, cutting a backoff short; an upload in flight finishes first."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("uplink thread did not stop within %.1f s", timeout_s)

    def close(self) -> None:
        """Stop and release the HTTP client."""
        self.stop()
        self._drop_prefetch()
        self._encoder.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> Uploader:
        """Use as a context manager that closes the uploader."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the uploader."""
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
                if self.lists_due():
                    self.refresh_lists()
            except GateError:
                # A ledger that cannot be read now: log it, and look again at the next poll.
                logger.exception("uplink: upload round failed")
            self._wake.wait(self._settings.poll_s)
            self._wake.clear()

    # -- the lists coming down -----------------------------------------------------------------

    def lists_due(self) -> bool:
        """Whether to ask for lists now: the centre said it has newer, or it is time."""
        return self._downlink.due()

    def refresh_lists(self) -> list[str] | None:
        """Fetch, verify and apply the lists newer than the gate's; the names applied
        (None when nothing could be applied: see ``ListsDownlink.refresh``)."""
        return self._downlink.refresh()

    # -- uploading ---------------------------------------------------------------------------

    def status(self) -> UplinkStatus:
        """Backlog, cursor, last success, last error and alarm (reads the ledger briefly)."""
        state: SyncStatus = self._ledger.sync.status()
        return UplinkStatus(
            configured=True,
            running=self._thread is not None and self._thread.is_alive(),
            acked_through=state.acked_through,
            backlog=state.backlog,
            last_success_at=state.last_success_at,
            last_attempt_at=state.last_attempt_at,
            last_error=_pair(state.last_error_code, state.last_error_text),
            alarm=_pair(state.alarm_code, state.alarm_text),
        )

    def drain(self) -> Step:
        """Upload until nothing is left (IDLE), an alarm stops it (ALARM) or ``stop()``.

        Transient failures are retried after the backoff, sleeping through ``sleep``.
        """
        while not self._stop.is_set():
            step, delay = self.step()
            if step in (Step.IDLE, Step.ALARM):
                return step
            if step is Step.RETRY:
                logger.info("uplink: retrying in %.1f s", delay)
                if self._sleep(delay) is True:  # the stop event's wait: stopped
                    break
        return Step.RETRY

    def step(self) -> tuple[Step, float]:
        """Send at most one batch and act on the reply; for RETRY also the delay in seconds."""
        sync = self._ledger.sync
        status = sync.status()
        if status.alarm_code is not None:
            self._drop_prefetch()
            return Step.ALARM, 0.0
        first = status.acked_through + 1
        prepared = self._take_prefetch(first)
        if prepared is not None:
            body, count = prepared
        else:
            rows = sync.unacked(self._batch_limit)
            if not rows:
                self._failures = 0
                return Step.IDLE, 0.0
            first = rows[0]["seq"]
            body, count = self._encode(rows, status.backlog)
        if body is None:
            return self._alarm(
                "entry_too_large",
                f"entry {first} alone is over {self._settings.max_bytes} bytes compressed",
            )
        # While this batch travels and the centre stores it, the next one is read and
        # encoded (a backlog drains about a fifth faster); used only if it still fits.
        self._start_prefetch(first + count)
        now = self._clock.now()
        sync.record_attempt(now)
        path = batch_path(self._gate_id, self._ledger.stream_id)
        try:
            response = self._client.post(
                path,
                content=body,
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
            )
        except httpx.TransportError as exc:
            return self._retry("network", f"{type(exc).__name__}: {exc}", None)
        return self._on_reply(response, first, count)

    # -- the next batch, prepared while one is in flight ---------------------------------------

    def _start_prefetch(self, first: int) -> None:
        self._drop_prefetch()
        limit = self._batch_limit
        started_ns = self._clock.monotonic_ns()
        future = self._encoder.submit(self._prepare, first, limit)
        self._prefetch = (first, limit, started_ns, future)

    def _prepare(self, first: int, limit: int) -> tuple[bytes | None, int] | None:
        rows = self._ledger.sync.rows_from(first, limit)
        if not rows:
            return None
        backlog = self._ledger.last_seq() - first + 1
        return self._encode(rows, backlog)

    def _take_prefetch(self, first: int) -> tuple[bytes | None, int] | None:
        """The batch prepared for ``first``, if it still fits; else None (encode afresh)."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is None:
            return None
        wanted, limit, started_ns, future = prefetch
        fresh_s = (self._clock.monotonic_ns() - started_ns) / 1e9
        # Its sent_at and monotonic time were read when it was encoded: only a body made
        # moments ago stands for "now" (the centre corrects unsynced clocks with it).
        if wanted != first or limit != self._batch_limit or fresh_s > PREFETCH_FRESH_S:
            future.cancel()
            return None
        try:
            return future.result()
        except GateError:
            logger.warning("uplink: preparing the next batch failed; reading it again")
            return None

    def _drop_prefetch(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            prefetch[3].cancel()

    def _encode(self, rows: Sequence[Mapping[str, Any]], backlog: int) -> tuple[bytes | None, int]:
        """The gzip body of the longest prefix of ``rows`` within the byte limit, and its size."""
        limit = self._settings.max_bytes
        entries = [wire_entry(row) for row in rows]
        count = len(entries)
        while True:
            body = gzip_json(self._batch(entries[:count], backlog).model_dump_json())
            if len(body) <= limit:
                return body, count
            if count == 1:
                return None, 0
            # Shrink in proportion to the excess, at least by one entry.
            count = max(1, min(count - 1, count * limit // len(body)))

    def _batch(self, entries: list[dict[str, Any]], backlog: int) -> Batch:
        clock = self._clock
        return Batch(
            first_seq=entries[0]["seq"],
            entries=entries,
            sent_at=clock.now(),
            sent_monotonic_ns=clock.monotonic_ns(),
            boot_id=clock.boot_id,
            clock_synced=clock.synced(),
            backlog=backlog,
            list_versions=self._ledger.state.list_versions(),
        )

    def _on_reply(self, response: httpx.Response, first: int, count: int) -> tuple[Step, float]:
        code = response.status_code
        if code == httpx.codes.OK:
            try:
                ack = Ack.model_validate_json(response.content)
            except ValidationError:
                return self._retry("bad_reply", "the centre's acknowledgement did not parse", None)
            return self._acked(ack)
        if code == httpx.codes.CONFLICT:
            try:
                conflict = StreamConflict.model_validate_json(response.content)
            except ValidationError:
                return self._retry("bad_reply", "the centre's 409 did not parse", None)
            return self._conflict(conflict, first)
        if code == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
            if count <= 1:
                return self._alarm(
                    "too_large", f"the centre refuses entry {first} alone as too large"
                )
            self._batch_limit = max(1, count // 2)
            logger.warning(
                "uplink: 413 for %d entries; batches now at most %d", count, self._batch_limit
            )
            return Step.SENT, 0.0
        if code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            return self._alarm(
                "unauthorized" if code == httpx.codes.UNAUTHORIZED else "forbidden",
                f"the centre refused the gate's token (HTTP {code}): enrol the gate again",
            )
        hint = retry_after_seconds(response.headers.get("Retry-After"), self._clock.now())
        return self._retry(f"http_{code}", f"HTTP {code}: {response.text[:200]}", hint)

    def _acked(self, ack: Ack) -> tuple[Step, float]:
        # Read now, not before sending: the station may have appended meanwhile.
        last_seq = self._ledger.last_seq()
        if ack.stored_through > last_seq:
            return self._ahead(ack.stored_through, last_seq)
        self._ledger.sync.record_ack(ack.stored_through, self._clock.now(), dict(ack.list_versions))
        self._failures = 0
        if ack.flagged:
            logger.warning("uplink: the centre flagged entries %s as malformed", list(ack.flagged))
        return Step.SENT, 0.0

    def _conflict(self, conflict: StreamConflict, first: int) -> tuple[Step, float]:
        if conflict.error == "content_conflict":
            return self._alarm(
                "content_conflict",
                f"the centre holds different content for entry {conflict.seq}:"
                " the gate's ledger and the centre disagree",
            )
        last_seq = self._ledger.last_seq()
        if conflict.cursor > last_seq:
            return self._ahead(conflict.cursor, last_seq)
        if conflict.cursor == first - 1:
            # A "gap" right where we started is no gap: a confused centre; wait and retry.
            return self._retry("bad_conflict", f"409 gap at cursor {conflict.cursor}", None)
        logger.warning(
            "uplink: centre's cursor is %d; sending from %d", conflict.cursor, conflict.cursor + 1
        )
        self._ledger.sync.set_cursor(conflict.cursor)
        return Step.SENT, 0.0

    def _ahead(self, cursor: int, last_seq: int) -> tuple[Step, float]:
        return self._alarm(
            "centre_ahead",
            f"the centre has stored through {cursor} but this ledger ends at {last_seq}:"
            " was the gate's ledger restored from a backup?",
        )

    def _alarm(self, code: str, text: str) -> tuple[Step, float]:
        self._ledger.sync.raise_alarm(code, text, self._clock.now())
        return Step.ALARM, 0.0

    def _retry(self, code: str, text: str, retry_after_s: float | None) -> tuple[Step, float]:
        s = self._settings
        delay = full_jitter(
            self._failures, base_s=s.backoff_base_s, cap_s=s.backoff_cap_s, rand=self._rand
        )
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self._failures += 1
        logger.warning("uplink: %s (%s)", text, code)
        self._ledger.sync.record_error(code, text, self._clock.now())
        return Step.RETRY, delay


def _pair(code: str | None, text: str | None) -> tuple[str, str] | None:
    return None if code is None or text is None else (code, text)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
