"""Residents, households and pass holders: the SQL both central stores run alike.

The statements are written with ``?`` marks; the PostgreSQL store's runner turns them
into ``%s``. Each function runs inside the caller's transaction, through ``run`` (a
statement and its parameters in, the rows out), ``when`` (an aware datetime as the
database takes it) and ``bump`` (raise a list's version, recording changed item keys).

Persons match on (household id, full name): a re-import updates a person's phone,
role and landlord instead of adding them again. ``pass_holders`` says which recorded
person a pass was issued to, so a bulk run can skip those who hold one already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sync.errors import Conflict, NotFound
from sync.store.central import Household, ImportSummary, IssuedPass, Person, Resident

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
When = Callable[[datetime], object]
Bump = Callable[..., int]


class SqlStore:
    """What a store gives the shared SQL modules' mixins (``visitors_sql``, ``compounds_sql``):
    a write transaction's runner, list-version bump and time form, and a consistent read."""

    def _sql_write(self, what: str) -> AbstractContextManager[tuple[Run, Bump, When]]:
        raise NotImplementedError

    def _sql_read(self, what: str) -> AbstractContextManager[tuple[Run, When]]:
        raise NotImplementedError


ROLES = ("resident", "tenant", "landlord")

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS households (
    household_id TEXT PRIMARY KEY,  -- what passes carry (ASCII)
    community TEXT NOT NULL,
    compound TEXT NOT NULL,
    building TEXT NOT NULL,
    unit TEXT NOT NULL,
    room TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS households_compound ON households(compound);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY,
    household_id TEXT NOT NULL REFERENCES households(household_id),
    name TEXT NOT NULL,             -- the full name: personal data, never sent to gates
    phone TEXT NOT NULL,            -- '' when none; personal data as well
    role TEXT NOT NULL CHECK (role IN ('resident', 'tenant', 'landlord')),
    landlord_id INTEGER REFERENCES persons(id),  -- a tenant's landlord
    updated_at TEXT NOT NULL,
    UNIQUE (household_id, name)
);
CREATE TABLE IF NOT EXISTS pass_holders (
    pass_id TEXT PRIMARY KEY REFERENCES passes(pass_id),
    person_id INTEGER NOT NULL REFERENCES persons(id)
);
CREATE INDEX IF NOT EXISTS pass_holders_person ON pass_holders(person_id);
"""

#: PostgreSQL migration 3: the same tables.
POSTGRES_MIGRATION: tuple[str, ...] = (
    """CREATE TABLE households (
        household_id text COLLATE "C" PRIMARY KEY,
        community text NOT NULL,
        compound text COLLATE "C" NOT NULL,
        building text NOT NULL,
        unit text NOT NULL,
        room text NOT NULL,
        updated_at timestamptz NOT NULL
    )""",
    "CREATE INDEX households_compound ON households(compound)",
    """CREATE TABLE persons (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        household_id text COLLATE "C" NOT NULL REFERENCES households(household_id),
        name text NOT NULL,
        phone text NOT NULL,
        role text NOT NULL CHECK (role IN ('resident', 'tenant', 'landlord')),
        landlord_id bigint REFERENCES persons(id),
        updated_at timestamptz NOT NULL,
        UNIQUE (household_id, name)
    )""",
    """CREATE TABLE pass_holders (
        pass_id text COLLATE "C" PRIMARY KEY REFERENCES passes(pass_id),
        person_id bigint NOT NULL REFERENCES persons(id)
    )""",
    "CREATE INDEX pass_holders_person ON pass_holders(person_id)",
)


def import_residents(
    run: Run, households: Sequence[Household], persons: Sequence[Person], now: object
) -> ImportSummary:
    """Add or update households, then persons (tenants last, to find their landlords)."""
    counts = dict.fromkeys(ImportSummary.__dataclass_fields__, 0)
    for home in households:
        wanted = (home.community, home.compound, home.building, home.unit, home.room)
        found = run(
            "SELECT community, compound, building, unit, room FROM households"
            " WHERE household_id = ?",
            (home.household_id,),
        )
        if not found:
            run(
                "INSERT INTO households(household_id, community, compound, building, unit,"
                " room, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (home.household_id, *wanted, now),
            )
            counts["households_added"] += 1
        elif tuple(found[0]) != wanted:
            run(
                "UPDATE households SET community = ?, compound = ?, building = ?, unit = ?,"
                " room = ?, updated_at = ? WHERE household_id = ?",
                (*wanted, now, home.household_id),
            )
            counts["households_updated"] += 1
        else:
            counts["households_unchanged"] += 1
    for person in sorted(persons, key=lambda one: one.role == "tenant"):
        landlord_id = None
        if person.landlord is not None:
            rows = run(
                "SELECT id FROM persons WHERE household_id = ? AND name = ? AND role = 'landlord'",
                person.landlord,
            )
            if not rows:
                raise NotFound(f"no landlord {person.landlord[1]} in {person.landlord[0]}")
            landlord_id = int(rows[0][0])
        found = run(
            "SELECT id, phone, role, landlord_id FROM persons WHERE household_id = ? AND name = ?",
            (person.household_id, person.name),
        )
        wanted_person = (person.phone, person.role, landlord_id)
        if not found:
            run(
                "INSERT INTO persons(household_id, name, phone, role, landlord_id, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (person.household_id, person.name, *wanted_person, now),
            )
            counts["persons_added"] += 1
        elif tuple(found[0][1:]) != wanted_person:
            run(
                "UPDATE persons SET phone = ?, role = ?, landlord_id = ?, updated_at = ?"
                " WHERE id = ?",
                (*wanted_person, now, found[0][0]),
            )
            counts["persons_updated"] += 1
        else:
            counts["persons_unchanged"] += 1
    return ImportSummary(**counts)


_RESIDENTS = (
    "SELECT p.id, h.household_id, h.community, h.compound, h.building, h.unit, h.room,"
    " p.name, p.phone, p.role, p.landlord_id"
    " FROM persons p JOIN households h ON h.household_id = p.household_id"
)


def residents(run: Run, compound: str | None) -> list[Resident]:
    """Recorded persons with their households, by household id, then person id."""
    if compound is None:
        rows = run(_RESIDENTS + " ORDER BY h.household_id, p.id", ())
    else:
        rows = run(_RESIDENTS + " WHERE h.compound = ? ORDER BY h.household_id, p.id", (compound,))
    return [
        Resident(
            person_id=int(pid),
            household=Household(home, community, comp, building, unit, room),
            name=name,
            phone=phone,
            role=role,
            landlord_id=None if landlord is None else int(landlord),
        )
        for pid, home, community, comp, building, unit, room, name, phone, role, landlord in rows
    ]


def add_passes(
    run: Run,
    bump: Bump,
    when: When,
    *,
    issued: Sequence[IssuedPass],
    kid: str,
    now: datetime,
    skip_held: bool = False,
) -> list[str]:
    """Record passes and their holders; one ``directory`` version for them all.

    With ``skip_held``, a pass whose holder already holds a live pass of its kind is
    left out (checked in this transaction, so two bulk runs at once issue each person
    one pass). Returns the ids of the passes recorded, in order.
    """
    if skip_held:
        held = {
            kind: live_holders(run, when, kind, now)
            for kind in {fields.kind.value for fields, _, holder in issued if holder is not None}
        }
        issued = [
            (fields, text, holder)
            for fields, text, holder in issued
            if holder is None or holder not in held[fields.kind.value]
        ]
    if not issued:
        return []
    for fields, text, holder in issued:
        if run("SELECT 1 FROM passes WHERE pass_id = ?", (fields.pass_id,)):
            raise Conflict(f"pass {fields.pass_id} was issued already: reissue it under a new id")
        quota = fields.exit_quota
        run(
            "INSERT INTO passes(pass_id, kind, household_id, scope, valid_from, valid_until,"
            " display_name, unit, exit_quota, key_id, text, issued_at, once)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fields.pass_id,
                fields.kind.value,
                fields.household_id,
                str(fields.scope),
                when(fields.valid_from),
                when(fields.valid_until),
                fields.display_name,
                fields.unit,
                f"{quota.exits}/{quota.days}" if quota else None,
                kid,
                text,
                when(now),
                fields.once,
            ),
        )
        if holder is not None:
            run(
                "INSERT INTO pass_holders(pass_id, person_id) VALUES (?, ?)",
                (fields.pass_id, holder),
            )
    recorded = [fields.pass_id for fields, _, _ in issued]
    bump("directory", *recorded)
    return recorded


def live_holders(run: Run, when: When, kind: str, now: datetime) -> set[int]:
    """Persons holding an unrevoked pass of ``kind`` valid after ``now``."""
    rows = run(
        "SELECT h.person_id FROM pass_holders h JOIN passes p ON p.pass_id = h.pass_id"
        " WHERE p.kind = ? AND p.revoked_at IS NULL AND p.valid_until > ?",
        (kind, when(now)),
    )
    return {int(row[0]) for row in rows}


def replace_pass(
    run: Run,
    bump: Bump,
    when: When,
    *,
    old_id: str,
    new: IssuedPass,
    kid: str,
    reason: str,
    now: datetime,
) -> None:
    """Record the successor (with the old pass's holder) and revoke the old pass."""
    found = run("SELECT revoked_at FROM passes WHERE pass_id = ?", (old_id,))
    if not found:
        raise NotFound(f"no pass {old_id}")
    if found[0][0] is not None:
        raise Conflict(f"pass {old_id} is revoked already: issue a new pass instead")
    holder = run("SELECT person_id FROM pass_holders WHERE pass_id = ?", (old_id,))
    fields, text, _ = new
    add_passes(
        run,
        bump,
        when,
        issued=[(fields, text, int(holder[0][0]) if holder else None)],
        kid=kid,
        now=now,
    )
    run(
        "UPDATE passes SET revoked_at = ?, revoke_reason = ? WHERE pass_id = ?",
        (when(now), reason, old_id),
    )
    bump("revocations", old_id)
    bump("directory", old_id)
