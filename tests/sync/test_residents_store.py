"""Residents, households, pass holders and batches: SQLite and PostgreSQL answer alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent.core.passes import PassFields, PassKind, Scope, mask_name
from sync import bulk
from sync.errors import Conflict, NotFound
from sync.issuer import Issuer
from sync.store import IssuerStore
from sync.store.central import Household, ImportSummary, Person
from tests.sync.stream_helpers import STORES, open_central, store_dsn

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
HOME = Household("C1-3-2-501", "CM1", "C1", "3", "2", "501")
RENTED = Household("C1-3-2-502", "CM1", "C1", "3", "2", "502")


def people(phone: str = "13800138000") -> list[Person]:
    return [
        Person(HOME.household_id, "王小明", phone, "resident"),
        Person(RENTED.household_id, "李房东", "13900139000", "landlord"),
        Person(RENTED.household_id, "赵租客", "", "tenant", (RENTED.household_id, "李房东")),
    ]


def fields(pass_id: str, household: str = HOME.household_id) -> PassFields:
    return PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id=household,
        scope=Scope.parse("compound:C1"),
        valid_from=NOW,
        valid_until=NOW + timedelta(days=30),
        display_name=mask_name("王小明"),
        unit="3-2-501",
    )


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerStore]:
    opened = open_central(tmp_path, store_dsn(request))
    try:
        yield opened
    finally:
        opened.close()


def test_a_reimport_updates_instead_of_adding(store: IssuerStore) -> None:
    first = store.import_residents([HOME, RENTED], people(), NOW)
    assert first == ImportSummary(households_added=2, persons_added=3)
    again = store.import_residents([HOME, RENTED], people(), NOW)
    assert again == ImportSummary(households_unchanged=2, persons_unchanged=3)
    moved = Household(RENTED.household_id, "CM1", "C1", "3", "2", "503")
    changed = store.import_residents([HOME, moved], people("13700137000"), NOW)
    assert changed == ImportSummary(
        households_updated=1, households_unchanged=1, persons_updated=1, persons_unchanged=2
    )
    recorded = store.residents()
    assert [(r.household.household_id, r.name, r.phone, r.role) for r in recorded] == [
        ("C1-3-2-501", "王小明", "13700137000", "resident"),
        ("C1-3-2-502", "李房东", "13900139000", "landlord"),
        ("C1-3-2-502", "赵租客", "", "tenant"),
    ]
    landlord, tenant = recorded[1], recorded[2]
    assert tenant.landlord_id == landlord.person_id
    assert recorded[1].household.room == "503"
    assert store.residents("C2") == []


def test_a_dry_run_counts_and_writes_nothing(store: IssuerStore) -> None:
    counted = store.import_residents([HOME, RENTED], people(), NOW, dry_run=True)
    assert counted.persons_added == 3
    assert store.residents() == []


def test_a_tenant_needs_a_recorded_landlord(store: IssuerStore) -> None:
    orphan = Person(HOME.household_id, "钱租客", "", "tenant", (HOME.household_id, "无此人"))
    with pytest.raises(NotFound):
        store.import_residents([HOME], [orphan], NOW)
    assert store.residents() == []  # the whole import rolled back


def test_a_batch_is_one_version_and_remembers_its_holders(
    store: IssuerStore, tmp_path: Path
) -> None:
    store.import_residents([HOME, RENTED], people(), NOW)
    ids = {r.name: r.person_id for r in store.residents()}
    issuer = Issuer(tmp_path, store)
    issuer.new_key(NOW)
    before = store.list_version("directory")
    issuer.issue_many([(fields("BULK0001"), ids["王小明"]), (fields("BULK0002"), None)], NOW)
    assert store.list_version("directory") == before + 1
    assert store.changed_keys("directory", before) == {"BULK0001", "BULK0002"}
    assert store.live_holders("resident", NOW) == {ids["王小明"]}
    assert store.live_holders("tenant", NOW) == set()
    assert store.live_holders("resident", NOW + timedelta(days=31)) == set()
    with pytest.raises(Conflict):
        issuer.issue_many([(fields("BULK0003"), None), (fields("BULK0001"), None)], NOW)
    with pytest.raises(NotFound):
        store.get_pass("BULK0003")  # the failed batch left nothing behind


def test_replacing_a_pass_keeps_its_holder_and_revokes_the_old(
    store: IssuerStore, tmp_path: Path
) -> None:
    store.import_residents([HOME], people()[:1], NOW)
    (holder,) = (r.person_id for r in store.residents())
    issuer = Issuer(tmp_path, store)
    issuer.new_key(NOW)
    issuer.issue_many([(fields("OLD00001"), holder)], NOW)
    revocations = store.list_version("revocations")
    issuer.replace("OLD00001", fields("NEW00001"), "reissued as NEW00001", NOW)
    assert store.get_pass("OLD00001").revoke_reason == "reissued as NEW00001"
    assert store.get_pass("NEW00001").revoked_at is None
    assert store.list_version("revocations") == revocations + 1
    assert store.live_holders("resident", NOW) == {holder}
    assert [row.pass_id for row in store.directory(NOW)] == ["NEW00001"]
    with pytest.raises(Conflict):
        issuer.replace("OLD00001", fields("NEW00002"), "again", NOW)
    with pytest.raises(NotFound):
        issuer.replace("NOSUCH01", fields("NEW00003"), "x", NOW)
    with pytest.raises(NotFound):
        store.get_pass("NEW00002")


def test_a_bulk_run_that_fails_midway_keeps_whole_chunks_and_a_rerun_continues(
    store: IssuerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = [Household(f"C1-1-1-{n}", "", "C1", "1", "1", str(n)) for n in range(101, 106)]
    store.import_residents(
        homes,
        [Person(h.household_id, f"张{n}明", "", "resident") for n, h in enumerate(homes)],
        NOW,
    )
    issuer = Issuer(tmp_path, store)
    issuer.new_key(NOW)
    issuer.issue_many([(fields("TAKEN001", "OTHER"), None)], NOW)
    ids = iter(["FRESH001", "FRESH002", "FRESH003", "TAKEN001"])
    monkeypatch.setattr(bulk, "new_pass_id", lambda: next(ids))  # the 4th id collides
    options = {
        "compound": "C1",
        "kind": PassKind.RESIDENT,
        "per": "person",
        "start": NOW,
        "days": 30,
        "scope": Scope.parse("compound:C1"),
        "now": NOW,
        "chunk": 2,
    }
    with pytest.raises(Conflict):
        bulk.issue_bulk(issuer, **options)  # type: ignore[arg-type]
    issued = [row.pass_id for row in store.active_passes(NOW) if row.household_id != "OTHER"]
    assert issued == ["FRESH001", "FRESH002"]  # chunk 1 whole, chunk 2 not at all
    monkeypatch.undo()
    again = bulk.issue_bulk(issuer, **options)  # type: ignore[arg-type]
    assert again == bulk.BulkResult(issued=3, skipped=2)
    assert len(store.live_holders("resident", NOW)) == 5


def test_two_bulk_runs_at_once_issue_each_person_one_pass(
    store: IssuerStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    homes = [Household(f"C1-2-1-{n}", "", "C1", "2", "1", str(n)) for n in range(101, 105)]
    store.import_residents(
        homes,
        [Person(h.household_id, f"刘{n}华", "", "resident") for n, h in enumerate(homes)],
        NOW,
    )
    first = Issuer(tmp_path, store)
    first.new_key(NOW)
    # The second run, through a connection of its own, issues between the first run's
    # reading of who holds a pass and its recording of its own.
    kind = request.node.callspec.params["store"]
    other = open_central(
        tmp_path, request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    )
    second = Issuer(tmp_path, other)
    options = {
        "compound": "C1",
        "kind": PassKind.RESIDENT,
        "per": "person",
        "start": NOW,
        "days": 30,
        "scope": Scope.parse("compound:C1"),
        "now": NOW,
    }
    read_holders = store.live_holders

    def holders_then_the_other_run(kind: str, now: datetime) -> set[int]:
        held = read_holders(kind, now)
        assert bulk.issue_bulk(second, **options) == bulk.BulkResult(issued=4, skipped=0)  # type: ignore[arg-type]
        return held

    try:
        store.live_holders = holders_then_the_other_run  # type: ignore[method-assign]
        late = bulk.issue_bulk(first, **options)  # type: ignore[arg-type]
    finally:
        other.close()
    assert late == bulk.BulkResult(issued=0, skipped=4)
    assert len(store.active_passes(NOW)) == 4


def test_concurrent_recordings_on_postgresql_give_each_person_one_pass(
    postgres_dsn: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    homes = [Household(f"C1-4-1-{n}", "", "C1", "4", "1", str(n)) for n in range(100, 130)]
    stores = [open_central(tmp_path, postgres_dsn) for _ in range(2)]
    try:
        stores[0].import_residents(
            homes,
            [Person(h.household_id, f"陈{n}", "", "resident") for n, h in enumerate(homes)],
            NOW,
        )
        issuers = [Issuer(tmp_path, s) for s in stores]
        issuers[0].new_key(NOW)
        people = [(r.person_id, r.household.household_id) for r in stores[0].residents("C1")]
        barrier = Barrier(2)

        def record(side: int) -> int:
            recorded = 0
            for n, (person, household) in enumerate(people):
                barrier.wait()  # both record a pass for the same person at the same moment
                mine = fields(f"RACE{side}{n:03d}", household)
                recorded += len(issuers[side].issue_missing([(mine, person)], NOW))
            return recorded

        with ThreadPoolExecutor(2) as pool:
            counts = list(pool.map(record, (0, 1)))
        assert sum(counts) == len(people)
        assert len(stores[0].live_holders("resident", NOW)) == len(people)
    finally:
        for opened in stores:
            opened.close()
