"""Live events from the station to whoever watches: the console, the demo's printer, tests.

Publishing never blocks the scan loop: each subscriber has a bounded queue, and a
subscriber that falls behind loses its oldest events, not the station's time.
A page opened late asks for ``recent()``.
"""

from __future__ import annotations

import collections
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_HISTORY = 20
DEFAULT_QUEUE = 256


@dataclass(frozen=True)
class GateEvent:
    """One thing that happened at the gate: a decision, a device state, a manual release."""

    kind: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """A subscriber's queue; iterate with ``get``, end with ``close``."""

    def __init__(self, bus: EventBus, size: int) -> None:
        self._bus = bus
        self._queue: queue.Queue[GateEvent] = queue.Queue(maxsize=size)
        self.dropped = 0

    def get(self, timeout: float | None = None) -> GateEvent | None:
        """The next event, or None when none came within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _offer(self, event: GateEvent) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self) -> None:
        """Stop receiving events."""
        self._bus._unsubscribe(self)


class EventBus:
    """Fan-out of gate events to subscribers, with the last few kept for late joiners."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._recent: collections.deque[GateEvent] = collections.deque(maxlen=history)

    def publish(self, event: GateEvent) -> None:
        """Send an event to every subscriber; never blocks."""
        with self._lock:
            self._recent.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber._offer(event)

    def subscribe(self, size: int = DEFAULT_QUEUE) -> Subscription:
        """A new subscription receiving every event published from now on."""
        subscription = Subscription(self, size)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    def recent(self, kind: str | None = None) -> list[GateEvent]:
        """The last events kept, oldest first, optionally of one kind."""
        with self._lock:
            return [e for e in self._recent if kind is None or e.kind == kind]

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)
