"""Counts over the entries for the console's status: a day's passages, refusals and alerts.

Read-only queries over covering indexes (migration ``0005_entry_counts``), so a count
reads index pages only and stays quick on a ledger of a hundred thousand entries.
Times are the entries' wall times (UTC): an entry written while the clock was wrong
counts where its clock put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlite_utils import Database

from gate_agent.ledger.db import first_row
from gate_agent.ledger.records import utc_iso


@dataclass(frozen=True)
class DaySummary:
    """What happened at this gate between two times, counted from its ledger."""

    entries_in: int  # allowed passages coming in (manual releases included)
    entries_out: int  # allowed passages going out
    refusals_by_reason: dict[str, int] = field(default_factory=dict)  # outcome deny
    rechecks: int = 0  # outcome recheck
    fevers: int = 0  # reason "fever"
    alerts: int = 0  # entries that raised an alert
    manual: int = 0  # entries with a guard (releases, overrides, entries made by hand)


# Fixed statements over the covering indexes of migration 0005; INDEXED BY makes a
# missing index an error instead of a quiet full scan. SUM over no rows is NULL.
COUNTS_SQL = """
SELECT
    COALESCE(SUM(outcome = 'allow' AND direction = 'in'), 0) AS entries_in,
    COALESCE(SUM(outcome = 'allow' AND direction = 'out'), 0) AS entries_out,
    COALESCE(SUM(outcome = 'recheck'), 0) AS rechecks,
    COALESCE(SUM(reason = 'fever'), 0) AS fevers,
    COALESCE(SUM(alert), 0) AS alerts,
    COALESCE(SUM(guard IS NOT NULL), 0) AS manual
FROM entries INDEXED BY entries_counts_by_time
WHERE wall_time >= :since AND wall_time < :until
"""

REFUSALS_SQL = """
SELECT reason, COUNT(*) AS n
FROM entries INDEXED BY entries_counts_by_time
WHERE wall_time >= :since AND wall_time < :until AND outcome = 'deny'
GROUP BY reason
ORDER BY reason
"""

# SQLite takes the bare column (direction) from the row that holds MAX(seq).
INSIDE_SQL = """
SELECT COUNT(*) AS n FROM (
    SELECT direction, MAX(seq)
    FROM entries INDEXED BY entries_allowed_by_time
    WHERE outcome = 'allow' AND pass_id IS NOT NULL AND wall_time >= :since
    GROUP BY pass_id
)
WHERE direction = 'in'
"""


def day_summary(db: Database, since: datetime, until: datetime) -> DaySummary:
    """Count the entries whose wall time is at or after ``since`` and before ``until``."""
    params = {"since": aware_iso(since, "since"), "until": aware_iso(until, "until")}
    if params["until"] < params["since"]:
        raise ValueError("until must not be before since")
    totals = first_row(db, COUNTS_SQL, params) or {}
    counts = {name: int(value or 0) for name, value in totals.items()}
    refusals = {row["reason"]: int(row["n"]) for row in db.query(REFUSALS_SQL, params)}
    return DaySummary(
        entries_in=counts.get("entries_in", 0),
        entries_out=counts.get("entries_out", 0),
        refusals_by_reason=refusals,
        rechecks=counts.get("rechecks", 0),
        fevers=counts.get("fevers", 0),
        alerts=counts.get("alerts", 0),
        manual=counts.get("manual", 0),
    )


def people_inside_estimate(db: Database, since: datetime) -> int:
    """How many passes' last allowed passage at or after ``since`` went in.

    An estimate from this gate's ledger alone: someone who came in here and left by
    another gate still counts as inside, someone who left here and came back by another
    gate does not, and people who never scanned (or scanned before ``since``) are not
    counted at all. Manual releases carry no pass and are left out. "Last" is the entry
    written last, whatever its clock says.
    """
    row = first_row(db, INSIDE_SQL, {"since": aware_iso(since, "since")})
    return 0 if row is None else int(row["n"])


def aware_iso(moment: datetime, name: str) -> str:
    """A timezone-aware time as the ledger stores it; ``ValueError`` for a naive one."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return utc_iso(moment)
