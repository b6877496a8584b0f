"""Looking residents up in the directory the centre sent: by building-unit-room or masked name.

Units are ``building-unit-room`` (``3-2-501``), or fewer parts. A unit query matches
whole parts from the left: ``3`` finds building 3 (``3-2-501``, ``3-1-101``; not
``30-1-101``), ``3-2`` finds unit 2 of building 3, ``3-2-501`` that room only. A guard
may type ``/`` or spaces between the parts; letters match in either case. A query that
cannot be a unit (a fourth part, a part longer than six characters, other characters)
finds no one.

Names are masked at the centre (张三明 → 张*明) and the gate never sees more. A name
query finds the display names that start with the typed text (``张`` finds every
张, ``张*`` the two-character ones, ``张*明`` that masked name), and, when the typed
text carries no ``*``, also the display names equal to the typed text masked the
centre's way: a guard who types the full name 张三明 finds 张*明.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from gate_agent.core.passes import PassFieldError, mask_name
from gate_agent.ledger.db import first_row

MAX_RESULTS = 500

_UNIT_PART = re.compile(r"[0-9A-Za-z]{1,6}")
_UNIT_SEPARATORS = re.compile(r"[-/\s]+")
_MAX_UNIT_PARTS = 3


# One fixed statement: a query left out is NULL and matches every row. The directory
# holds a compound's passes (thousands), so reading it whole is quick; the unit index
# gives the order. "." sorts just after "-", so [u-, u.) holds every unit below u.
_SEARCH = """
SELECT pass_id, kind, household_id, scope, valid_from, valid_until, display_name, unit,
    exit_quota
FROM directory
WHERE (:unit IS NULL OR unit = :unit OR (unit >= :unit || '-' AND unit < :unit || '.'))
    AND (:name IS NULL
        OR substr(display_name, 1, length(:name)) = :name COLLATE NOCASE
        OR display_name = :masked COLLATE NOCASE)
ORDER BY unit, display_name, pass_id
LIMIT :limit
"""

_GET = """
SELECT pass_id, kind, household_id, scope, valid_from, valid_until, display_name, unit,
    exit_quota
FROM directory
WHERE pass_id = ?
"""


def search(db: Database, *, unit: str | None, name: str | None, limit: int) -> list[dict[str, Any]]:
    """Directory items matching every query given (none given: all), by unit and name."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise ValueError(f"limit must be an int between 1 and {MAX_RESULTS}, got {limit!r}")
    unit_text = _query_text(unit, "unit")
    parts = normalise_unit(unit_text) if unit_text else None
    if unit_text and parts is None:
        return []
    name_text = _query_text(name, "name") or None
    params = {
        "unit": parts,
        "name": name_text,
        "masked": None if name_text is None else _masked(name_text),
        "limit": limit,
    }
    return [item_from_row(row) for row in db.query(_SEARCH, params)]


def get(db: Database, pass_id: str) -> dict[str, Any] | None:
    """The directory item of one pass, or None."""
    if not isinstance(pass_id, str):
        raise ValueError(f"pass_id must be a string, got {type(pass_id).__name__}")
    row = first_row(db, _GET, (pass_id,))
    return None if row is None else item_from_row(row)


def count(db: Database) -> int:
    """How many items the directory holds."""
    row = first_row(db, "SELECT COUNT(*) AS n FROM directory")
    return 0 if row is None else int(row["n"])


def normalise_unit(text: str) -> str | None:
    """A typed unit as stored (parts joined by ``-``), or None if it cannot be a unit."""
    parts = [part for part in _UNIT_SEPARATORS.split(text.strip()) if part]
    if not parts or len(parts) > _MAX_UNIT_PARTS:
        return None
    if not all(_UNIT_PART.fullmatch(part) for part in parts):
        return None
    return "-".join(parts)


def item_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored directory row as the item the readers return, times as aware datetimes."""
    item = dict(row)
    item["valid_from"] = datetime.fromisoformat(row["valid_from"])
    item["valid_until"] = datetime.fromisoformat(row["valid_until"])
    return item


def _query_text(value: str | None, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string or None, got {type(value).__name__}")
    return value.strip()


def _masked(text: str) -> str | None:
    # Only a name typed in full is masked: a typed "*" means it is masked already,
    # and a single character would mask to a bare "*".
    if "*" in text or len(text) < 2:
        return None
    try:
        return mask_name(text)
    except PassFieldError:
        return None
