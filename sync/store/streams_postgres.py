"""Central stream storage on PostgreSQL (psycopg 3): the same semantics as the SQLite store.

Ingest is one transaction per batch. The stream's row is created if new and locked
(``SELECT ... FOR UPDATE``), so batches of one stream are applied one at a time while
other streams go on in parallel; the stream's cursor, its entries, the gate's health
and the sync log then move together or not at all.

``ingest_id`` is commit-ordered: the ids come from a one-row counter
(``UPDATE ingest_counter ... RETURNING``) taken as the last step before the rows are
written and the transaction commits. The counter's row lock is held until the commit,
so a later id is never visible before an earlier one, and an admin paging entries by
``ingest_id`` while gates upload never skips or repeats a row. (A sequence would hand
out ids in start order and commit them in any order.) Everything else, validation
included, is done before the counter is taken, so the serialised window is only the
rows' ``COPY`` and the commit.

Connections come from a small ``psycopg_pool`` pool, because the server runs its sync
endpoints in a thread pool. Every database error becomes ``StoreError`` (the server
answers 503 with Retry-After). The schema is created or migrated when the store opens
(numbered migrations recorded in ``schema_version``, under an advisory lock so that
replicas starting together do not race).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import LiteralString

from gate_agent.core.chain import genesis_hash
from sync.protocol import Ack, Batch, StreamConflict
from sync.store.checks import (
    PURGE_CHUNK,
    clock_offset_ms,
    judge_batch,
    new_entries,
    without_personal,
)
from sync.store.postgres_base import Migrations, Row, aware, one, psycopg, text
from sync.store.streams import (
    check_place,
)
from sync.store.streams_postgres_reads import PostgresStreamReads

logger = logging.getLogger(__name__)

# Each migration is a list of statements applied in one transaction; never edit one
# that has shipped, add the next.
_MIGRATIONS: Migrations = (
    (
        """CREATE TABLE gates (
            gate_id text COLLATE "C" PRIMARY KEY,
            token_hash text UNIQUE,
            enrolled_at timestamptz,
            last_seen timestamptz,
            last_clock_offset_ms bigint,
            last_backlog bigint
        )""",
        """CREATE TABLE enrol_codes (
            code_hash text PRIMARY KEY,
            gate_id text COLLATE "C" NOT NULL REFERENCES gates(gate_id),
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        )""",
        """CREATE TABLE streams (
            gate_id text COLLATE "C" NOT NULL REFERENCES gates(gate_id),
            stream_id text COLLATE "C" NOT NULL,
            stored_through bigint NOT NULL DEFAULT 0 CHECK (stored_through >= 0),
            PRIMARY KEY (gate_id, stream_id)
        )""",
        """CREATE TABLE entries (
            ingest_id bigint PRIMARY KEY,
            gate_id text COLLATE "C" NOT NULL,
            stream_id text COLLATE "C" NOT NULL,
            seq bigint NOT NULL CHECK (seq >= 1),
            hash text NOT NULL,
            prev_hash text,
            content text NOT NULL,
            flagged boolean NOT NULL,
            problem text,
            wall_time text,
            corrected_time timestamptz,
            received_at timestamptz NOT NULL,
            UNIQUE (gate_id, stream_id, seq),
            FOREIGN KEY (gate_id, stream_id) REFERENCES streams(gate_id, stream_id)
        )""",
        """CREATE TABLE sync_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            gate_id text COLLATE "C" NOT NULL,
            stream_id text COLLATE "C" NOT NULL,
            first_seq bigint NOT NULL,
            last_seq bigint NOT NULL,
            count integer NOT NULL,
            result text NOT NULL,
            at timestamptz NOT NULL
        )""",
        "CREATE INDEX sync_log_gate ON sync_log(gate_id, id)",
        # One row: the last ingest_id handed out. Its row lock orders ids by commit.
        """CREATE TABLE ingest_counter (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            last_id bigint NOT NULL CHECK (last_id >= 0)
        )""",
        "INSERT INTO ingest_counter(singleton, last_id) VALUES (true, 0)",
    ),
    # 2: indexes of traces (sync/trace.py), on expressions, so ingest writes the same
    # rows as ever. An entry's time is its corrected time, else its wall time when that
    # is an ISO time with an offset (flagged entries may hold anything: never an error,
    # and a time with its offset given reads the same whatever the session's zone, so
    # the function is truly immutable).
    (
        """CREATE FUNCTION gate_entry_time(corrected timestamptz, wall text)
        RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        BEGIN
            IF corrected IS NOT NULL THEN
                RETURN corrected;
            END IF;
            IF wall IS NULL
                OR wall !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+([+-][0-9]{2}(:?[0-9]{2})?|Z)$'
            THEN
                RETURN NULL;
            END IF;
            BEGIN
                RETURN wall::timestamptz;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END;
        END
        $$""",
        "CREATE INDEX entries_gate_time"
        " ON entries(gate_id, gate_entry_time(corrected_time, wall_time))",
        "CREATE INDEX entries_time ON entries(gate_entry_time(corrected_time, wall_time))",
        # jsonb cannot hold a NUL character (a flagged entry may carry its escape): such
        # an entry is left out of these two indexes rather than failing its batch.
        """CREATE FUNCTION gate_entry_json(content text)
        RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN strpos(content, '\\u0000') = 0 THEN content::jsonb END
        $$""",
        "CREATE INDEX entries_pass ON entries((gate_entry_json(content) ->> 'pass_id'))",
        "CREATE INDEX entries_household ON entries((gate_entry_json(content) ->> 'household_id'))",
    ),
    # 3: where each gate is, and the indexes of the compound lists (alerts, passages).
    (
        'ALTER TABLE gates ADD COLUMN compound text COLLATE "C",'
        ' ADD COLUMN community text COLLATE "C"',
        "CREATE INDEX gates_compound ON gates(compound)",
        "CREATE INDEX entries_gate_reason ON entries(gate_id,"
        " (gate_entry_json(content) ->> 'reason'), gate_entry_time(corrected_time, wall_time))",
        "CREATE INDEX entries_gate_passage ON entries(gate_id,"
        " (gate_entry_json(content) ->> 'pass_kind'), (gate_entry_json(content) ->> 'direction'),"
        " gate_entry_time(corrected_time, wall_time))",
    ),
    # 4: gate_entry_time enters an exception block (a subtransaction), which a parallel
    # worker may not start: a large trace or count planned in parallel failed. Restricted
    # functions run in the leader only; the indexes on them stay as they are.
    ("ALTER FUNCTION gate_entry_time(timestamptz, text) PARALLEL RESTRICTED",),
    # 5: the retention purge finds the entries still holding personal data by time.
    (
        "CREATE INDEX entries_personal_time ON entries(gate_entry_time(corrected_time, wall_time))"
        " WHERE (gate_entry_json(content) ->> 'personal') IS NOT NULL",
    ),
)
_PERSONAL_BEFORE: LiteralString = (
    " FROM entries WHERE (gate_entry_json(content) ->> 'personal') IS NOT NULL"
    " AND gate_entry_time(corrected_time, wall_time) < %s"
)
_COUNT_PERSONAL: LiteralString = "SELECT COUNT(*)" + _PERSONAL_BEFORE
_PURGE_BATCH: LiteralString = (
    "SELECT ingest_id, content" + _PERSONAL_BEFORE + " LIMIT %s FOR UPDATE"
)

_COPY_ENTRIES: LiteralString = (
    "COPY entries (ingest_id, gate_id, stream_id, seq, hash, prev_hash, content, flagged,"
    " problem, wall_time, corrected_time, received_at) FROM STDIN"
)


class PostgresStreamStore(PostgresStreamReads):
    """``StreamStore`` on a PostgreSQL database given by a libpq DSN (tables in its search_path)."""

    MIGRATIONS = _MIGRATIONS
    VERSION_TABLE = "schema_version"
    SUBJECT = "stream"

    # -- gates and enrolment ------------------------------------------------------------

    def add_enrol_code(self, gate_id: str, code_hash: str, expires_at: datetime) -> None:
        """Record a one-time enrolment code (its hash) for a gate, creating the gate."""
        with self._tx("add enrol code") as conn:
            conn.execute(
                "INSERT INTO gates(gate_id) VALUES (%s) ON CONFLICT DO NOTHING", (gate_id,)
            )
            conn.execute(
                "INSERT INTO enrol_codes(code_hash, gate_id, expires_at) VALUES (%s, %s, %s)",
                (code_hash, gate_id, aware(expires_at)),
            )

    def enrol(
        self,
        gate_id: str,
        code_hash: str,
        token_hash: str,
        now: datetime,
        *,
        compound: str | None = None,
        community: str | None = None,
    ) -> bool:
        """Consume a valid code and set the gate's token; False when the code is not good.

        A place the centre does not hold yet is recorded; another than the one it holds
        raises ``WrongPlace`` and the transaction (the code's use too) is rolled back.
        """
        now = aware(now)
        with self._tx("enrol") as conn:
            used = conn.execute(
                "UPDATE enrol_codes SET used_at = %s WHERE code_hash = %s AND gate_id = %s"
                " AND used_at IS NULL AND expires_at > %s",
                (now, code_hash, gate_id, now),
            ).rowcount
            if not used:
                return False
            held = conn.execute(
                "SELECT compound, community FROM gates WHERE gate_id = %s FOR UPDATE", (gate_id,)
            ).fetchone()
            if held is None:
                return False  # a code's gate always has a row: never reached
            place = check_place(gate_id, (held[0], held[1]), compound, community)
            # A new enrolment replaces the gate's token: the old one stops working.
            conn.execute(
                "UPDATE gates SET token_hash = %s, enrolled_at = %s, compound = %s,"
                " community = %s WHERE gate_id = %s",
                (token_hash, now, place[0], place[1], gate_id),
            )
        logger.info("gate %s enrolled", gate_id)
        return True

    def set_place(self, gate_id: str, compound: str, community: str | None) -> None:
        """Record where a gate is (creating the gate); ``community`` None keeps the held one."""
        with self._tx("set place") as conn:
            conn.execute(
                "INSERT INTO gates(gate_id, compound, community) VALUES (%s, %s, %s)"
                " ON CONFLICT (gate_id) DO UPDATE SET compound = excluded.compound,"
                " community = COALESCE(%s, gates.community)",
                (gate_id, compound, community, community),
            )

    # -- ingest -------------------------------------------------------------------------

    def ingest(
        self,
        gate_id: str,
        stream_id: str,
        batch: Batch,
        *,
        now: datetime,
        list_versions: Mapping[str, int],
        reference_time: datetime | None = None,
        correct_clock: bool = True,
    ) -> Ack | StreamConflict:
        """Store a batch in one transaction (see docs/sync-protocol.md); the reply to send.

        ``reference_time`` stands for the batch's ``sent_monotonic_ns`` in the clock
        correction (None: ``now``); ``correct_clock=False`` corrects no entry. With a
        ``reference_time`` the batch did not arrive live, so gate health is left alone.
        """
        now = aware(now)
        live = reference_time is None
        reference = aware(reference_time or now) if correct_clock else None
        first = batch.first_seq
        last = first + len(batch.entries) - 1
        with self._tx("ingest") as conn:
            conn.execute(
                "INSERT INTO streams(gate_id, stream_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (gate_id, stream_id),
            )
            # Batches of one stream are applied one at a time from here to the commit.
            stored = int(
                one(
                    conn.execute(
                        "SELECT stored_through FROM streams WHERE gate_id = %s AND stream_id = %s"
                        " FOR UPDATE",
                        (gate_id, stream_id),
                    )
                )
            )
            held: dict[int, tuple[str, bool]] = {}
            if first <= stored:
                held = {
                    int(seq): (str(digest), bool(flag))
                    for seq, digest, flag in conn.execute(
                        "SELECT seq, hash, flagged FROM entries WHERE gate_id = %s"
                        " AND stream_id = %s AND seq BETWEEN %s AND %s",
                        (gate_id, stream_id, first, min(last, stored)),
                    )
                }
            reply, result, rows = self._plan(
                conn,
                batch,
                gate_id=gate_id,
                stream_id=stream_id,
                stored=stored,
                held=held,
                now=now,
                reference=reference,
            )
            if live:
                conn.execute(
                    "UPDATE gates SET last_seen = %s, last_clock_offset_ms = %s,"
                    " last_backlog = %s WHERE gate_id = %s",
                    (now, clock_offset_ms(batch, now), batch.backlog, gate_id),
                )
            conn.execute(
                "INSERT INTO sync_log(gate_id, stream_id, first_seq, last_seq, count, result, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (gate_id, stream_id, first, last, len(rows), result, now),
            )
            if rows:
                conn.execute(
                    "UPDATE streams SET stored_through = %s WHERE gate_id = %s AND stream_id = %s",
                    (last, gate_id, stream_id),
                )
                self._write_entries(conn, rows)
        if isinstance(reply, StreamConflict):
            return reply
        held_flags = [seq for seq, (_, flag) in sorted(held.items()) if flag]
        new_flags = [row[2] for row in rows if row[6]]
        return Ack(
            stored_through=reply,
            flagged=tuple(held_flags + new_flags),
            server_time=now,
            list_versions=dict(list_versions),
        )

    def _plan(
        self,
        conn: psycopg.Connection[Row],
        batch: Batch,
        *,
        gate_id: str,
        stream_id: str,
        stored: int,
        held: Mapping[int, tuple[str, bool]],
        now: datetime,
        reference: datetime | None,
    ) -> tuple[int | StreamConflict, str, list[Row]]:
        """The reply, the sync-log result and the new rows (without their ingest ids)."""
        first = batch.first_seq
        conflict, skip = judge_batch(batch, stored, {seq: h for seq, (h, _) in held.items()})
        if conflict is not None:
            return conflict, conflict.error, []
        if skip == len(batch.entries):
            return stored, "repeat", []
        if stored == 0:
            prev = genesis_hash(stream_id)
        elif stored in held:
            prev = held[stored][0]
        else:
            prev = str(
                one(
                    conn.execute(
                        "SELECT hash FROM entries WHERE gate_id = %s AND stream_id = %s"
                        " AND seq = %s",
                        (gate_id, stream_id, stored),
                    )
                )
            )
        new = new_entries(
            batch, skip, gate_id=gate_id, stream_id=stream_id, prev_hash=prev, reference=reference
        )
        # PostgreSQL text holds no NUL: text() writes one as the six characters \u0000.
        rows: list[Row] = [
            (
                gate_id,
                stream_id,
                e.seq,
                e.hash,
                None if e.prev_hash is None else text(e.prev_hash),
                e.content,
                bool(e.problems),
                text("; ".join(e.problems)) or None,
                None if e.wall_time is None else text(e.wall_time),
                e.corrected_time,
                now,
            )
            for e in new
        ]
        return first + len(batch.entries) - 1, "stored", rows

    @staticmethod
    def _write_entries(conn: psycopg.Connection[Row], rows: Sequence[Row]) -> None:
        """Take the rows' ids from the counter and write them: the last step before COMMIT.

        The counter row stays locked until this transaction commits, so the next
        batch's ids are handed out only after these rows are visible.
        """
        top = int(
            one(
                conn.execute(
                    "UPDATE ingest_counter SET last_id = last_id + %s RETURNING last_id",
                    (len(rows),),
                )
            )
        )
        base = top - len(rows)
        with conn.cursor().copy(_COPY_ENTRIES) as copy:
            for number, row in enumerate(rows, start=base + 1):
                copy.write_row((number, *row))

    # -- reads --------------------------------------------------------------------------

    def stored_through(self, gate_id: str, stream_id: str) -> int:
        """How far the centre holds a stream; 0 for a stream it never saw."""
        with self._tx("read cursor") as conn:
            found = conn.execute(
                "SELECT stored_through FROM streams WHERE gate_id = %s AND stream_id = %s",
                (gate_id, stream_id),
            ).fetchone()
        return 0 if found is None else int(found[0])

    def purge_personal(self, before: datetime, *, dry_run: bool = False) -> int:
        """Blank the personal data of entries older than ``before``, a chunk per transaction."""
        cut = aware(before)
        if dry_run:
            with self._tx("count personal data") as conn:
                return int(one(conn.execute(_COUNT_PERSONAL, (cut,))))
        purged = 0
        while True:
            with self._tx("purge personal data") as conn:
                rows = conn.execute(_PURGE_BATCH, (cut, PURGE_CHUNK)).fetchall()
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "UPDATE entries SET content = %s WHERE ingest_id = %s",
                        [
                            (text(without_personal(content)), ingest_id)
                            for ingest_id, content in rows
                        ],
                    )
            purged += len(rows)
            if len(rows) < PURGE_CHUNK:
                return purged
