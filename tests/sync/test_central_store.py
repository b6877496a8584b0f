"""The issuer-side central store: SQLite and PostgreSQL answer alike; replicas share it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import ExitQuota, PassFields, PassKind, Scope, mask_name
from sync.errors import Conflict, NotFound, StoreError
from sync.store import DirectoryRow, IssuerStore, SqliteCentralStore
from tests.sync.stream_helpers import STORES, open_central, store_dsn

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=2, microseconds=250)


def fields(pass_id: str, *, days: int = 30, kind: PassKind = PassKind.RESIDENT) -> PassFields:
    return PassFields(
        pass_id=pass_id,
        kind=kind,
        household_id="H1",
        scope=Scope.parse("compound:C1"),
        valid_from=NOW,
        valid_until=NOW + timedelta(days=days),
        display_name=mask_name("王小明"),
        unit="1-1-101",
        exit_quota=ExitQuota(1, 2) if kind is PassKind.RESIDENT else None,
    )


def raw_key() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerStore]:
    opened = open_central(tmp_path, store_dsn(request))
    try:
        yield opened
    finally:
        opened.close()


def workout(store: IssuerStore, key: bytes) -> dict[str, Any]:
    """Every method once, in an order that exercises versions, deltas and filters; the answers."""
    seen: dict[str, Any] = {}
    kid = store.add_key(key, NOW)
    store.add_pass(fields("AAAAAA1"), "text-1", kid, NOW)
    store.add_pass(fields("AAAAAA2", days=1), "text-2", kid, NOW)
    store.add_pass(fields("AAAAAA3", kind=PassKind.VEHICLE), "text-3", kid, NOW)
    store.add_pass(fields("AAAAAA4", kind=PassKind.WORKER), "text-4", kid, NOW)
    seen["held"] = store.list_version("directory")
    seen["revoked"] = [store.revoke("AAAAAA1", "lost", LATER), store.revoke("AAAAAA1", "x", NOW)]
    store.revoke("AAAAAA2", "", NOW)
    seen["pass"] = store.get_pass("AAAAAA1")
    seen["keys"] = store.issuer_keys()
    seen["directory"] = store.directory(NOW)
    seen["directory_later"] = store.directory(LATER)
    seen["revocations"] = store.revocations(NOW)
    seen["revocations_later"] = store.revocations(LATER)
    seen["changed"] = store.changed_keys("directory", seen["held"])
    seen["changed_all"] = store.changed_keys("directory", 0)
    seen["changed_revocations"] = store.changed_keys("revocations", 1)
    seen["isolation_id"] = store.isolate("H2", NOW, LATER, "order 7", NOW) > 0
    store.isolate("H3", NOW, NOW + timedelta(hours=1), "", NOW)
    seen["isolations"] = store.isolations(NOW)
    seen["lifted"] = store.lift_isolation("H2", NOW + timedelta(days=1))
    seen["isolations_after"] = store.isolations(NOW)
    store.set_setting("", "mode", "screening", by="ops", now=NOW)
    store.set_setting("", "fever_celsius", 37.5, by="ops", now=NOW)
    store.set_setting("gate-a", "mode", "lockdown", by="ops", now=LATER)
    store.set_setting("gate-a", "screen_exits", True, by="ops", now=LATER)
    store.set_setting("gate-a", "screen_exits", None, by="ops", now=LATER)
    seen["settings"] = store.settings_rows()
    seen["for_a"] = store.settings_for("gate-a")
    seen["for_b"] = store.settings_for("gate-b")
    seen["versions"] = {
        name: store.list_version(name)
        for name in ("keys", "revocations", "isolations", "settings", "directory", "other")
    }
    store.raise_version("directory", 40)
    store.raise_version("keys", 0)
    seen["raised"] = (store.list_version("directory"), store.list_version("keys"))
    seen["changed_after_raise"] = store.changed_keys("directory", 40)
    return seen


def test_both_stores_answer_alike(tmp_path: Path, postgres_dsn: str) -> None:
    key = raw_key()
    with SqliteCentralStore(tmp_path / "central.sqlite3") as lite:
        expected = workout(lite, key)
    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as pg:
        got = workout(pg, key)
    assert got == expected
    # The answers themselves, so that both agreeing on something wrong fails too.
    assert expected["revoked"] == [True, False]
    assert expected["pass"].revoked_at == LATER.isoformat()
    assert expected["pass"].valid_until == "2026-03-31T08:00:00+00:00"
    (listed,) = expected["directory"]
    assert listed == DirectoryRow(
        pass_id="AAAAAA4",
        kind="worker",
        household_id="H1",
        scope="compound:C1",
        valid_from="2026-03-01T08:00:00+00:00",
        valid_until="2026-03-31T08:00:00+00:00",
        display_name=mask_name("王小明"),
        unit="1-1-101",
        exit_quota=None,
    )
    assert expected["directory_later"] == [listed]
    assert expected["revocations"] == [
        ("AAAAAA1", "2026-03-03T08:00:00.000250+00:00", "lost"),
        ("AAAAAA2", "2026-03-01T08:00:00+00:00", ""),
    ]
    assert [pid for pid, _, _ in expected["revocations_later"]] == ["AAAAAA1"]
    assert expected["changed"] == {"AAAAAA1", "AAAAAA2"}
    assert expected["changed_all"] == {"AAAAAA1", "AAAAAA2", "AAAAAA3", "AAAAAA4"}
    assert expected["isolations"] == [
        ("H2", "2026-03-01T08:00:00+00:00", "2026-03-03T08:00:00.000250+00:00"),
        ("H3", "2026-03-01T08:00:00+00:00", "2026-03-01T09:00:00+00:00"),
    ]
    assert (expected["lifted"], expected["isolations_after"]) == (1, [expected["isolations"][1]])
    assert expected["settings"] == [
        ("", "fever_celsius", 37.5, "2026-03-01T08:00:00+00:00", "ops"),
        ("", "mode", "screening", "2026-03-01T08:00:00+00:00", "ops"),
        ("gate-a", "mode", "lockdown", "2026-03-03T08:00:00.000250+00:00", "ops"),
    ]
    assert expected["for_a"] == {"fever_celsius": 37.5, "mode": "lockdown"}
    assert expected["for_b"] == {"fever_celsius": 37.5, "mode": "screening"}
    assert expected["versions"] == {
        "keys": 1, "revocations": 2, "isolations": 3, "settings": 5, "directory": 6, "other": 0,
    }  # fmt: skip
    assert expected["raised"] == (40, 1)
    assert expected["changed_after_raise"] is None


def test_refusals_are_the_same(store: IssuerStore) -> None:
    kid = store.add_key(raw_key(), NOW)
    store.add_pass(fields("AAAAAA1"), "t", kid, NOW)
    before = store.list_version("directory")
    with pytest.raises(Conflict, match="issued already"):
        store.add_pass(fields("AAAAAA1"), "t", kid, NOW)
    assert store.list_version("directory") == before
    with pytest.raises(NotFound):
        store.get_pass("ZZZZZZ9")
    with pytest.raises(NotFound):
        store.revoke("ZZZZZZ9", "x", NOW)
    with pytest.raises(NotFound, match="not in isolation"):
        store.lift_isolation("H9", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.revocations(NOW.replace(tzinfo=None))
    assert store.list_version("revocations") == 0


def test_passes_by_household_and_the_active_ones(store: IssuerStore) -> None:
    kid = store.add_key(raw_key(), NOW)
    other = PassFields(**{**fields("BBBBBB1").__dict__, "household_id": "H2"})
    store.add_pass(other, "text-b1", kid, NOW)
    store.add_pass(fields("AAAAAA2", days=1), "text-2", kid, NOW)
    store.add_pass(fields("AAAAAA1"), "text-1", kid, NOW)
    store.add_pass(fields("AAAAAA3", kind=PassKind.VEHICLE), "text-3", kid, NOW)
    store.revoke("AAAAAA3", "sold the car", LATER)

    h1 = store.household_passes(["H1"])
    # Revoked and expired passes are there too, for the caller to say why it skips them.
    assert [(row.pass_id, row.text) for row in h1] == [
        ("AAAAAA1", "text-1"), ("AAAAAA2", "text-2"), ("AAAAAA3", "text-3"),
    ]  # fmt: skip
    assert h1[2].revoked_at == LATER.isoformat()
    assert h1[2].revoke_reason == "sold the car"
    assert h1[1].valid_until == "2026-03-02T08:00:00+00:00"
    both = store.household_passes(["H2", "H1", "H2", "H9"])
    assert [row.pass_id for row in both] == ["AAAAAA1", "AAAAAA2", "AAAAAA3", "BBBBBB1"]
    assert store.household_passes([]) == []
    assert store.household_passes(["H9"]) == []

    # Vehicles count (a card is printed for them), revoked ones do not.
    assert [row.pass_id for row in store.active_passes(NOW)] == ["AAAAAA1", "AAAAAA2", "BBBBBB1"]
    later = store.active_passes(NOW + timedelta(days=1))  # AAAAAA2 ends at that very second
    assert [row.pass_id for row in later] == ["AAAAAA1", "BBBBBB1"]
    assert later[0] == store.get_pass("AAAAAA1")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.active_passes(NOW.replace(tzinfo=None))


# -- PostgreSQL only ----------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_dsn: str) -> Iterator[Any]:
    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as opened:
        yield opened


def test_replicas_share_issuing_and_one_pass_id_is_claimed_once(
    pg_store: Any, postgres_dsn: str
) -> None:
    from sync.store.central_postgres import PostgresCentralStore

    kid = pg_store.add_key(raw_key(), NOW)
    with PostgresCentralStore(postgres_dsn) as other:
        assert [row.kid for row in other.issuer_keys()] == [kid]
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def issue(store: Any, pass_id: str) -> None:
            barrier.wait()
            try:
                store.add_pass(fields(pass_id), "t", kid, NOW)
                outcomes.append("issued")
            except Conflict:
                outcomes.append("conflict")

        racers = [
            threading.Thread(target=issue, args=(replica, pass_id))
            for replica, pass_id in [
                (pg_store, "SAME00001"), (other, "SAME00001"),
                (pg_store, "OWN000001"), (other, "OWN000002"),
            ]
        ]  # fmt: skip
        for thread in racers:
            thread.start()
        for thread in racers:
            thread.join()
        assert sorted(outcomes) == ["conflict", "issued", "issued", "issued"]
        # Every bump counted once, each with its change record, whichever replica made it.
        assert other.list_version("directory") == 3
        assert pg_store.changed_keys("directory", 0) == {"SAME00001", "OWN000001", "OWN000002"}
        other.revoke("OWN000001", "lost", NOW)
        assert pg_store.changed_keys("revocations", 0) == {"OWN000001"}
        assert not pg_store.revoke("OWN000001", "again", NOW)


def test_central_and_stream_tables_share_one_database(postgres_dsn: str) -> None:
    import psycopg

    from sync.store.central_postgres import PostgresCentralStore
    from sync.store.streams_postgres import PostgresStreamStore

    with (
        PostgresStreamStore(postgres_dsn) as streams,
        PostgresCentralStore(postgres_dsn) as central,
    ):
        latest = len(PostgresCentralStore.MIGRATIONS)  # 5: compounds' exit quotas
        streams_latest = len(PostgresStreamStore.MIGRATIONS)  # 3: gates' places
        assert (streams.schema_version, central.schema_version) == (streams_latest, latest)
        central.set_setting("", "mode", "open", by="ops", now=NOW)
    with PostgresCentralStore(postgres_dsn) as again:
        assert again.schema_version == latest
        assert again.settings_for("gate-a") == {"mode": "open"}
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM central_schema_version").fetchone() == (latest,)
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (streams_latest,)
        history = conn.execute("SELECT gate_id, key, value FROM gate_settings_history").fetchall()
        assert history == [("", "mode", '"open"')]
        conn.execute("INSERT INTO central_schema_version(version) VALUES (99)")
    with pytest.raises(StoreError, match="central schema is at version 99, newer"):
        PostgresCentralStore(postgres_dsn)


def test_a_failing_database_is_a_store_error_and_changes_nothing(
    pg_store: Any, postgres_dsn: str
) -> None:
    import psycopg

    kid = pg_store.add_key(raw_key(), NOW)
    pg_store.add_pass(fields("AAAAAA1"), "t", kid, NOW)
    with psycopg.connect(postgres_dsn, autocommit=True) as control:
        control.execute("ALTER TABLE list_changes RENAME TO list_changes_away")
        with pytest.raises(StoreError, match="revoke pass failed"):
            pg_store.revoke("AAAAAA1", "lost", NOW)
        control.execute("ALTER TABLE list_changes_away RENAME TO list_changes")
    # The revocation and its version bump rolled back together.
    assert pg_store.get_pass("AAAAAA1").revoked_at is None
    assert pg_store.list_version("revocations") == 0
    assert pg_store.revoke("AAAAAA1", "lost", NOW)
    assert pg_store.list_version("revocations") == 1
    with pytest.raises(StoreError, match="not a PostgreSQL connection string"):
        type(pg_store)("host=127.0.0.1 nonsense")
