"""The gate's local state: the centre's lists, the resident directory, the gate mode.

Each list arrives with a version, whole (a snapshot) or as a delta from the version the
gate holds; it changes the stored list only when its version is higher, a delta only
when it starts from the stored version, and several lists arriving together are applied
in one transaction. The directory is such a list. The centre keys that must sign the
lists are pinned here too.

The gate mode is the latest instruction the gate received: an admin's switch at the
gate, or a change of the mode in the centre's settings, each kept with who made it and
when. An admin's switch holds until the centre's mode changes, and the other way round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gate_agent.core.reasons import GateMode
from gate_agent.ledger import directory
from gate_agent.ledger.db import Store, first_row
from gate_agent.ledger.items import COMPOUND_LISTS, DIRECTORY, LIST_NAMES, TABLES, prepare
from gate_agent.ledger.records import utc_iso
from gate_agent.ledger.summary import aware_iso

logger = logging.getLogger(__name__)

__all__ = ["LIST_NAMES", "DirectoryStatus", "GateState", "ListChange"]

#: Who a mode change from the centre is recorded as, in the mode history.
CENTRE = "centre"
#: Lists that may arrive as deltas, and how one of their items (by pass id) is dropped.
DELTA_DELETES = {
    "revocations": "DELETE FROM revocations WHERE pass_id = ?",
    DIRECTORY: "DELETE FROM directory WHERE pass_id = ?",
}


@dataclass(frozen=True)
class ListChange:
    """One list as it arrived: a snapshot (``base_version`` None) or a delta.

    A snapshot's ``items`` are every item; a delta's are the items added or replaced
    (matched by pass id) and ``removed`` the pass ids to drop.
    """

    name: str
    version: int
    items: Sequence[Mapping[str, object]]
    base_version: int | None = None
    removed: Sequence[str] = ()


MODES = frozenset(mode.value for mode in GateMode)


def _setting(db: Database, key: str) -> object:
    """A setting from the centre as stored (JSON decoded), None when not set."""
    row = first_row(db, "SELECT value FROM settings WHERE key = ?", (key,))
    return None if row is None else json.loads(row["value"])


MAX_HISTORY = 1000


@dataclass(frozen=True)
class DirectoryStatus:
    """The directory the gate holds: its version (0 never loaded), when it came, its size."""

    version: int
    applied_at: datetime | None
    items: int


class GateState:
    """Reads and versioned replacement of the gate's lists, through the ledger's one writer."""

    def __init__(self, store: Store) -> None:
        """Bind to the ledger's store; get one from ``Ledger.state``."""
        self._store = store

    def list_versions(self) -> dict[str, int]:
        """The stored version of every list in ``LIST_NAMES``, 0 for a list never loaded.

        The directory is reported by ``directory_status``: it steers no decision, so its
        age is no reason to call the gate's lists stale.
        """
        versions = dict.fromkeys(LIST_NAMES, 0)
        with self._store.read() as db:
            for row in db.query("SELECT name, version FROM list_versions"):
                if row["name"] in versions:
                    versions[row["name"]] = row["version"]
        return versions

    def list_applied_at(self) -> dict[str, datetime | None]:
        """When each list was last replaced (UTC), None for a list never loaded."""
        applied: dict[str, datetime | None] = dict.fromkeys(LIST_NAMES)
        with self._store.read() as db:
            for row in db.query("SELECT name, applied_at FROM list_versions"):
                if row["name"] in applied:
                    applied[row["name"]] = datetime.fromisoformat(row["applied_at"])
        return applied

    def list_ages(self, now: datetime) -> dict[str, timedelta | None]:
        """How long since each list was known current, None for a list never loaded.

        Known current: replaced, or confirmed unchanged by the centre (the uploader's
        last successful lists check).
        """
        with self._store.read() as db:
            row = first_row(db, "SELECT MAX(lists_checked_at) AS at FROM sync_state")
        checked = None if row is None or row["at"] is None else datetime.fromisoformat(row["at"])
        ages: dict[str, timedelta | None] = {}
        for name, applied in self.list_applied_at().items():
            if applied is None:
                ages[name] = None
                continue
            ages[name] = now - (applied if checked is None else max(applied, checked))
        return ages

    def apply_snapshots(
        self, snapshots: Mapping[str, tuple[int, Sequence[Mapping[str, object]]]]
    ) -> list[str]:
        """Replace each list whose version is newer than the stored one; return those applied.

        Lists are ``LIST_NAMES`` and ``"directory"``. All go in one transaction. An unknown
        list name or a malformed item raises ``ValueError`` and nothing is applied.
        """
        changes = []
        for name, snapshot in snapshots.items():
            if not isinstance(snapshot, tuple | list) or len(snapshot) != 2:
                raise ValueError(f"{name}: expected a (version, items) pair")
            changes.append(ListChange(name, snapshot[0], snapshot[1]))
        return self.apply_changes(changes)

    def apply_changes(self, changes: Sequence[ListChange]) -> list[str]:
        """Apply snapshots and deltas in one transaction; return the names applied.

        A list at a version not above the stored one is skipped (a replay, or an older
        copy). A delta that does not start at the stored version raises ``ValueError``,
        as does a malformed item or an unknown list, and then nothing is applied: the
        caller asks for snapshots. A change of the centre's ``mode`` setting is recorded
        in the mode history (see ``local_mode``).
        """
        snapshots = {c.name: (c.version, c.items) for c in changes if c.base_version is None}
        prepared = {name: (version, rows) for name, version, rows in prepare(snapshots)}
        deltas: list[tuple[ListChange, list[tuple[object, ...]]]] = []
        for change in changes:
            if change.base_version is None:
                continue
            if change.name not in DELTA_DELETES:
                raise ValueError(f"{change.name} cannot arrive as a delta")
            ((_, _, rows),) = prepare({change.name: (change.version, change.items)})
            deltas.append((change, rows))
        applied: list[str] = []
        with self._store.write() as db:
            stored = {
                row["name"]: row["version"]
                for row in db.query("SELECT name, version FROM list_versions")
            }
            applied_at = utc_iso(self._store.clock())
            old_mode = self._centre_mode(db)
            for change in changes:
                held = stored.get(change.name, 0)
                if change.version <= held:
                    logger.info("list %s v%d skipped: have v%d", change.name, change.version, held)
                    continue
                table, columns, clear = TABLES[change.name]
                if change.base_version is None:
                    db.execute(clear)
                    rows = prepared[change.name][1]
                else:
                    if change.base_version != held:
                        raise ValueError(
                            f"{change.name}: delta from v{change.base_version}, gate holds v{held}"
                        )
                    rows = next(r for c, r in deltas if c is change)
                    # Rows start with the pass id; replaced items go, then come back.
                    gone = [*change.removed, *(row[0] for row in rows)]
                    db.conn.executemany(DELTA_DELETES[change.name], [(key,) for key in gone])
                db.table(table).insert_all(dict(zip(columns, row, strict=True)) for row in rows)
                db.execute(
                    "INSERT INTO list_versions (name, version, applied_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE"
                    " SET version = excluded.version, applied_at = excluded.applied_at",
                    (change.name, change.version, applied_at),
                )
                applied.append(change.name)
            if "settings" in applied:
                # New settings may mean a new quota window or another compound (the
                # centre raises the settings version when a gate moves): what the centre
                # sends of the compound lists then differs at versions the gate holds
                # already. Held at 0, they come again whole at the next request.
                for name in COMPOUND_LISTS:
                    if name not in applied:
                        db.execute("DELETE FROM list_versions WHERE name = ?", (name,))
            new_mode = self._centre_mode(db)
            if new_mode is not None and new_mode != old_mode:
                db.execute(
                    "INSERT INTO local_settings (key, value, set_at, set_by)"
                    " VALUES ('mode', ?, ?, ?)",
                    (new_mode, applied_at, CENTRE),
                )
                logger.info("the centre set the gate mode to %s", new_mode)
        for change in changes:
            if change.name in applied:
                kind = "snapshot" if change.base_version is None else "delta"
                logger.info("list %s now at v%d (%s)", change.name, change.version, kind)
        return applied

    @staticmethod
    def _centre_mode(db: Database) -> str | None:
        value = _setting(db, "mode")
        return value if isinstance(value, str) and value in MODES else None

    # -- what the other gates of the compound report -------------------------------------------

    def compound_versions(self) -> dict[str, int]:
        """The version of each compound list held (``alerts``, ``passages``), 0 if none."""
        versions = dict.fromkeys(COMPOUND_LISTS, 0)
        with self._store.read() as db:
            for row in db.query("SELECT name, version FROM list_versions"):
                if row["name"] in versions:
                    versions[row["name"]] = row["version"]
        return versions

    def alerts(self, since: datetime, *, limit: int = 50) -> list[dict[str, Any]]:
        """Alerts of the compound's gates at or after ``since``, newest first.

        Each is a dict of ``gate_id``, ``stream_id``, ``seq``, ``at`` (aware UTC),
        ``reason``, ``household_id``, ``unit``, ``display_name`` (masked, "" when not
        known) and ``pass_id`` (None for a registration), as the centre sent them.
        """
        with self._store.read() as db:
            rows = db.query(
                "SELECT gate_id, stream_id, seq, at, reason, household_id, unit, display_name,"
                " pass_id FROM alerts WHERE at >= ? ORDER BY at DESC, gate_id, seq DESC LIMIT ?",
                (aware_iso(since, "since"), limit),
            )
            return [{**row, "at": datetime.fromisoformat(row["at"])} for row in rows]

    def household_passages(
        self, household_id: str, direction: str, since: datetime
    ) -> list[tuple[str, int, datetime]]:
        """Passages of a household through the compound's gates (the ``passages`` list)
        at or after ``since`` in ``direction``: (stream id, seq, time), oldest first."""
        with self._store.read() as db:
            rows = db.query(
                "SELECT stream_id, seq, at FROM passages"
                " WHERE household_id = ? AND direction = ? AND at >= ? ORDER BY at, seq",
                (household_id, direction, aware_iso(since, "since")),
            )
            return [(r["stream_id"], r["seq"], datetime.fromisoformat(r["at"])) for r in rows]

    def pass_passages(
        self, pass_id: str, direction: str, since: datetime
    ) -> list[tuple[str, int, str, datetime]]:
        """Passages of one pass through the compound's gates (a visitor's entries) at or
        after ``since`` in ``direction``: (stream id, seq, gate id, time), oldest first."""
        with self._store.read() as db:
            rows = db.query(
                "SELECT stream_id, seq, gate_id, at FROM passages"
                " WHERE pass_id = ? AND direction = ? AND at >= ? ORDER BY at, seq",
                (pass_id, direction, aware_iso(since, "since")),
            )
            return [
                (r["stream_id"], r["seq"], r["gate_id"], datetime.fromisoformat(r["at"]))
                for r in rows
            ]

    def prune_compound(
        self, *, alerts_before: datetime, passages_before: datetime, dry_run: bool = False
    ) -> dict[str, int]:
        """Drop the compound's alerts and passages older than the given times; how many.

        The centre sends each list whole and the gate applies the same windows by time,
        so rows past every window are never read again; their list versions stay as they
        are. ``dry_run`` counts and changes nothing.
        """
        cuts = {
            "alerts": aware_iso(alerts_before, "alerts_before"),
            "passages": aware_iso(passages_before, "passages_before"),
        }
        counts: dict[str, int] = {}
        if dry_run:
            with self._store.read() as db:
                for table, cut in cuts.items():
                    row = first_row(db, f"SELECT COUNT(*) AS n FROM {table} WHERE at < ?", (cut,))  # noqa: S608 - our names
                    counts[table] = 0 if row is None else int(row["n"])
            return counts
        with self._store.write() as db:
            for table, cut in cuts.items():
                counts[table] = db.execute(f"DELETE FROM {table} WHERE at < ?", (cut,)).rowcount  # noqa: S608 - our names
        return counts

    # -- the centre keys that sign the lists ---------------------------------------------------

    def pin_centre_key(self, kid: str, public_key: bytes, *, by: str, at: datetime) -> bool:
        """Trust ``public_key`` (raw Ed25519) to sign lists; False when already pinned."""
        if len(public_key) != 32 or len(kid) != 8:
            raise ValueError("a centre key is 32 raw bytes with an 8-character id")
        with self._store.write() as db:
            known = first_row(db, "SELECT public_key FROM centre_keys WHERE kid = ?", (kid,))
            if known is not None:
                if bytes(known["public_key"]) != public_key:
                    raise ValueError(f"centre key {kid} is pinned with other bytes")
                return False
            db.execute(
                "INSERT INTO centre_keys (kid, public_key, pinned_at, pinned_by)"
                " VALUES (?, ?, ?, ?)",
                (kid, public_key, aware_iso(at, "at"), by),
            )
        logger.info("pinned centre key %s (%s)", kid, by)
        return True

    def centre_keys(self) -> dict[str, bytes]:
        """The pinned centre keys: kid -> raw public key."""
        with self._store.read() as db:
            return {
                row["kid"]: bytes(row["public_key"])
                for row in db.query("SELECT kid, public_key FROM centre_keys")
            }

    def issuer_keys(self) -> list[tuple[str, bytes, bool]]:
        """Every issuer key as (kid, raw 32-byte Ed25519 public key, retired), by kid."""
        with self._store.read() as db:
            rows = db.query("SELECT kid, public_key, retired FROM issuer_keys ORDER BY kid")
            return [(row["kid"], row["public_key"], row["retired"] == 1) for row in rows]

    def revoked_pass_ids(self) -> frozenset[str]:
        """The ids of every revoked pass."""
        with self._store.read() as db:
            return frozenset(row["pass_id"] for row in db.query("SELECT pass_id FROM revocations"))

    def revocations(self) -> list[tuple[str, datetime, str]]:
        """Every revocation as (pass_id, revoked_at in UTC, reason), by pass id."""
        with self._store.read() as db:
            rows = db.query("SELECT pass_id, revoked_at, reason FROM revocations ORDER BY pass_id")
            return [
                (row["pass_id"], datetime.fromisoformat(row["revoked_at"]), row["reason"])
                for row in rows
            ]

    def isolations(self) -> list[tuple[str, datetime, datetime]]:
        """Every isolated household as (household_id, start, end) in UTC."""
        with self._store.read() as db:
            rows = db.query(
                "SELECT household_id, starts_at, ends_at FROM isolations"
                " ORDER BY household_id, starts_at"
            )
            return [
                (
                    row["household_id"],
                    datetime.fromisoformat(row["starts_at"]),
                    datetime.fromisoformat(row["ends_at"]),
                )
                for row in rows
            ]

    def settings(self) -> dict[str, object]:
        """The gate settings as a dict of JSON values."""
        with self._store.read() as db:
            rows = db.query("SELECT key, value FROM settings ORDER BY key")
            return {row["key"]: json.loads(row["value"]) for row in rows}

    # -- the resident directory --------------------------------------------------------------

    def directory_status(self) -> DirectoryStatus:
        """The directory's version (0 when never loaded), when it was applied, how many items."""
        with self._store.read() as db:
            row = first_row(
                db, "SELECT version, applied_at FROM list_versions WHERE name = ?", (DIRECTORY,)
            )
            items = directory.count(db)
        if row is None:
            return DirectoryStatus(0, None, items)
        return DirectoryStatus(row["version"], datetime.fromisoformat(row["applied_at"]), items)

    def directory_search(
        self, *, unit: str | None = None, name: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Directory items by building-unit-room prefix and/or masked name, by unit then name.

        Both queries given: items matching both; neither (or blank): the first ``limit``
        items. The matching rules are in ``gate_agent.ledger.directory``. Each item is a
        dict of ``pass_id``, ``kind``, ``household_id``, ``scope``, ``valid_from`` and
        ``valid_until`` (aware UTC datetimes), ``display_name``, ``unit`` ("" for none)
        and ``exit_quota`` ("1/2" or None), as the centre sent them. The directory holds
        what was issued and unrevoked when the centre sent it: a decision must still
        check the pass (validity, revocations) before letting anyone through.
        """
        with self._store.read() as db:
            return directory.search(db, unit=unit, name=name, limit=limit)

    def directory_get(self, pass_id: str) -> dict[str, Any] | None:
        """The directory item of one pass (fields as ``directory_search``), or None."""
        with self._store.read() as db:
            return directory.get(db, pass_id)

    # -- the gate mode an admin sets here ------------------------------------------------------

    def set_local_mode(self, mode: str, *, by: str, at: datetime) -> None:
        """Record an admin's switch of this gate's mode; earlier switches stay as the trail.

        ``mode`` is ``open``, ``screening`` or ``lockdown``; ``by`` names the admin; ``at``
        is an aware time. Anything else raises ``ValueError`` and records nothing.
        """
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        if not isinstance(by, str) or not by.strip():
            raise ValueError("by must name who switched the mode")
        at_text = aware_iso(at, "at")
        with self._store.write() as db:
            db.execute(
                "INSERT INTO local_settings (key, value, set_at, set_by) VALUES ('mode', ?, ?, ?)",
                (str.__str__(mode), at_text, by),
            )
        logger.info("gate mode set to %s by %s at %s", mode, by, at_text)

    def local_mode(self) -> tuple[str, datetime, str] | None:
        """The mode an admin last set here as (mode, when in UTC, by whom), or None."""
        history = self.local_mode_history(limit=1)
        return history[0] if history else None

    def local_mode_history(self, limit: int = 50) -> list[tuple[str, datetime, str]]:
        """The admins' mode switches at this gate as (mode, when, by), the last recorded first.

        Order is the order of recording, not of the times given: a switch made while the
        clock was wrong is still the one in force if it came last.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY:
            raise ValueError(f"limit must be an int between 1 and {MAX_HISTORY}, got {limit!r}")
        with self._store.read() as db:
            rows = db.query(
                "SELECT value, set_at, set_by FROM local_settings WHERE key = 'mode'"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [
                (row["value"], datetime.fromisoformat(row["set_at"]), row["set_by"]) for row in rows
            ]
