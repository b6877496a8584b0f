"""Passes for many residents at once, and reissuing or ending one pass early.

A bulk run issues one pass per person, or per household (named by its landlord, else
its first listed person), to the recorded residents of one compound. Who already holds
a live pass of the kind is skipped, so running it again issues only what is missing;
passes are recorded a chunk per transaction, so a run stopped midway leaves whole
chunks behind and the next run carries on. Passes carry masked names only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO

from gate_agent.core.passes import (
    ExitQuota,
    Keyring,
    PassFields,
    PassKind,
    Scope,
    VerifiedPass,
    mask_name,
    verify,
)
from sync.errors import Conflict, NotFound
from sync.issuer import Issuer, new_pass_id
from sync.store.central import Resident

#: The roles a kind goes to unless told otherwise; kinds not listed go to every role.
DEFAULT_ROLES: dict[PassKind, tuple[str, ...]] = {
    PassKind.RESIDENT: ("resident", "landlord"),
    PassKind.TENANT: ("tenant",),
}
DEFAULT_CHUNK = 200
#: The revocation reasons of an early end and of a reissue ("reissued as NEWID").
EXPIRED_REASON = "expired early"
REISSUED_REASON = "reissued as {new}"


@dataclass(frozen=True)
class BulkResult:
    """What a bulk run did."""

    issued: int
    skipped: int


def holders(
    residents: Sequence[Resident], roles: Sequence[str], per: str, held: set[int], busy: set[str]
) -> tuple[list[Resident], int]:
    """Who gets a pass, and how many are skipped as holding one already.

    ``held``: persons holding a live pass of the kind; ``busy``: households that do.
    """
    eligible = [r for r in residents if r.role in roles]
    if per == "person":
        chosen = [r for r in eligible if r.person_id not in held]
        return chosen, len(eligible) - len(chosen)
    homes: dict[str, list[Resident]] = {}
    for person in eligible:
        homes.setdefault(person.household.household_id, []).append(person)
    chosen = []
    for household, people in homes.items():
        if household in busy or any(p.person_id in held for p in people):
            continue
        landlords = [p for p in people if p.role == "landlord"]
        chosen.append((landlords or people)[0])
    return chosen, len(homes) - len(chosen)


def issue_bulk(
    issuer: Issuer,
    *,
    compound: str,
    kind: PassKind,
    per: str,
    start: datetime,
    days: int,
    scope: Scope,
    now: datetime,
    roles: Sequence[str] | None = None,
    quota: ExitQuota | None = None,
    chunk: int = DEFAULT_CHUNK,
    out: IO[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BulkResult:
    """Issue the missing passes of ``kind`` to the compound's residents, chunk by chunk."""
    if per not in ("person", "household"):
        raise ValueError("--per must be person or household")
    if days < 1 or chunk < 1:
        raise ValueError("--days and --chunk must be at least 1")
    store = issuer.store
    residents = store.residents(compound)
    if not residents:
        raise NotFound(f"no residents recorded in compound {compound}: import them first")
    held = store.live_holders(kind.value, now)
    busy = {row.household_id for row in store.active_passes(now) if row.kind == kind.value}
    wanted = DEFAULT_ROLES.get(kind, ("resident", "tenant", "landlord")) if roles is None else roles
    chosen, skipped = holders(residents, wanted, per, held, busy)
    start = start.replace(microsecond=0)
    issued = done = 0
    for first in range(0, len(chosen), chunk):
        batch = [
            (
                PassFields(
                    pass_id=new_pass_id(),
                    kind=kind,
                    household_id=person.household.household_id,
                    scope=scope,
                    valid_from=start,
                    valid_until=start + timedelta(days=days),
                    display_name=mask_name(person.name),
                    unit=person.household.unit_label,
                    exit_quota=quota,
                ),
                person.person_id,
            )
            for person in chosen[first : first + chunk]
        ]
        recorded = issuer.issue_missing(batch, now)
        done += len(batch)
        issued += len(recorded)
        # Another run may have issued some of these since ``held`` was read.
        skipped += len(batch) - len(recorded)
        if out is not None:
            for fields, text in recorded:
                out.write(json.dumps(_record(fields, text), ensure_ascii=False) + "\n")
            out.flush()
        if progress is not None:
            progress(done, len(chosen))
    return BulkResult(issued, skipped)


def _record(fields: PassFields, text: str) -> dict[str, object]:
    """A pass as a line of the --out file: masked name only, as on the card."""
    return {
        "pass_id": fields.pass_id,
        "kind": fields.kind.value,
        "household_id": fields.household_id,
        "unit": fields.unit,
        "display_name": fields.display_name,
        "valid_from": fields.valid_from.isoformat(),
        "valid_until": fields.valid_until.isoformat(),
        "text": text,
    }


def stored_fields(issuer: Issuer, pass_id: str) -> PassFields:
    """The fields of a pass this centre issued, read back from its stored text.

    Checked against every recorded key, retired ones too: a pass whose key is retiring
    is exactly what gets reissued.
    """
    row = issuer.store.get_pass(pass_id)
    keyring = Keyring.from_raw((key.public_key, False) for key in issuer.store.issuer_keys())
    checked = verify(row.text, keyring)
    if not isinstance(checked, VerifiedPass):
        raise Conflict(f"pass {pass_id}'s stored text does not verify ({checked.reason})")
    return checked.fields


def reissue(issuer: Issuer, pass_id: str, now: datetime, days: int | None = None) -> PassFields:
    """A new pass for the same holder (new id; ``days`` from now, else the old end); the
    old one revoked "reissued as NEW" in the same transaction. The new pass's fields."""
    old = stored_fields(issuer, pass_id)
    start = max(old.valid_from, now.replace(microsecond=0))
    if days is not None:
        if days < 1:
            raise ValueError("--days must be at least 1")
        end = start + timedelta(days=days)
    elif old.valid_until <= start:
        raise Conflict(f"pass {pass_id} has expired: give --days for the new one")
    else:
        end = old.valid_until
    new = replace(old, pass_id=new_pass_id(), valid_from=start, valid_until=end)
    issuer.replace(pass_id, new, REISSUED_REASON.format(new=new.pass_id), now)
    return new


def expire(issuer: Issuer, pass_id: str, now: datetime) -> bool:
    """End a pass's validity now: revoked "expired early" (its signed end cannot change).

    False when it was revoked already.
    """
    return issuer.store.revoke(pass_id, EXPIRED_REASON, now)
