"""The issuer-side central store: what every implementation offers (SQLite, PostgreSQL).

It holds issuer public keys, issued passes, revocations, home isolations, gate
settings (with their history) and the version of each downlink list. A list's
version goes up in the transaction that changes it: ``keys`` when a key is added,
rotated, planned for retirement or retired,
``revocations`` when a pass is revoked, ``isolations`` when one is ordered or lifted,
``directory`` when a pass is issued or revoked, ``settings`` when an admin sets a gate
setting. For the large lists (revocations, directory) the same transaction records
which pass ids changed at that version (``list_changes``), so a gate at an older
version can be sent a delta: those ids' current items, or their removal.

Times go in as aware datetimes and come out as UTC ISO 8601 text
(``2026-03-01T08:00:00+00:00``), whichever database holds them.

``sync.store.sqlite.SqliteCentralStore`` (also importable as ``CentralStore``) keeps
it in the data folder's file; ``sync.store.central_postgres.PostgresCentralStore`` in
PostgreSQL, so that several ``gate-sync serve`` replicas share issuing and revoking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from gate_agent.core.passes import PassFields
from sync.store.admins_sql import AdminStore

if TYPE_CHECKING:
    from sync.store.visitors_sql import VisitorDraft, VisitorEvent, VisitorRequest


@dataclass(frozen=True)
class KeyRow:
    """An issuer key as the centre records it.

    Active: neither time set. Rotating: ``retire_at`` set (it still verifies at gates, it
    no longer signs). Retired: ``retired_at`` set (gates refuse its passes).
    """

    kid: str
    public_key: bytes
    created_at: str
    retired_at: str | None
    retire_at: str | None = None

    @property
    def state(self) -> str:
        """``active``, ``rotating`` (retirement planned) or ``retired``."""
        if self.retired_at is not None:
            return "retired"
        return "active" if self.retire_at is None else "rotating"


@dataclass(frozen=True)
class DirectoryRow:
    """An issued, unrevoked pass as the gates' directory lists it (times as stored, UTC)."""

    pass_id: str
    kind: str
    household_id: str
    scope: str
    valid_from: str
    valid_until: str
    display_name: str
    unit: str
    exit_quota: str | None


@dataclass(frozen=True)
class PassRow:
    """An issued pass as the centre records it."""

    pass_id: str
    kind: str
    household_id: str
    text: str
    valid_until: str
    revoked_at: str | None
    revoke_reason: str | None


@dataclass(frozen=True)
class Household:
    """A home as the residents file names it; its id is what passes carry (ASCII)."""

    household_id: str
    community: str
    compound: str
    building: str
    unit: str
    room: str

    @property
    def unit_label(self) -> str:
        """building-unit-room as a pass carries it (empty parts left out)."""
        return "-".join(part for part in (self.building, self.unit, self.room) if part)


@dataclass(frozen=True)
class Person:
    """A person to record: natural key (household id, full name); personal data stays here.

    ``landlord`` is the (household id, name) key of the landlord responsible for a tenant.
    """

    household_id: str
    name: str
    phone: str
    role: str
    landlord: tuple[str, str] | None = None


@dataclass(frozen=True)
class Resident:
    """A recorded person with their household (full name and phone: centre only)."""

    person_id: int
    household: Household
    name: str
    phone: str
    role: str
    landlord_id: int | None


@dataclass(frozen=True)
class ImportSummary:
    """What an import did (or would do, on a dry run)."""

    households_added: int = 0
    households_updated: int = 0
    households_unchanged: int = 0
    persons_added: int = 0
    persons_updated: int = 0
    persons_unchanged: int = 0


#: A pass to record in a batch: its fields, its signed text, and the person holding it.
IssuedPass = tuple[PassFields, str, int | None]


@dataclass(frozen=True)
class IsolationRow:
    """A home isolation as ordered, lifted or not: the history community workers keep."""

    household_id: str
    starts_at: str
    ends_at: str
    note: str
    created_at: str
    lifted_at: str | None


@dataclass(frozen=True)
class QuotaRow:
    """A compound's exit quota as set (or, in the history, cleared: ``quota`` None)."""

    compound: str
    quota: str | None
    set_at: str
    set_by: str


#: A gate setting as stored: (gate_id, key, value, set_at, set_by); gate '' is every gate.
SettingRow = tuple[str, str, object, str, str]


