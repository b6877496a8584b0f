"""The central side: key files, signing, the store, and the lists bundle."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gate_agent.core.passes import (
    Keyring,
    PassFields,
    PassKind,
    Scope,
    VerifiedPass,
    mask_name,
    verify,
)
from sync.errors import Conflict, IssuerKeyError, NotFound, StoreError
from sync.issuer import Issuer, new_pass_id
from sync.protocol import ListsBundle
from sync.store import CentralStore
from tests.sync.stream_helpers import STORES, open_central, store_dsn

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def fields(pass_id: str, days: int = 30) -> PassFields:
    return PassFields(
        pass_id=pass_id,
        kind=PassKind.RESIDENT,
        household_id="H1",
        scope=Scope.parse("compound:C1"),
        valid_from=NOW,
        valid_until=NOW + timedelta(days=days),
        display_name=mask_name("王小明"),
        unit="1-1-101",
    )


@pytest.fixture(params=STORES)
def issuer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuer]:
    """An issuer over each central store (PostgreSQL skipped when not installed)."""
    store = open_central(tmp_path, store_dsn(request))
    try:
        yield Issuer(tmp_path, store)
    finally:
        store.close()


def keyring_of(bundle: ListsBundle) -> Keyring:
    assert bundle.keys is not None
    return Keyring.from_raw((item.raw(), item.retired) for item in bundle.keys.items)


def test_issued_passes_verify_with_the_exported_keys(issuer: Issuer) -> None:
    kid = issuer.new_key(NOW)
    text = issuer.issue(fields("AAAAAA1"), NOW)
    result = verify(text, keyring_of(issuer.bundle(NOW)))
    assert isinstance(result, VerifiedPass)
    assert result.key_id == kid
    assert issuer.store.get_pass("AAAAAA1").text == text


def test_the_newest_key_signs_and_older_ones_keep_verifying(issuer: Issuer) -> None:
    old = issuer.new_key(NOW)
    first = issuer.issue(fields("AAAAAA1"), NOW)
    new = issuer.new_key(NOW + timedelta(seconds=1))
    second = issuer.issue(fields("AAAAAA2"), NOW)
    assert (first[4:12], second[4:12]) == (old, new)
    keyring = keyring_of(issuer.bundle(NOW))
    assert all(isinstance(verify(t, keyring), VerifiedPass) for t in (first, second))


def test_no_key_means_a_clear_error(issuer: Issuer) -> None:
    with pytest.raises(IssuerKeyError, match="gate-sync keys new"):
        issuer.issue(fields("AAAAAA1"), NOW)


def test_a_key_file_others_can_read_is_refused(issuer: Issuer) -> None:
    kid = issuer.new_key(NOW)
    (issuer.keys_dir / f"{kid}.pem").chmod(0o644)
    with pytest.raises(IssuerKeyError, match="chmod 600"):
        issuer.issue(fields("AAAAAA1"), NOW)


def test_a_pass_id_is_issued_once(issuer: Issuer) -> None:
    issuer.new_key(NOW)
    issuer.issue(fields("AAAAAA1"), NOW)
    with pytest.raises(Conflict, match="issued already"):
        issuer.issue(fields("AAAAAA1"), NOW)


def test_revocations_bump_the_version_and_leave_out_expired_passes(issuer: Issuer) -> None:
    issuer.new_key(NOW)
    issuer.issue(fields("AAAAAA1"), NOW)
    issuer.issue(fields("AAAAAA2", days=1), NOW)
    before = issuer.bundle(NOW)
    assert before.revocations is not None and before.revocations.version == 1
    assert issuer.store.revoke("AAAAAA1", "lost", NOW)
    assert issuer.store.revoke("AAAAAA2", "moved", NOW)
    assert not issuer.store.revoke("AAAAAA2", "again", NOW)
    with pytest.raises(NotFound):
        issuer.store.revoke("ZZZZZZ9", "x", NOW)
    after = issuer.bundle(NOW + timedelta(days=2))
    assert after.revocations is not None
    assert after.revocations.version == 3
    assert [r.pass_id for r in after.revocations.items] == ["AAAAAA1"]


def test_the_bundle_round_trips_as_json(issuer: Issuer) -> None:
    issuer.new_key(NOW)
    bundle = issuer.bundle(NOW)
    again = ListsBundle.model_validate_json(bundle.model_dump_json())
    assert again == bundle
    versions = {name: version for name, (version, _) in again.snapshots().items()}
    assert versions == {"keys": 2, "revocations": 1, "isolations": 1, "directory": 1}


@pytest.mark.parametrize(
    "change",
    [
        {"format": "gate-station-lists/2"},
        {"issued_at": "2026-03-01T08:00:00"},
        {"keys": {"version": 0, "items": []}},
        {"keys": {"version": 1, "items": [{"kid": "AAAAAAAA", "public_key": "AAAA"}]}},
        {
            "isolations": {
                "version": 1,
                "items": [
                    {
                        "household_id": "H1",
                        "start": "2026-03-02T00:00:00Z",
                        "end": "2026-03-01T00:00:00Z",
                    }
                ],
            }
        },
        {"surprise": 1},
    ],
)
def test_bad_bundles_are_refused(change: dict[str, object]) -> None:
    raw: dict[str, object] = {"format": "gate-station-lists/1", "issued_at": NOW.isoformat()}
    with pytest.raises(ValidationError):
        ListsBundle.model_validate(raw | change)


def test_key_items_carry_raw_32_byte_keys() -> None:
    key = base64.b64encode(bytes(32)).decode()
    item = {"kid": "AAAAAAAA", "public_key": key}
    bundle = ListsBundle.model_validate({"issued_at": NOW, "keys": {"version": 1, "items": [item]}})
    assert bundle.keys is not None and bundle.keys.items[0].raw() == bytes(32)


def test_pass_ids_are_readable() -> None:
    ids = {new_pass_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 10 and not set(i) & set("01IO") for i in ids)


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "central.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use as the central database"):
        CentralStore(path)


def test_isolations_are_sent_until_they_end_or_are_lifted(issuer: Issuer) -> None:
    assert issuer.store.isolate("H1", NOW, NOW + timedelta(days=14), "order 12", NOW) > 0
    issuer.store.isolate("H2", NOW, NOW + timedelta(days=1), "", NOW)
    bundle = issuer.bundle(NOW + timedelta(days=2))
    assert bundle.isolations is not None
    assert bundle.isolations.version == 3
    assert [(i.household_id, i.end) for i in bundle.isolations.items] == [
        ("H1", NOW + timedelta(days=14))
    ]
    assert issuer.store.lift_isolation("H1", NOW + timedelta(days=3)) == 1
    after = issuer.bundle(NOW + timedelta(days=3))
    assert after.isolations is not None
    assert (after.isolations.version, after.isolations.items) == (4, ())
    with pytest.raises(NotFound, match="not in isolation"):
        issuer.store.lift_isolation("H1", NOW + timedelta(days=4))
    with pytest.raises(ValueError, match="end after it starts"):
        issuer.store.isolate("H3", NOW, NOW, "", NOW)
