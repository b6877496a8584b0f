"""The issuer-side central store on PostgreSQL (psycopg 3): the same semantics as SQLite's.

Several ``gate-sync serve`` replicas over one database share issuing, revoking,
isolations, settings and the list versions: every change and its list's version bump
(with the ``list_changes`` rows a delta is made from) commit in one transaction. The
version row is updated with ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, whose
row lock orders concurrent bumps of one list; a pass id is claimed by its primary key,
so two issuers cannot both record it.

The tables can share a database and schema with the stream store's (one DSN for the
whole centre); their migrations are numbered on their own in ``central_schema_version``.
Times are ``timestamptz`` in the database and UTC ISO 8601 text out of it, as the SQLite
store returns them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gate_agent.core.passes import PassFields, key_id
from sync.errors import Conflict, NotFound
from sync.store import admins_sql, compounds_sql, residents_sql, visitors_sql
from sync.store.central import (
    Household,
    ImportSummary,
    IssuedPass,
    Person,
)
from sync.store.central_postgres_reads import PostgresCentralReads, first_value, runner
from sync.store.postgres_base import (
    Migrations,
    Row,
    aware,
    psycopg,
)

#: A smaller pool than the streams': issuing is rare, list reads are cached per version.
CENTRAL_POOL_SIZE = 4
#: The columns of a ``PassRow``, in its order.


_MIGRATIONS: Migrations = (
    (
        """CREATE TABLE issuer_keys (
            kid text COLLATE "C" PRIMARY KEY,
            -- insertion order, for keys created in the same microsecond
            added bigint GENERATED ALWAYS AS IDENTITY,
            public_key bytea NOT NULL,
            created_at timestamptz NOT NULL,
            retired_at timestamptz
        )""",
        """CREATE TABLE passes (
            pass_id text COLLATE "C" PRIMARY KEY,
            kind text NOT NULL,
            household_id text COLLATE "C" NOT NULL,
            scope text NOT NULL,
            valid_from timestamptz NOT NULL,
            valid_until timestamptz NOT NULL,
            display_name text NOT NULL,
            unit text NOT NULL,
            exit_quota text,
            key_id text COLLATE "C" NOT NULL REFERENCES issuer_keys(kid),
            text text NOT NULL,
            issued_at timestamptz NOT NULL,
            revoked_at timestamptz,
            revoke_reason text
        )""",
        "CREATE INDEX passes_household ON passes(household_id)",
        """CREATE TABLE isolations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            household_id text COLLATE "C" NOT NULL,
            starts_at timestamptz NOT NULL,
            ends_at timestamptz NOT NULL,
            note text NOT NULL,
            created_at timestamptz NOT NULL,
            lifted_at timestamptz
        )""",
        "CREATE INDEX isolations_household ON isolations(household_id)",
        """CREATE TABLE list_versions (
            name text COLLATE "C" PRIMARY KEY,
            version bigint NOT NULL
        )""",
        """CREATE TABLE list_changes (
            name text COLLATE "C" NOT NULL,
            version bigint NOT NULL,
            item_key text COLLATE "C" NOT NULL,
            PRIMARY KEY (name, version, item_key)
        )""",
        # gate_id '' is every gate; a gate's own value wins. Values are JSON text.
        """CREATE TABLE gate_settings (
            gate_id text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            value text NOT NULL,
            set_at timestamptz NOT NULL,
            set_by text NOT NULL,
            PRIMARY KEY (gate_id, key)
        )""",
        # value NULL when the setting was cleared.
        """CREATE TABLE gate_settings_history (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            gate_id text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            value text,
            set_at timestamptz NOT NULL,
            set_by text NOT NULL
        )""",
    ),
    # 2: a rotation plans the old key's retirement for the end of the overlap.
    ("ALTER TABLE issuer_keys ADD COLUMN retire_at timestamptz",),
    # 3: residents, households and who holds which pass (``residents_sql``).
    residents_sql.POSTGRES_MIGRATION,
    # 4: visitor requests and their history; one-time passes (``visitors_sql``).
    visitors_sql.POSTGRES_MIGRATION,
    # 5: compounds' exit quotas and their history (``compounds_sql``).
    compounds_sql.POSTGRES_MIGRATION,
    # 6: admin accounts, their sessions and the audit trail (``admins_sql``).
    admins_sql.POSTGRES_MIGRATION,
)


class PostgresCentralStore(
    admins_sql.AdminStoreMixin,
    visitors_sql.VisitorStoreMixin,
    compounds_sql.CompoundStoreMixin,
    PostgresCentralReads,  # last: its placeholder for compound_quota must not win
):
    """``IssuerStore`` on a PostgreSQL database given by a libpq DSN (tables in its search_path)."""

    MIGRATIONS = _MIGRATIONS
    VERSION_TABLE = "central_schema_version"
    SUBJECT = "central"
    DEFAULT_POOL_SIZE = CENTRAL_POOL_SIZE

    @contextmanager
    def _sql_write(
        self, what: str
    ) -> Iterator[tuple[residents_sql.Run, residents_sql.Bump, residents_sql.When]]:
        """A transaction for the shared SQL modules (``visitors_sql``, ``compounds_sql``)."""
        with self._tx(what) as conn:
            yield runner(conn), partial(self._bump, conn), aware

    @contextmanager
    def _sql_read(self, what: str) -> Iterator[tuple[residents_sql.Run, residents_sql.When]]:
        """A transaction to read in, for the shared SQL modules."""
        with self._tx(what) as conn:
            yield runner(conn), aware

    @contextmanager
    def _admin_tx(self, what: str) -> Iterator[tuple[admins_sql.Run, admins_sql.When]]:
        """A transaction for the admin accounts' SQL (``admins_sql``)."""
        with self._tx(what) as conn:
            yield runner(conn), aware

    @staticmethod
    def _bump(conn: psycopg.Connection[Row], name: str, *changed: str) -> int:
        """Raise a list's version; record the item keys that changed with it."""
        version = int(
            first_value(
                conn.execute(
                    "INSERT INTO list_versions(name, version) VALUES (%s, 1)"
                    " ON CONFLICT (name) DO UPDATE SET version = list_versions.version + 1"
                    " RETURNING version",
                    (name,),
                )
            )
        )
        if changed:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO list_changes(name, version, item_key) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [(name, version, key) for key in changed],
                )
        return version

    # -- list versions ------------------------------------------------------------------

    def raise_version(self, name: str, above: int) -> None:
        """Raise a list's stored version so the next one sent is above ``above``.

        A gate can hold a version the centre does not know only after the centre was
        restored from an older backup; sending it a lower version would be ignored.
        """
        with self._tx("raise list version") as conn:
            conn.execute(
                "INSERT INTO list_versions(name, version) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE"
                " SET version = GREATEST(list_versions.version, excluded.version)",
                (name, above),
            )
            # Older change records cannot describe a delta across the jump.
            conn.execute("DELETE FROM list_changes WHERE name = %s", (name,))

    # -- keys and passes ----------------------------------------------------------------

    def add_key(self, public_key: bytes, now: datetime) -> str:
        """Record a new issuer public key; returns its key id."""
        kid = key_id(Ed25519PublicKey.from_public_bytes(public_key))
        with self._tx("add issuer key") as conn:
            conn.execute(
                "INSERT INTO issuer_keys(kid, public_key, created_at) VALUES (%s, %s, %s)",
                (kid, public_key, aware(now)),
            )
            self._bump(conn, "keys")
        return kid

    def rotate_key(self, public_key: bytes, retire_at: datetime, now: datetime) -> list[str]:
        """Record a new key and plan every other active key's retirement at ``retire_at``."""
        kid = key_id(Ed25519PublicKey.from_public_bytes(public_key))
        at = aware(retire_at)
        with self._tx("rotate issuer key") as conn:
            conn.execute(
                "INSERT INTO issuer_keys(kid, public_key, created_at) VALUES (%s, %s, %s)",
                (kid, public_key, aware(now)),
            )
            rows = conn.execute(
                "UPDATE issuer_keys SET retire_at = %s"
                " WHERE kid <> %s AND retired_at IS NULL"
                " AND (retire_at IS NULL OR retire_at > %s) RETURNING kid",
                (at, kid, at),
            ).fetchall()
            self._bump(conn, "keys")
        return sorted(str(row[0]) for row in rows)

    def retire_key(self, kid: str, at: datetime, now: datetime) -> bool:
        """Retire a key at ``at``: recorded at once when ``at <= now``, else planned."""
        with self._tx("retire issuer key") as conn:
            found = conn.execute(
                "SELECT retired_at FROM issuer_keys WHERE kid = %s FOR UPDATE", (kid,)
            ).fetchone()
            if found is None:
                raise NotFound(f"no issuer key {kid}")
            if found[0] is not None:
                return False
            if at <= now:
                conn.execute(
                    "UPDATE issuer_keys SET retired_at = %s WHERE kid = %s", (aware(at), kid)
                )
            else:
                conn.execute(
                    "UPDATE issuer_keys SET retire_at = %s WHERE kid = %s", (aware(at), kid)
                )
            self._bump(conn, "keys")
        return True

    def retire_due_keys(self, now: datetime) -> list[str]:
        """Record as retired (at their planned time) the keys whose ``retire_at`` has come.

        The UPDATE's row locks decide between servers noticing at once: the second waits,
        re-reads ``retired_at IS NULL`` as false, retires nothing and bumps nothing.
        """
        moment = aware(now)
        with self._tx("retire due issuer keys") as conn:
            due = conn.execute(
                "SELECT 1 FROM issuer_keys WHERE retired_at IS NULL AND retire_at <= %s LIMIT 1",
                (moment,),
            ).fetchone()
            if due is None:
                return []
            rows = conn.execute(
                "UPDATE issuer_keys SET retired_at = retire_at"
                " WHERE retired_at IS NULL AND retire_at <= %s RETURNING kid",
                (moment,),
            ).fetchall()
            if rows:
                self._bump(conn, "keys")
        return sorted(str(row[0]) for row in rows)

    def add_pass(self, fields: PassFields, text: str, kid: str, now: datetime) -> None:
        """Record an issued pass."""
        quota = fields.exit_quota
        with self._tx("add pass") as conn:
            # The primary key claims the id: two issuers cannot both record it.
            added = conn.execute(
                "INSERT INTO passes(pass_id, kind, household_id, scope, valid_from, valid_until,"
                " display_name, unit, exit_quota, key_id, text, issued_at, once)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (pass_id) DO NOTHING",
                (
                    fields.pass_id,
                    fields.kind.value,
                    fields.household_id,
                    str(fields.scope),
                    aware(fields.valid_from),
                    aware(fields.valid_until),
                    fields.display_name,
                    fields.unit,
                    f"{quota.exits}/{quota.days}" if quota else None,
                    kid,
                    text,
                    aware(now),
                    fields.once,
                ),
            ).rowcount
            if not added:
                raise Conflict(
                    f"pass {fields.pass_id} was issued already: reissue it under a new id"
                )
            self._bump(conn, "directory", fields.pass_id)

    def revoke(self, pass_id: str, reason: str, now: datetime) -> bool:
        """Revoke a pass; False when it was already revoked. NotFound when unknown."""
        with self._tx("revoke pass") as conn:
            found = conn.execute(
                "SELECT revoked_at FROM passes WHERE pass_id = %s FOR UPDATE", (pass_id,)
            ).fetchone()
            if found is None:
                raise NotFound(f"no pass {pass_id}")
            if found[0] is not None:
                return False
            conn.execute(
                "UPDATE passes SET revoked_at = %s, revoke_reason = %s WHERE pass_id = %s",
                (aware(now), reason, pass_id),
            )
            self._bump(conn, "revocations", pass_id)
            self._bump(conn, "directory", pass_id)
        return True

    # -- isolations ---------------------------------------------------------------------

    def isolate(
        self, household_id: str, start: datetime, end: datetime, note: str, now: datetime
    ) -> int:
        """Put a household in home isolation from ``start`` until ``end``; returns its id."""
        if end <= start:
            raise ValueError("the isolation must end after it starts")
        with self._tx("isolate household") as conn:
            made = first_value(
                conn.execute(
                    "INSERT INTO isolations(household_id, starts_at, ends_at, note, created_at)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (household_id, aware(start), aware(end), note, aware(now)),
                )
            )
            self._bump(conn, "isolations")
        return int(made)

    def lift_isolation(self, household_id: str, now: datetime) -> int:
        """End a household's current and future isolations now; the history stays."""
        moment = aware(now)
        with self._tx("lift isolation") as conn:
            changed = conn.execute(
                "UPDATE isolations SET lifted_at = %s WHERE household_id = %s"
                " AND lifted_at IS NULL AND ends_at > %s",
                (moment, household_id, moment),
            ).rowcount
            if changed:
                self._bump(conn, "isolations")
        if not changed:
            raise NotFound(f"household {household_id} is not in isolation")
        return int(changed)

    # -- gate settings ------------------------------------------------------------------

    def set_setting(self, gate_id: str, key: str, value: object, *, by: str, now: datetime) -> None:
        """Set a gate setting (``gate_id`` '' for every gate); ``value`` None clears it."""
        text = None if value is None else json.dumps(value)
        moment = aware(now)
        with self._tx("set gate setting") as conn:
            if text is None:
                conn.execute(
                    "DELETE FROM gate_settings WHERE gate_id = %s AND key = %s", (gate_id, key)
                )
            else:
                conn.execute(
                    "INSERT INTO gate_settings(gate_id, key, value, set_at, set_by)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (gate_id, key) DO UPDATE"
                    " SET value = excluded.value, set_at = excluded.set_at,"
                    " set_by = excluded.set_by",
                    (gate_id, key, text, moment, by),
                )
            conn.execute(
                "INSERT INTO gate_settings_history(gate_id, key, value, set_at, set_by)"
                " VALUES (%s, %s, %s, %s, %s)",
                (gate_id, key, text, moment, by),
            )
            self._bump(conn, "settings")

    # -- directory ----------------------------------------------------------------------

    # -- residents and bulk passes (the SQL is in ``residents_sql``) -------------------------

    def import_residents(
        self,
        households: Sequence[Household],
        persons: Sequence[Person],
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> ImportSummary:
        """Add or update households and persons in one transaction (none on a dry run)."""
        try:
            with self._tx("import residents") as conn:
                summary = residents_sql.import_residents(
                    runner(conn), households, persons, aware(now)
                )
                if dry_run:
                    raise _Rollback(summary)
        except _Rollback as rollback:
            return rollback.summary
        return summary

    def add_passes(
        self, issued: Sequence[IssuedPass], kid: str, now: datetime, *, skip_held: bool = False
    ) -> list[str]:
        """Record several issued passes and their holders in one transaction, one version."""
        with self._tx("add passes") as conn:
            if skip_held:
                # One bulk run of a kind at a time from here to commit: the holders read
                # next include every pass another run has recorded.
                for kind in sorted({fields.kind.value for fields, _, _ in issued}):
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"bulk:{kind}",))
            return residents_sql.add_passes(
                runner(conn),
                partial(self._bump, conn),
                aware,
                issued=issued,
                kid=kid,
                now=now,
                skip_held=skip_held,
            )

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
        """Record ``fields`` as the successor of ``old_id`` and revoke the old one, at once."""
        with self._tx("replace pass") as conn:
            # Locks the old pass's row: two reissues of one pass cannot both succeed.
            conn.execute("SELECT 1 FROM passes WHERE pass_id = %s FOR UPDATE", (old_id,))
            residents_sql.replace_pass(
                runner(conn),
                partial(self._bump, conn),
                aware,
                old_id=old_id,
                new=(fields, text, None),
                kid=kid,
                reason=reason,
                now=now,
            )


class _Rollback(Exception):
    """Ends a dry run's transaction, carrying what it would have done."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__("dry run")
        self.summary = summary