class IssuerStore(AdminStore, Protocol):
    """The issuer-side central store that ``Issuer``, ``gate-sync`` and the server use."""

    def close(self) -> None:
        """Release the database."""

    def raise_version(self, name: str, above: int) -> None:
        """Raise a list's stored version to at least ``above``; forget its change log.

        A gate can hold a version the centre does not know only after the centre was
        restored from an older backup; sending it a lower version would be ignored.
        """

    def changed_keys(self, name: str, since: int) -> set[str] | None:
        """Item keys of ``name`` changed after version ``since``; None when not recorded."""

    def list_version(self, name: str) -> int:
        """The current version of a downlink list; 0 when it never changed."""

    def add_key(self, public_key: bytes, now: datetime) -> str:
        """Record a new issuer public key; returns its key id."""

    def issuer_keys(self) -> list[KeyRow]:
        """All issuer keys, oldest first."""

    def rotate_key(self, public_key: bytes, retire_at: datetime, now: datetime) -> list[str]:
        """Record a new key and plan every other active key's retirement at ``retire_at``.

        One transaction, one ``keys`` version. Keys already rotating keep the earlier of
        their planned time and ``retire_at``. Returns the ids of the keys that now rotate.
        """

    def retire_key(self, kid: str, at: datetime, now: datetime) -> bool:
        """Retire a key at ``at``: recorded at once when ``at <= now``, else planned.

        False (nothing changes) when it is retired already; ``NotFound`` when unknown.
        """

    def retire_due_keys(self, now: datetime) -> list[str]:
        """Record as retired (at their planned time) the keys whose ``retire_at`` has come.

        The ``keys`` version goes up in the same transaction, once, when any did; a key
        is retired once however many servers notice it at the same moment.
        """

    def live_passes(self, kid: str, now: datetime) -> int:
        """How many passes signed with ``kid`` are unrevoked and valid after ``now``."""

    def add_pass(self, fields: PassFields, text: str, kid: str, now: datetime) -> None:
        """Record an issued pass; ``Conflict`` when its id was issued already."""

    def get_pass(self, pass_id: str) -> PassRow:
        """One issued pass; ``NotFound`` when there is none."""

    def revoke(self, pass_id: str, reason: str, now: datetime) -> bool:
        """Revoke a pass; False when it was already revoked. ``NotFound`` when unknown."""

    def household_passes(self, household_ids: Sequence[str]) -> list[PassRow]:
        """Every pass ever issued to these households, revoked and expired ones too.

        Ordered by household id, then pass id; an unknown household has none.
        """

    def active_passes(self, now: datetime) -> list[PassRow]:
        """Passes of every kind not revoked and valid until after ``now``, by household, id."""

    def isolate(
        self, household_id: str, start: datetime, end: datetime, note: str, now: datetime
    ) -> int:
        """Put a household in home isolation from ``start`` until ``end``; returns its id."""

    def lift_isolation(self, household_id: str, now: datetime) -> int:
        """End a household's current and future isolations now (``NotFound`` if none)."""

    def isolations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Isolations in force or to come: (household id, start, end)."""

    def isolation_history(
        self, since: datetime | None, until: datetime | None
    ) -> list[IsolationRow]:
        """Every isolation overlapping ``[since, until)``, lifted ones too, by start."""

    def revocations(self, now: datetime) -> list[tuple[str, str, str]]:
        """Revoked passes still valid after ``now``: (pass id, revoked at, reason)."""

    def set_setting(self, gate_id: str, key: str, value: object, *, by: str, now: datetime) -> None:
        """Set a gate setting (``gate_id`` '' for every gate); ``value`` None clears it."""

    def settings_rows(self) -> list[SettingRow]:
        """Every setting, by gate id and key."""

    def settings_for(self, gate_id: str, compound: str | None = None) -> dict[str, object]:
        """The settings a gate gets: those for every gate, then its compound's (the
        compound's ``exit_quota``), then its own."""

    def set_compound_quota(
        self, compound: str, quota: str | None, *, by: str, now: datetime
    ) -> None:
        """Set a compound's exit quota ("N/D") or clear it (None); raises ``settings``."""

    def compound_quotas(self) -> list[QuotaRow]:
        """Every compound's quota in force, by compound."""

    def compound_quota(self, compound: str) -> str | None:
        """One compound's quota in force ("N/D"), or None."""

    def compound_quota_history(self, compound: str | None = None) -> list[QuotaRow]:
        """Every set and clear of one compound's quota (or all), oldest first."""

    def pass_labels(self, pass_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(masked name, unit) as printed on each known pass of ``pass_ids``."""

    def directory(self, now: datetime) -> list[DirectoryRow]:
        """People passes issued, not revoked and valid until after ``now``, by pass id."""

    def import_residents(
        self,
        households: Sequence[Household],
        persons: Sequence[Person],
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> ImportSummary:
        """Add or update households and persons in one transaction (none on a dry run).

        Persons match on (household id, name); a tenant's landlord key must name a
        landlord recorded before or in this call (``NotFound`` otherwise).
        """

    def residents(self, compound: str | None = None) -> list[Resident]:
        """Recorded persons (of one compound, or all), by household id, then person id."""

    def add_passes(
        self, issued: Sequence[IssuedPass], kid: str, now: datetime, *, skip_held: bool = False
    ) -> list[str]:
        """Record several issued passes and their holders in one transaction, one version.

        With ``skip_held``, passes whose holder already holds a live pass of that kind are
        left out, checked in the transaction (concurrent bulk runs issue each person one).
        Returns the ids recorded, in order.
        """

    def live_holders(self, kind: str, now: datetime) -> set[int]:
        """Ids of persons holding an unrevoked pass of ``kind`` valid after ``now``."""

    def replace_pass(
        self,
        old_id: str,
        fields: PassFields,
        text: str,
        kid: str,
        *,
        reason: str,
        now: datetime,
    ) -> None:
        """Record ``fields`` as the successor of ``old_id`` (same holder) and revoke the old
        one with ``reason``, in one transaction; ``Conflict`` when it is revoked already."""

    # -- visitor requests (``sync.store.visitors_sql``, ``sync.visitors``) ------------------

    def household(self, household_id: str) -> Household | None:
        """The recorded household, or None."""

    def add_visitor_request(self, draft: VisitorDraft, now: datetime) -> int:
        """Record a pending request; its id. ``VisitorRefused('unknown_host')`` when the
        host household is not among the residents."""

    def visitor_request(self, request_id: int) -> VisitorRequest:
        """One visitor request; ``NotFound`` when there is none."""

    def visitor_requests(
        self, *, pending: bool = False, household_id: str | None = None
    ) -> list[VisitorRequest]:
        """Visitor requests (only pending, only one host's), oldest first."""

    def visitor_passes(
        self, since: datetime | None, until: datetime | None
    ) -> list[VisitorRequest]:
        """Approved requests whose visit overlaps ``[since, until)``, by start."""

    def visitor_history(self, request_id: int) -> list[VisitorEvent]:
        """Every state a request went through, oldest first."""

    def approve_visitor_request(
        self, request_id: int, issued: IssuedPass, kid: str, *, by: str, now: datetime
    ) -> None:
        """Approve a pending request and record its pass in one transaction; issues
        nothing and raises ``VisitorRefused('already_decided')`` when it was decided."""

    def issue_visitor_pass(
        self, draft: VisitorDraft, issued: IssuedPass, kid: str, now: datetime
    ) -> int:
        """Record a request approved at once by its requester, and its pass; its id."""

    def close_visitor_request(
        self, request_id: int, state: str, *, by: str, note: str, now: datetime
    ) -> None:
        """Reject or cancel (``state``) a pending request with ``note``; else
        ``VisitorRefused('already_decided')``."""

    def purge_visitor_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the name, phone and plate of visitor requests over before ``before``."""


def merged_settings(
    rows: Iterable[SettingRow], gate_id: str, compound_quota: str | None = None
) -> dict[str, object]:
    """The settings for every gate ('' rows), then the gate's compound's exit quota, then
    ``gate_id``'s own."""
    listed = list(rows)
    merged = {key: value for owner, key, value, _, _ in listed if owner == ""}
    if compound_quota is not None:
        merged["exit_quota"] = compound_quota
    merged.update({key: value for owner, key, value, _, _ in listed if owner == gate_id})
    return merged


def iso(moment: datetime) -> str:
    """UTC ISO 8601, so that stored times compare correctly as text."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).isoformat()
