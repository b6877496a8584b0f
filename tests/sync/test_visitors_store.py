"""Visitor requests and passes at the centre: SQLite and PostgreSQL answer alike."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gate_agent.core.passes import PassKind, Scope, VerifiedPass, verify
from sync import ledgers, visitors
from sync.cards import store_keyring
from sync.errors import NotFound, VisitorRefused
from sync.issuer import Issuer
from sync.store import SqliteCentralStore
from sync.store.central import Household, Person
from sync.store.visitors_sql import VisitorDraft
from tests.sync.stream_helpers import STORES, open_central, open_streams, store_dsn

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
HOST = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")


def draft(**change: object) -> VisitorDraft:
    base = VisitorDraft(
        household_id=HOST.household_id,
        name="赵小燕",
        phone="13700000001",
        reason="探望老人",
        plate="京A12345",
        start=NOW + timedelta(hours=1),
        end=NOW + timedelta(hours=9),
        once=True,
        requested_by="王小明",
    )
    return replace(base, **change)  # type: ignore[arg-type]


def setup(issuer: Issuer) -> None:
    issuer.new_key(NOW)
    issuer.store.import_residents(
        [HOST], [Person(HOST.household_id, "王小明", "1", "resident")], NOW
    )


@pytest.fixture(params=STORES)
def issuer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuer]:
    store = open_central(tmp_path, store_dsn(request))
    try:
        made = Issuer(tmp_path, store)
        setup(made)
        yield made
    finally:
        store.close()


def test_a_request_approved_issues_a_signed_visitor_pass(issuer: Issuer) -> None:
    asked = visitors.request(issuer, draft(), NOW)
    assert (asked.state, asked.pass_id, asked.name, asked.plate) == (
        "pending", None, "赵小燕", "京A12345"
    )  # fmt: skip
    assert [r.request_id for r in issuer.store.visitor_requests(pending=True)] == [asked.request_id]
    done, text = visitors.approve(issuer, asked.request_id, "社区李四", NOW)
    assert (done.state, done.decided_by, done.direct) == ("approved", "社区李四", False)
    scanned = verify(text, store_keyring(issuer.store))
    assert isinstance(scanned, VerifiedPass)
    fields = scanned.fields
    assert fields.pass_id == done.pass_id
    assert (fields.kind, fields.household_id, fields.scope) == (
        PassKind.VISITOR, HOST.household_id, Scope.parse("compound:C1")
    )  # fmt: skip
    assert (fields.display_name, fields.unit, fields.once) == ("赵*燕", "3-2-501", True)
    assert (fields.valid_from, fields.valid_until) == (
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=9),
    )
    assert issuer.store.get_pass(fields.pass_id).text == text
    assert issuer.store.visitor_requests(pending=True) == []
    assert [e.state for e in issuer.store.visitor_history(asked.request_id)] == [
        "pending",
        "approved",
    ]
    # A one-time pass is not in the directory a guard looks people up in.
    assert fields.pass_id not in {row.pass_id for row in issuer.store.directory(NOW)}


def test_a_pass_that_is_not_one_time_is_in_the_directory(issuer: Issuer) -> None:
    done, _ = visitors.issue(issuer, draft(once=False, requested_by="管理员"), NOW)
    assert done.direct and done.state == "approved" and done.decided_by == "管理员"
    assert done.pass_id in {row.pass_id for row in issuer.store.directory(NOW)}
    assert [(e.state, e.note) for e in issuer.store.visitor_history(done.request_id)] == [
        ("pending", ""), ("approved", "issued directly")
    ]  # fmt: skip


def test_approving_twice_issues_once(issuer: Issuer) -> None:
    asked = visitors.request(issuer, draft(), NOW)
    visitors.approve(issuer, asked.request_id, "甲", NOW)
    with pytest.raises(VisitorRefused) as refused:
        visitors.approve(issuer, asked.request_id, "乙", NOW)
    assert refused.value.code == "already_decided"
    # The store refuses too, when the service's first look is passed by a race.
    fields = visitors.pass_fields(
        issuer, HOST.household_id, "赵小燕", start=NOW, end=NOW + timedelta(hours=1), once=True
    )
    with pytest.raises(VisitorRefused, match="approved already"):
        issuer.store.approve_visitor_request(
            asked.request_id, (fields, "GP1:X", None), "K", by="乙", now=NOW
        )
    assert len(issuer.store.household_passes([HOST.household_id])) == 1


def test_rejected_and_cancelled_requests_stay_decided(issuer: Issuer) -> None:
    one = visitors.request(issuer, draft(), NOW)
    two = visitors.request(issuer, draft(name="钱多多"), NOW)
    rejected = visitors.reject(issuer, one.request_id, "住户未确认", "社区李四", NOW)
    assert (rejected.state, rejected.note, rejected.pass_id) == ("rejected", "住户未确认", None)
    visitors.cancel(issuer, two.request_id, "来访取消", "王小明", NOW)
    for request_id in (one.request_id, two.request_id):
        for act in (
            lambda rid=request_id: visitors.approve(issuer, rid, "甲", NOW),
            lambda rid=request_id: visitors.reject(issuer, rid, "x", "甲", NOW),
        ):
            with pytest.raises(VisitorRefused) as refused:
                act()
            assert refused.value.code == "already_decided"
    assert issuer.store.household_passes([HOST.household_id]) == []
    assert [r.state for r in issuer.store.visitor_requests(household_id=HOST.household_id)] == [
        "rejected", "cancelled"
    ]  # fmt: skip
    with pytest.raises(NotFound):
        visitors.approve(issuer, 999, "甲", NOW)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"household_id": "C9-NOBODY"}, "unknown_host"),
        ({"end": NOW + timedelta(days=7, hours=2)}, "too_long"),
        ({"end": NOW + timedelta(hours=1)}, "bad_period"),
        ({"start": NOW - timedelta(hours=5), "end": NOW - timedelta(hours=1)}, "bad_period"),
        ({"name": "  "}, "missing"),
        ({"phone": ""}, "missing"),
        ({"requested_by": ""}, "missing"),
        ({"reason": "x\ny"}, "bad_text"),
    ],
)
def test_bad_requests_are_refused_with_a_code(
    issuer: Issuer, change: dict[str, object], code: str
) -> None:
    with pytest.raises(VisitorRefused) as refused:
        visitors.request(issuer, draft(**change), NOW)
    assert refused.value.code == code
    assert issuer.store.visitor_requests() == []


def test_a_seven_day_visit_is_the_longest(issuer: Issuer) -> None:
    done, _ = visitors.issue(issuer, draft(end=NOW + timedelta(days=7, hours=1)), NOW)
    assert done.state == "approved"


def test_a_host_in_isolation_during_the_visit_is_refused(issuer: Issuer) -> None:
    asked = visitors.request(issuer, draft(), NOW)
    # Isolated from the fifth hour: the visit (hours 1-9) overlaps it.
    issuer.store.isolate(
        HOST.household_id, NOW + timedelta(hours=5), NOW + timedelta(days=14), "", NOW
    )
    for act in (
        lambda: visitors.approve(issuer, asked.request_id, "甲", NOW),
        lambda: visitors.issue(issuer, draft(), NOW),
        lambda: visitors.request(issuer, draft(), NOW),
    ):
        with pytest.raises(VisitorRefused) as refused:
            act()
        assert refused.value.code == "host_in_isolation"
    assert issuer.store.visitor_request(asked.request_id).state == "pending"
    # A visit over before the isolation starts is fine.
    early = draft(start=NOW + timedelta(hours=1), end=NOW + timedelta(hours=4))
    assert visitors.issue(issuer, early, NOW)[0].state == "approved"
    issuer.store.lift_isolation(HOST.household_id, NOW)
    assert visitors.approve(issuer, asked.request_id, "甲", NOW)[0].state == "approved"


def test_visitor_passes_are_listed_by_visit_time(issuer: Issuer) -> None:
    first, _ = visitors.issue(issuer, draft(), NOW)
    later = draft(start=NOW + timedelta(days=2), end=NOW + timedelta(days=2, hours=3))
    second, _ = visitors.issue(issuer, later, NOW)
    visitors.request(issuer, draft(name="未批准"), NOW)
    assert [r.request_id for r in issuer.store.visitor_passes(None, None)] == [
        first.request_id, second.request_id
    ]  # fmt: skip
    window = issuer.store.visitor_passes(NOW + timedelta(days=1), NOW + timedelta(days=3))
    assert [r.request_id for r in window] == [second.request_id]


def test_an_older_sqlite_file_gains_the_visitor_tables(tmp_path: Path) -> None:
    path = tmp_path / "central.sqlite3"
    with SqliteCentralStore(path) as made:
        made.add_key(bytes(range(32)), NOW)
    # As a file from before visitor passes: no once column, no visitor tables.
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE visitor_request_history; DROP TABLE visitor_requests;"
        " ALTER TABLE passes DROP COLUMN once;"
    )
    db.close()
    with SqliteCentralStore(path) as store:
        issuer = Issuer(tmp_path, store)
        setup(issuer)
        done, _ = visitors.issue(issuer, draft(), NOW)
        assert store.visitor_request(done.request_id).state == "approved"
        assert done.pass_id not in {row.pass_id for row in store.directory(NOW)}


def test_two_approvers_at_once_on_postgresql_issue_one_pass(
    postgres_dsn: str, tmp_path: Path
) -> None:
    import psycopg

    from sync.store import visitors_sql
    from sync.store.central_postgres import PostgresCentralStore
    from sync.store.postgres_base import aware

    store = PostgresCentralStore(postgres_dsn)
    try:
        issuer = Issuer(tmp_path, store)
        setup(issuer)
        asked = visitors.request(issuer, draft(), NOW)
        first = visitors.pass_fields(
            issuer, HOST.household_id, "赵小燕", start=NOW, end=NOW + timedelta(hours=2), once=True
        )
        second = replace(first, pass_id="SECOND2345")
        outcome: list[BaseException | None] = []
        # The first approver's transaction, held open on a connection of its own.
        with psycopg.connect(postgres_dsn, autocommit=False) as conn:

            def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cursor = conn.execute(sql.replace("?", "%s"), tuple(params))
                return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

            bump = partial(PostgresCentralStore._bump, conn)
            visitors_sql.approve(
                run, bump, aware, request_id=asked.request_id, issued=(first, "GP1:A", None),
                kid=store.issuer_keys()[0].kid, by="甲", now=NOW,
            )  # fmt: skip

            def approve_second() -> None:
                try:
                    store.approve_visitor_request(
                        asked.request_id, (second, "GP1:B", None), store.issuer_keys()[0].kid,
                        by="乙", now=NOW,
                    )  # fmt: skip
                    outcome.append(None)
                except BaseException as exc:  # noqa: BLE001 - looked at below
                    outcome.append(exc)

            worker = threading.Thread(target=approve_second)
            worker.start()
            with psycopg.connect(postgres_dsn, autocommit=True) as watcher:
                while not watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'UPDATE visitor_requests%%'"
                ).fetchone():
                    assert worker.is_alive(), outcome
                    time.sleep(0.01)
            conn.commit()
        worker.join()
        assert isinstance(outcome[0], VisitorRefused) and outcome[0].code == "already_decided"
        assert [p.pass_id for p in store.household_passes([HOST.household_id])] == [first.pass_id]
        assert store.visitor_request(asked.request_id).pass_id == first.pass_id
    finally:
        store.close()


def test_the_visitors_ledger_lists_the_passes_issued(
    issuer: Issuer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    done, _ = visitors.issue(issuer, draft(requested_by="管理员"), NOW)
    asked = visitors.request(issuer, draft(name="钱多多", once=False, plate=""), NOW)
    approved, _ = visitors.approve(issuer, asked.request_id, "社区李四", NOW)
    visitors.request(issuer, draft(name="未批准"), NOW)
    assert approved.pass_id is not None
    issuer.store.revoke(approved.pass_id, "来访取消", NOW)
    postgres = request.node.callspec.params["issuer"] == "postgres"
    dsn = str(request.getfixturevalue("postgres_dsn")) if postgres else None
    with closing(open_streams(tmp_path, dsn)) as streams:
        rows = list(ledgers.ledger_table("visitors", streams, issuer.store).rows)
        window = ledgers.ledger_table(
            "visitors", streams, issuer.store, NOW + timedelta(days=1), NOW + timedelta(days=2)
        )
        assert list(window.rows) == []
    assert [(r["source"], r["name"], r["phone"], r["outcome"]) for r in rows] == [
        ("访客证 pass", "赵小燕", "13700000001", "approved"),
        ("访客证 pass", "钱多多", "13700000001", "revoked"),
    ]
    first, second = rows
    assert (first["household_id"], first["plate"], first["pass_id"]) == (
        HOST.household_id, "京A12345", done.pass_id
    )  # fmt: skip
    assert "一次性 once" in first["note"] and "直接签发 issued directly" in first["note"]
    assert "批准 approved by 社区李四" in second["note"] and "来访取消" in second["note"]


def test_a_postgres_centre_from_before_visitors_is_upgraded(
    postgres_dsn: str, tmp_path: Path
) -> None:
    import psycopg

    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as store:
        setup(Issuer(tmp_path, store))
    with psycopg.connect(postgres_dsn) as conn:  # back to migration 3, residents in it
        conn.execute("DROP TABLE admin_audit, admin_sessions, admin_accounts")  # 6's
        conn.execute("DROP TABLE compound_quotas, compound_quota_history")  # 5's
        conn.execute("DROP TABLE visitor_request_history, visitor_requests")
        conn.execute("ALTER TABLE passes DROP COLUMN once")
        conn.execute("DELETE FROM central_schema_version WHERE version >= 4")
    with PostgresCentralStore(postgres_dsn) as store:
        assert store.schema_version == len(PostgresCentralStore.MIGRATIONS)
        done, _ = visitors.issue(Issuer(tmp_path, store), draft(), NOW)
        assert store.visitor_request(done.request_id).state == "approved"
