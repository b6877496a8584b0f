"""The directory list: the people passes in force, from the central store to a gate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gate_agent.core.passes import ExitQuota, PassFields, PassKind, Scope, mask_name
from gate_agent.ledger import Ledger
from sync.errors import Conflict
from sync.issuer import Issuer
from sync.protocol import DirectoryItem, ListsBundle
from sync.store import DirectoryRow
from tests.sync.stream_helpers import STORES, open_central, store_dsn

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def fields(pass_id: str, **changes: Any) -> PassFields:
    base = PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id="H1",
        scope=Scope.parse("compound:LGQ-012"),
        valid_from=NOW,
        valid_until=NOW + timedelta(days=30),
        display_name=mask_name("张三明"),
        unit="3-2-501",
        exit_quota=ExitQuota(1, 2),
    )
    return replace(base, **changes)


@pytest.fixture(params=STORES)
def issuer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuer]:
    """An issuer with a key over each central store (PostgreSQL skipped when not installed)."""
    store = open_central(tmp_path, store_dsn(request))
    try:
        issuer = Issuer(tmp_path, store)
        issuer.new_key(NOW)
        yield issuer
    finally:
        store.close()


def directory_of(bundle: ListsBundle) -> tuple[int, list[str]]:
    assert bundle.directory is not None
    return bundle.directory.version, [item.pass_id for item in bundle.directory.items]


def test_an_issued_pass_is_listed_with_its_own_fields(issuer: Issuer) -> None:
    assert directory_of(issuer.bundle(NOW)) == (1, [])
    issuer.issue(fields("AAAAAA1"), NOW)
    bundle = issuer.bundle(NOW)
    assert bundle.directory is not None
    assert bundle.directory.version == 2
    (item,) = bundle.directory.items
    assert item == DirectoryItem(
        pass_id="AAAAAA1",
        kind="resident",
        household_id="H1",
        scope="compound:LGQ-012",
        valid_from=NOW,
        valid_until=NOW + timedelta(days=30),
        display_name="张*明",
        unit="3-2-501",
        exit_quota="1/2",
    )
    assert issuer.store.directory(NOW) == [
        DirectoryRow(
            "AAAAAA1",
            "resident",
            "H1",
            "compound:LGQ-012",
            "2026-03-01T08:00:00+00:00",
            "2026-03-31T08:00:00+00:00",
            "张*明",
            "3-2-501",
            "1/2",
        )
    ]


def test_every_people_kind_is_listed_and_vehicles_are_not(issuer: Issuer) -> None:
    people = [PassKind.RESIDENT, PassKind.TENANT, PassKind.VISITOR, PassKind.WORKER]
    for n, kind in enumerate([*people, PassKind.DELIVERY, PassKind.VEHICLE]):
        issuer.issue(fields(f"AAAAAA{n}", kind=kind, unit="", exit_quota=None), NOW)
    bundle = issuer.bundle(NOW)
    assert bundle.directory is not None
    kinds = [item.kind for item in bundle.directory.items]
    assert kinds == ["resident", "tenant", "visitor", "worker", "delivery"]
    assert bundle.directory.items[0].unit == ""
    assert bundle.directory.items[0].exit_quota is None


def test_revoking_drops_the_pass_in_a_new_version(issuer: Issuer) -> None:
    issuer.issue(fields("AAAAAA1"), NOW)
    issuer.issue(fields("AAAAAA2"), NOW)
    assert directory_of(issuer.bundle(NOW)) == (3, ["AAAAAA1", "AAAAAA2"])
    assert issuer.store.revoke("AAAAAA1", "moved out", NOW)
    assert directory_of(issuer.bundle(NOW)) == (4, ["AAAAAA2"])
    assert not issuer.store.revoke("AAAAAA1", "again", NOW)  # no change, no new version
    assert directory_of(issuer.bundle(NOW)) == (4, ["AAAAAA2"])


def test_expired_passes_are_left_out(issuer: Issuer) -> None:
    issuer.issue(fields("AAAAAA1", valid_until=NOW + timedelta(days=1)), NOW)
    issuer.issue(fields("AAAAAA2"), NOW)
    assert directory_of(issuer.bundle(NOW + timedelta(days=1))) == (3, ["AAAAAA2"])


def test_a_refused_reissue_changes_no_version(issuer: Issuer) -> None:
    issuer.issue(fields("AAAAAA1"), NOW)
    with pytest.raises(Conflict, match="issued already"):
        issuer.issue(fields("AAAAAA1", unit="9-9-909"), NOW)
    assert issuer.store.list_version("directory") == 1
    assert [row.unit for row in issuer.store.directory(NOW)] == ["3-2-501"]


def test_the_gate_applies_the_directory_and_finds_the_resident(
    issuer: Issuer, tmp_path: Path
) -> None:
    issuer.issue(fields("AAAAAA1"), NOW)
    issuer.issue(fields("AAAAAA2", display_name="李*", unit="3-1-101", exit_quota=None), NOW)
    wire = issuer.bundle(NOW).model_dump_json()
    bundle = ListsBundle.model_validate_json(wire)
    with Ledger.open(tmp_path / "gate" / "ledger.sqlite3", gate_id="G1") as ledger:
        applied = ledger.state.apply_snapshots(bundle.snapshots())
        assert applied == ["keys", "revocations", "isolations", "directory"]
        found = ledger.state.directory_search(unit="3-2", name="张")
        assert [item["pass_id"] for item in found] == ["AAAAAA1"]
        assert found[0]["valid_until"] == NOW + timedelta(days=30)
        assert ledger.state.directory_get("AAAAAA2") is not None
        assert ledger.state.directory_status().version == 3
        # The same bundle again changes nothing.
        assert ledger.state.apply_snapshots(bundle.snapshots()) == []


GOOD: dict[str, Any] = {
    "pass_id": "AAAAAA1",
    "kind": "resident",
    "household_id": "H1",
    "scope": "compound:LGQ-012",
    "valid_from": "2026-03-01T08:00:00Z",
    "valid_until": "2026-03-31T08:00:00Z",
    "display_name": "张*明",
    "unit": "3-2-501",
    "exit_quota": "1/2",
}


def test_a_good_item_and_its_defaults() -> None:
    item = DirectoryItem.model_validate(GOOD)
    assert item.valid_from == NOW
    bare = DirectoryItem.model_validate(
        {k: GOOD[k] for k in GOOD if k not in ("unit", "exit_quota")}
    )
    assert (bare.unit, bare.exit_quota) == ("", None)
    for scope in ("community:M1", "gates:G1", "gates:G1,G-2"):
        assert DirectoryItem.model_validate(GOOD | {"scope": scope}).scope == scope


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "vehicle"},
        {"pass_id": "aaaaaa1"},
        {"household_id": "H 1"},
        {"scope": "compound:"},
        {"scope": "planet:X"},
        {"scope": "gates:G1,"},
        {"display_name": "张三明"},
        {"display_name": "张*|明"},
        {"display_name": "张*\n明"},
        {"display_name": "张" + "*" * 15 + "明"},
        {"unit": "3-2-501-1"},
        {"unit": "3--501"},
        {"exit_quota": "0/2"},
        {"exit_quota": "1/2/3"},
        {"valid_from": "2026-03-01T08:00:00"},
        {"valid_until": "2026-03-01T08:00:00Z"},
        {"signature": "AAAA"},
    ],
)
def test_bad_directory_items_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DirectoryItem.model_validate(GOOD | change)
    raw = {"issued_at": NOW, "directory": {"version": 1, "items": [GOOD | change]}}
    with pytest.raises(ValidationError):
        ListsBundle.model_validate(raw)
