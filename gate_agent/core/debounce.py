"""One scan per pass shown: the same text seen again within a window is the same scan.

A camera reads a pass held up to it ten or thirty times a second, for as long as it is
held there. ``Debouncer.admit`` turns those sightings into scans:

- the first sighting of a text is a scan;
- a sighting within ``window_ns`` of the text's *last* sighting is not: the window
  restarts at every sighting, so a pass held in view for ten seconds is one scan, and it
  must be out of view for a whole window before showing it again counts again;
- texts are tracked independently, so a second pass shown meanwhile is its own scan.

Why "since last sighting" and not "since first sighting": counting from the first
sighting would turn a phone held up for 10 s into four scans with a 3 s window (four
entries in the ledger, four beeps, a relay that opens again while the person is still
standing there). Counting from the last sighting ties a scan to one showing of the pass,
which is what the guard and the resident mean by "a scan". The cost is that a resident
who never takes the pass away is never scanned twice, which is the point.

Time is an argument (monotonic nanoseconds, e.g. a frame's capture time) and must not
go backwards. Memory stays bounded: a text not seen for a whole window is forgotten,
so the table holds at most the texts seen within the last window.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DEFAULT_WINDOW_NS", "Debouncer"]

DEFAULT_WINDOW_NS = 3_000_000_000
"""Three seconds: longer than a hand wobbling a pass out of view, shorter than a queue."""


class Debouncer:
    """Admit a text once per showing: again only after it was out of sight for a window."""

    def __init__(self, window_ns: int = DEFAULT_WINDOW_NS) -> None:
        """Debounce with `window_ns` nanoseconds (positive) of absence needed to count again."""
        if isinstance(window_ns, bool) or not isinstance(window_ns, int) or window_ns <= 0:
            raise ValueError(f"window_ns must be a positive int, got {window_ns!r}")
        self._window_ns = window_ns
        # Text -> its last sighting, oldest first: times never go backwards, so moving a
        # text to the end at each sighting keeps the order, and expiry pops from the front.
        self._last_seen: OrderedDict[str, int] = OrderedDict()
        self._now_ns: int | None = None

    @property
    def window_ns(self) -> int:
        """The absence, in nanoseconds, after which a text counts as a new scan."""
        return self._window_ns

    def __len__(self) -> int:
        """The number of texts still remembered (each seen within the last window)."""
        return len(self._last_seen)

    def __repr__(self) -> str:
        """Show the window and how many texts are remembered."""
        return f"Debouncer(window_ns={self._window_ns}, tracking={len(self._last_seen)})"

    def admit(self, text: str, now_ns: int) -> bool:
        """Record a sighting of `text` at `now_ns`; True when it is a new scan."""
        if self._now_ns is not None and now_ns < self._now_ns:
            raise ValueError(
                f"time went backwards: {now_ns} after {self._now_ns}; pass a monotonic clock"
            )
        self._now_ns = now_ns
        self._expire(now_ns)
        # After expiry, any text still remembered was seen less than a window ago.
        repeated = text in self._last_seen
        self._last_seen[text] = now_ns
        self._last_seen.move_to_end(text)
        return not repeated

    def _expire(self, now_ns: int) -> None:
        """Forget every text whose last sighting is a whole window or more before `now_ns`."""
        while self._last_seen:
            oldest, seen_ns = next(iter(self._last_seen.items()))
            if now_ns - seen_ns < self._window_ns:
                break
            del self._last_seen[oldest]
