"""Issuer keys over their life: create, rotate with an overlap, retire; on both stores."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import Keyring, PassRefusal, VerifiedPass, verify
from gate_agent.core.reasons import Reason
from sync import cli
from sync.errors import IssuerKeyError, KeyInUse, NotFound
from sync.issuer import Issuer
from sync.lists import ListsPayload, verify_lists
from sync.store import IssuerStore, SqliteCentralStore
from tests.sync.stream_helpers import GATE, STORES, open_central, store_dsn
from tests.sync.test_downlink import pinned
from tests.sync.test_issuer import fields

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
OVERLAP = timedelta(days=14)
ENDS = NOW + OVERLAP


def raw_key() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerStore]:
    opened = open_central(tmp_path, store_dsn(request))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def issuer(store: IssuerStore, tmp_path: Path) -> Issuer:
    return Issuer(tmp_path, store)


def states(store: IssuerStore) -> dict[str, tuple[str, str | None, str | None]]:
    return {row.kid: (row.state, row.retire_at, row.retired_at) for row in store.issuer_keys()}


# -- the stores -----------------------------------------------------------------------------


def test_a_rotation_plans_the_retirement_in_one_version(store: IssuerStore) -> None:
    old = store.add_key(raw_key(), NOW)
    assert store.list_version("keys") == 1
    new_raw = raw_key()
    assert store.rotate_key(new_raw, ENDS, NOW) == [old]
    assert store.list_version("keys") == 2
    new = next(row.kid for row in store.issuer_keys() if row.public_key == new_raw)
    assert states(store) == {
        old: ("rotating", ENDS.isoformat(), None),
        new: ("active", None, None),
    }
    # Nothing is due before the overlap ends: no write, no version.
    assert store.retire_due_keys(ENDS - timedelta(seconds=1)) == []
    assert store.list_version("keys") == 2
    assert store.retire_due_keys(ENDS + timedelta(hours=3)) == [old]
    assert store.list_version("keys") == 3
    # Recorded at the planned time, not when it was noticed; and only once.
    assert states(store)[old] == ("retired", ENDS.isoformat(), ENDS.isoformat())
    assert store.retire_due_keys(ENDS + timedelta(days=1)) == []
    assert store.list_version("keys") == 3


def test_a_second_rotation_keeps_the_earlier_plan(store: IssuerStore) -> None:
    first = store.add_key(raw_key(), NOW)
    (rotating,) = store.rotate_key(raw_key(), ENDS, NOW)
    assert rotating == first
    later = ENDS + timedelta(days=5)
    second_round = store.rotate_key(raw_key(), later, NOW + timedelta(days=1))
    assert first not in second_round and len(second_round) == 1
    assert states(store)[first][1] == ENDS.isoformat()
    assert store.retire_due_keys(later) == sorted([first, *second_round])


def test_retire_at_once_or_planned_and_the_refusals(store: IssuerStore) -> None:
    one = store.add_key(raw_key(), NOW)
    two = store.add_key(raw_key(), NOW + timedelta(seconds=1))
    version = store.list_version("keys")
    assert store.retire_key(one, NOW, NOW) is True
    assert store.list_version("keys") == version + 1
    assert states(store)[one] == ("retired", None, NOW.isoformat())
    assert store.retire_key(one, NOW, NOW) is False  # already: nothing changes
    assert store.list_version("keys") == version + 1
    assert store.retire_key(two, ENDS, NOW) is True  # planned: still verifies meanwhile
    assert states(store)[two] == ("rotating", ENDS.isoformat(), None)
    with pytest.raises(NotFound, match="no issuer key"):
        store.retire_key("ZZZZZZZZ", NOW, NOW)


def test_live_passes_count_what_a_key_still_carries(store: IssuerStore) -> None:
    kid = store.add_key(raw_key(), NOW)
    other = store.add_key(raw_key(), NOW)
    store.add_pass(fields("AAAAAA1"), "t", kid, NOW)
    store.add_pass(fields("AAAAAA2", days=1), "t", kid, NOW)
    store.add_pass(fields("AAAAAA3"), "t", kid, NOW)
    store.add_pass(fields("AAAAAA4"), "t", other, NOW)
    store.revoke("AAAAAA3", "lost", NOW)
    assert store.live_passes(kid, NOW) == 2
    assert store.live_passes(kid, NOW + timedelta(days=2)) == 1  # AAAAAA2 expired
    assert store.live_passes(other, NOW) == 1
    assert store.live_passes("ZZZZZZZZ", NOW) == 0


def test_a_central_file_from_before_rotation_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "central.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE issuer_keys (kid TEXT PRIMARY KEY, public_key BLOB NOT NULL,"
            " created_at TEXT NOT NULL, retired_at TEXT)"
        )
    old.close()
    with SqliteCentralStore(path) as store:
        kid = store.add_key(raw_key(), NOW)
        assert store.rotate_key(raw_key(), ENDS, NOW) == [kid]
        assert states(store)[kid][0] == "rotating"


def test_a_postgres_centre_from_before_rotation_is_upgraded(postgres_dsn: str) -> None:
    import psycopg

    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as store:
        kid = store.add_key(raw_key(), NOW)
    with psycopg.connect(postgres_dsn) as conn:  # back to migration 1, with a key in it
        conn.execute("DROP TABLE admin_audit, admin_sessions, admin_accounts")  # admins'
        conn.execute("DROP TABLE compound_quotas, compound_quota_history")  # migration 5's
        conn.execute("DROP TABLE visitor_request_history, visitor_requests")  # migration 4's
        conn.execute("ALTER TABLE passes DROP COLUMN once")
        conn.execute("DROP TABLE pass_holders, persons, households")  # migration 3's
        conn.execute("ALTER TABLE issuer_keys DROP COLUMN retire_at")
        conn.execute("DELETE FROM central_schema_version WHERE version >= 2")
    with PostgresCentralStore(postgres_dsn) as store:
        assert store.schema_version == len(PostgresCentralStore.MIGRATIONS)
        assert store.rotate_key(raw_key(), ENDS, NOW) == [kid]
        assert states(store)[kid][0] == "rotating"


def test_replicas_noticing_at_once_retire_a_key_once(postgres_dsn: str) -> None:
    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as one, PostgresCentralStore(postgres_dsn) as two:
        old = one.add_key(raw_key(), NOW)
        one.rotate_key(raw_key(), ENDS, NOW)
        barrier = threading.Barrier(4)
        results: list[list[str]] = []

        def notice(store: IssuerStore) -> None:
            barrier.wait()
            results.append(store.retire_due_keys(ENDS))

        threads = [threading.Thread(target=notice, args=(s,)) for s in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [[], [], [], [old]]
        assert one.list_version("keys") == 3


# -- the issuer ---------------------------------------------------------------------------


def keyring_at(issuer: Issuer, now: datetime) -> tuple[int, Keyring]:
    """The keys list a gate receives at ``now`` (signed, checked as the gate checks it)."""
    document = issuer.signed_lists(now, gate_id=GATE)
    wire = json.dumps(document).encode()
    payload: ListsPayload = verify_lists(wire, pinned(issuer), gate_id=GATE)
    (keys,) = [update for update in payload.lists if update.name == "keys"]
    items = [(base64.b64decode(item["public_key"]), item["retired"]) for item in keys.items]
    return keys.version, Keyring.from_raw(items)


def test_rotation_overlap_then_retirement_reaches_gates(issuer: Issuer, tmp_path: Path) -> None:
    old = issuer.new_key(NOW)
    before = issuer.issue(fields("AAAAAA1"), NOW)
    issuer.issue(fields("AAAAAA2", days=1), NOW)
    rotation = issuer.rotate(NOW, OVERLAP)
    assert rotation.rotating == {old: 2} and rotation.retire_at == ENDS
    assert issuer.signing_key()[0] == rotation.kid != old
    after = issuer.issue(fields("AAAAAA3"), NOW)
    new_file = tmp_path / "keys" / f"{rotation.kid}.pem"
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600

    # The overlap: both keys verify; the list's version does not move with time alone.
    version, keyring = keyring_at(issuer, ENDS - timedelta(seconds=1))
    assert all(isinstance(verify(t, keyring), VerifiedPass) for t in (before, after))
    assert issuer.list_versions(ENDS - timedelta(seconds=1))["keys"] == version
    assert (tmp_path / "keys" / f"{old}.pem").exists()

    # The overlap ends: the first to ask records the retirement and a new version.
    assert issuer.list_versions(ENDS)["keys"] == version + 1
    later_version, later = keyring_at(issuer, ENDS)
    assert later_version == version + 1
    refused = verify(before, later)
    assert isinstance(refused, PassRefusal) and refused.reason is Reason.KEY_RETIRED
    assert isinstance(verify(after, later), VerifiedPass)
    assert not (tmp_path / "keys" / f"{old}.pem").exists()  # the private half is gone
    assert new_file.exists()


def test_a_gate_at_the_overlap_version_is_sent_the_retirement(issuer: Issuer) -> None:
    issuer.new_key(NOW)
    issuer.rotate(NOW, OVERLAP)
    held = issuer.list_versions(NOW)
    during = issuer.signed_lists(ENDS - timedelta(minutes=1), gate_id=GATE, have=held)
    assert during["payload"]["lists"] == []  # nothing new for a gate that holds it all
    document = issuer.signed_lists(ENDS, gate_id=GATE, have=held)
    (keys,) = document["payload"]["lists"]
    assert keys["name"] == "keys" and keys["version"] == held["keys"] + 1
    assert sorted(item["retired"] for item in keys["items"]) == [False, True]


def test_retire_refuses_the_last_active_key_unless_forced(issuer: Issuer) -> None:
    old = issuer.new_key(NOW)
    with pytest.raises(KeyInUse, match="last active signing key"):
        issuer.retire(old, NOW)
    rotation = issuer.rotate(NOW, OVERLAP)
    with pytest.raises(KeyInUse):
        issuer.retire(rotation.kid, NOW)  # the old one only rotates: it signs no more
    assert issuer.retire(old, NOW + timedelta(days=1)) is True  # a leak: no waiting
    assert states(issuer.store)[old][0] == "retired"
    assert issuer.retire(old, NOW + timedelta(days=1)) is False
    assert issuer.retire(rotation.kid, NOW, force=True) is True
    with pytest.raises(IssuerKeyError, match="no active issuer key"):
        issuer.issue(fields("AAAAAA9"), NOW)
    with pytest.raises(NotFound):
        issuer.retire("ZZZZZZZZ", NOW)


def test_a_zero_overlap_retires_at_once(issuer: Issuer, tmp_path: Path) -> None:
    old = issuer.new_key(NOW)
    rotation = issuer.rotate(NOW, timedelta(0))
    assert states(issuer.store)[old][0] == "retired"
    assert not (tmp_path / "keys" / f"{old}.pem").exists()
    assert issuer.signing_key()[0] == rotation.kid


def test_another_replica_deletes_a_retired_keys_file(issuer: Issuer, tmp_path: Path) -> None:
    old = issuer.new_key(NOW)
    issuer.rotate(NOW, OVERLAP)
    replica = Issuer(tmp_path, issuer.store)  # same keys folder, its own memory
    replica.list_versions(NOW)  # learns the plan
    assert issuer.retire_due(ENDS) == [old]
    (tmp_path / "keys" / f"{old}.pem").write_bytes(b"a copy restored by hand")
    assert replica.retire_due(ENDS) == []  # already recorded, but the file goes
    assert not (tmp_path / "keys" / f"{old}.pem").exists()


# -- the command line ---------------------------------------------------------------------


def run(data: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["--data-dir", str(data), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "central"
    code, out, _ = run(data, "keys", "new", capsys=capsys)
    old = out.strip()
    assert code == 0
    code, _, err = run(data, "keys", "retire", old, capsys=capsys)
    assert code == 1 and "last active signing key" in err
    run(
        data, "passes", "issue", "--kind", "resident", "--household", "H1", "--name", "王小明",
        "--scope", "compound:C1", "--days", "30", capsys=capsys,
    )  # fmt: skip
    code, out, err = run(data, "keys", "rotate", "--overlap-days", "7", capsys=capsys)
    new = out.strip()
    assert code == 0 and new != old
    assert f"{old} verifies until" in err and "1 unexpired passes carry it" in err
    code, out, _ = run(data, "keys", "list", capsys=capsys)
    listed = dict(line.split("  ", 1) for line in out.splitlines())
    assert "rotating until" in listed[old] and listed[new].endswith("active")
    code, out, _ = run(data, "keys", "retire", old, "--now", capsys=capsys)
    assert code == 0 and "retired" in out
    code, out, _ = run(data, "keys", "list", capsys=capsys)
    assert f"{old}  created" in out and "retired 20" in out
    assert not (data / "keys" / f"{old}.pem").exists()
    code, out, err = run(data, "keys", "rotate", "--overlap-days", "-1", capsys=capsys)
    assert code == 1 and "--overlap-days" in err
