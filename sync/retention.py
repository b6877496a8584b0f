"""The centre's retention purge: personal data blanked once its period is over.

What goes: the ``personal`` data and ``personal_salt`` inside the stored content of
entries whose time (corrected, else the gate's wall time) is older than the period,
on SQLite or PostgreSQL alike; and the visitor's name, phone and plate of visitor
requests that were over before it (approved visits that ended, requests rejected or
cancelled). What stays: every other column, ``personal_digest`` and the hashes, so the
chain checks as before and the ledgers export shows "已清除 purged".

``gate-sync purge`` runs it once; ``gate-sync serve`` runs it at start and hourly
(``--retention-days``, env ``GATE_SYNC_RETENTION_DAYS``, 0 keeps everything). Each purge
that blanked anything is recorded in the admin audit trail. Counts are logged, never data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.errors import SyncError
from sync.store.central import IssuerStore
from sync.store.streams import StreamStore

log = logging.getLogger(__name__)

DEFAULT_DAYS = 28
MAX_DAYS = 3650
ENV_DAYS = "GATE_SYNC_RETENTION_DAYS"
PURGE_EVERY_S = 3600.0
#: Who the audit trail names for a purge the server ran by itself.
SERVER = "gate-sync serve"


@dataclass(frozen=True)
class CentrePurge:
    """What one purge blanked (or, dry, would blank)."""

    entries: int
    visitor_requests: int
    before: datetime
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {**asdict(self), "before": self.before.isoformat()}


def check_days(days: int, *, keep_allowed: bool) -> int:
    """``days`` if it is a period the centre takes (0 = keep, where allowed), else ValueError."""
    low = 0 if keep_allowed else 1
    if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= MAX_DAYS:
        raise ValueError(f"retention days must be between {low} and {MAX_DAYS}, got {days!r}")
    return days


def purge(
    streams: StreamStore,
    store: IssuerStore,
    *,
    now: datetime,
    days: int,
    by: str,
    dry_run: bool = False,
) -> CentrePurge:
    """Blank the personal data older than ``days`` on both stores; audited when any went."""
    before = now - timedelta(days=check_days(days, keep_allowed=False))
    entries = streams.purge_personal(before, dry_run=dry_run)
    visitors = store.purge_visitor_personal(before, dry_run=dry_run)
    done = CentrePurge(entries, visitors, before, dry_run)
    if not dry_run and (entries or visitors):
        store.add_audit(
            now, by, "retention.purge", f"older than {days} days",
            f"{entries} entries, {visitors} visitor requests (before {before.isoformat()})",
        )  # fmt: skip
    log.info(
        "retention purge%s: personal data of %d entries and %d visitor requests before %s",
        " (dry run)" if dry_run else "",
        entries,
        visitors,
        before.isoformat(timespec="seconds"),
    )
    return done


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Purger:
    """The server's purge thread: at start, then every ``every_s`` seconds."""

    def __init__(
        self,
        streams: StreamStore,
        store: IssuerStore,
        *,
        days: int,
        clock: Callable[[], datetime] = _utc_now,
        every_s: float = PURGE_EVERY_S,
    ) -> None:
        """Bind to the stores; ``days`` at least 1 (0, keep everything, runs no purger)."""
        self.streams = streams
        self.store = store
        self.days = check_days(days, keep_allowed=False)
        self.clock = clock
        self.every_s = every_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> CentrePurge | None:
        """One purge; None when it failed (logged, tried again next time)."""
        try:
            done = purge(self.streams, self.store, now=self.clock(), days=self.days, by=SERVER)
        except (SyncError, OSError) as exc:
            log.error("retention purge failed, tried again later: %s", exc)
            return None
        finally:
            self.runs += 1
        return done

    def start(self) -> None:
        """Run on a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a purge under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.every_s)
