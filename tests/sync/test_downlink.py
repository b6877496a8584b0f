"""The downlink on the central side: signed lists, deltas, versions, settings, the endpoint."""

from __future__ import annotations

import base64
import json
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_agent.core.passes import key_id
from sync.issuer import Issuer
from sync.lists import ListsPayload, ListsRefused, ListUpdate, sign_lists, verify_lists
from sync.server.app import create_app
from sync.store import CentralStore
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    NOW,
    OTHER_GATE,
    STORES,
    centre,
    open_central,
    serving,
    store_dsn,
)
from tests.sync.test_issuer import fields


@pytest.fixture(params=STORES)
def issuer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuer]:
    """An issuer with a key over each central store (PostgreSQL skipped when not installed)."""
    store = open_central(tmp_path, store_dsn(request))
    try:
        made = Issuer(tmp_path, store)
        made.new_key(NOW)
        yield made
    finally:
        store.close()


def pinned(issuer: Issuer) -> dict[str, bytes]:
    key = issuer.centre_public()
    return {key["kid"]: base64.b64decode(key["public_key"])}


def received(issuer: Issuer, have: dict[str, int] | None = None, gate: str = GATE) -> ListsPayload:
    """What a gate holding ``have`` gets, checked as the gate checks it."""
    document = issuer.signed_lists(NOW, gate_id=gate, have=have)
    wire = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return verify_lists(wire, pinned(issuer), gate_id=gate)


def by_name(payload: ListsPayload) -> dict[str, ListUpdate]:
    return {update.name: update for update in payload.lists}


# -- signing ------------------------------------------------------------------------------


def test_a_signed_document_verifies_and_any_change_breaks_it(issuer: Issuer) -> None:
    issuer.issue(fields("PASS000001"), NOW)
    document = issuer.signed_lists(NOW, gate_id=GATE)
    payload = verify_lists(json.dumps(document).encode(), pinned(issuer), gate_id=GATE)
    assert {u.name for u in payload.lists} == {
        "keys", "revocations", "isolations", "settings", "directory",
    }  # fmt: skip
    assert all(u.kind == "snapshot" for u in payload.lists)

    spoils: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["payload"]["lists"][0].update(version=99),
        lambda d: d["payload"].update(gate_id=OTHER_GATE),
        lambda d: d["payload"]["lists"].pop(),
    ]
    for spoil in spoils:
        altered = json.loads(json.dumps(document))
        spoil(altered)
        with pytest.raises(ListsRefused) as caught:
            verify_lists(json.dumps(altered).encode(), pinned(issuer), gate_id=GATE)
        assert caught.value.code == "lists_bad_signature"


def test_another_centre_key_another_gate_or_junk_is_refused(issuer: Issuer) -> None:
    document = issuer.signed_lists(NOW, gate_id=GATE)
    wire = json.dumps(document).encode()
    stranger = Ed25519PrivateKey.generate()
    stranger_pin = {key_id(stranger.public_key()): stranger.public_key().public_bytes_raw()}
    cases: list[tuple[bytes, dict[str, bytes], str]] = [
        (wire, stranger_pin, "lists_unknown_key"),
        (b"not json", pinned(issuer), "lists_malformed"),
        (b"[]", pinned(issuer), "lists_malformed"),
        (json.dumps({**document, "format": "x"}).encode(), pinned(issuer), "lists_malformed"),
        (json.dumps({**document, "signature": "!!"}).encode(), pinned(issuer),
         "lists_bad_signature"),
    ]  # fmt: skip
    for body, trusted, code in cases:
        with pytest.raises(ListsRefused) as caught:
            verify_lists(body, trusted, gate_id=GATE)
        assert caught.value.code == code, body[:40]
    with pytest.raises(ListsRefused) as caught:
        verify_lists(wire, pinned(issuer), gate_id=OTHER_GATE)
    assert caught.value.code == "lists_wrong_gate"
    # An export for any gate is for every gate.
    export = issuer.signed_lists(NOW, gate_id=None)
    assert verify_lists(json.dumps(export).encode(), pinned(issuer), gate_id=OTHER_GATE)


def test_a_signed_but_malformed_payload_is_refused_not_applied() -> None:
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    # Built without validation and signed, so only the gate's check can refuse it: keys are
    # never sent as a delta.
    update = ListUpdate.model_construct(
        name="keys", kind="delta", version=2, base_version=None, items=(), removed=()
    )
    payload = ListsPayload.model_construct(
        format="gate-station-lists/2", gate_id=GATE, issued_at=NOW, lists=(update,)
    )
    document = sign_lists(payload, kid, private)
    trusted = {kid: private.public_key().public_bytes_raw()}
    with pytest.raises(ListsRefused) as caught:
        verify_lists(json.dumps(document).encode(), trusted, gate_id=GATE)
    assert caught.value.code == "lists_malformed"


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"name": "isolations", "kind": "delta", "version": 3, "base_version": 2}, "whole"),
        ({"name": "revocations", "kind": "delta", "version": 3, "base_version": 3}, "below"),
        ({"name": "revocations", "kind": "delta", "version": 3}, "below"),
        ({"name": "revocations", "kind": "snapshot", "version": 3, "removed": ["A"]}, "snapshot"),
        (
            {"name": "revocations", "kind": "delta", "version": 3, "base_version": 2,
             "removed": ["PASS000001"],
             "items": [{"pass_id": "PASS000001", "revoked_at": "2026-03-01T08:00:00Z",
                        "reason": "x"}]},
            "twice",
        ),
        ({"name": "settings", "kind": "snapshot", "version": 2,
          "items": [{"key": "mode", "value": "party"}]}, "mode"),
        ({"name": "settings", "kind": "snapshot", "version": 2,
          "items": [{"key": "fever_celsius", "value": 45}]}, "between"),
    ],
)  # fmt: skip
def test_inconsistent_list_updates_are_refused(update: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ListUpdate.model_validate(update)


# -- versions, deltas, snapshots ------------------------------------------------------------


def test_a_gate_up_to_date_gets_nothing_and_a_new_gate_gets_everything(issuer: Issuer) -> None:
    issuer.issue(fields("PASS000001"), NOW)
    everything = by_name(received(issuer))
    assert everything["directory"].kind == "snapshot"
    assert [i["pass_id"] for i in everything["directory"].items] == ["PASS000001"]
    assert received(issuer, issuer.list_versions()).lists == ()


def test_revocations_and_the_directory_go_as_deltas(issuer: Issuer) -> None:
    for n in range(1, 10):
        issuer.issue(fields(f"PASS00000{n}"), NOW)
    for n in (6, 7, 8):
        issuer.store.revoke(f"PASS00000{n}", "moved out", NOW)
    held = issuer.list_versions()
    issuer.store.revoke("PASS000002", "lost", NOW)
    issuer.issue(fields("PASS000010"), NOW)
    updates = by_name(received(issuer, held))
    assert set(updates) == {"revocations", "directory"}
    revocations, directory = updates["revocations"], updates["directory"]
    assert (revocations.kind, revocations.base_version) == ("delta", held["revocations"])
    assert [i["pass_id"] for i in revocations.items] == ["PASS000002"]
    assert (directory.kind, directory.base_version) == ("delta", held["directory"])
    assert [i["pass_id"] for i in directory.items] == ["PASS000010"]
    assert directory.removed == ("PASS000002",)
    assert directory.version == issuer.list_versions()["directory"]


def test_a_delta_as_big_as_the_list_goes_as_a_snapshot(issuer: Issuer) -> None:
    issuer.issue(fields("PASS000001"), NOW)
    held = issuer.list_versions()
    issuer.issue(fields("PASS000002"), NOW)
    issuer.issue(fields("PASS000003"), NOW)
    directory = by_name(received(issuer, held))["directory"]
    assert directory.kind == "snapshot"
    assert len(directory.items) == 3


def test_a_gate_ahead_of_a_restored_centre_gets_a_higher_version(issuer: Issuer) -> None:
    issuer.issue(fields("PASS000001"), NOW)
    # The gate saw versions the centre lost with its backup.
    ahead = {name: version + 10 for name, version in issuer.list_versions().items()}
    updates = by_name(received(issuer, ahead))
    assert set(updates) == set(ahead)
    for name, update in updates.items():
        assert update.kind == "snapshot"
        assert update.version > ahead[name]
    assert [i["pass_id"] for i in updates["directory"].items] == ["PASS000001"]
    # And changes after it are deltas again from the new versions.
    held = issuer.list_versions()
    for n in range(2, 8):
        issuer.issue(fields(f"PASS00000{n}"), NOW)
    held_after = issuer.list_versions()
    issuer.store.revoke("PASS000003", "lost", NOW)
    assert by_name(received(issuer, held_after))["directory"].kind == "delta"
    assert held["directory"] < held_after["directory"]


def test_settings_for_every_gate_and_a_gates_own(issuer: Issuer) -> None:
    store = issuer.store
    store.set_setting("", "mode", "screening", by="admin", now=NOW)
    store.set_setting("", "fever_celsius", 37.5, by="admin", now=NOW)
    store.set_setting(GATE, "mode", "lockdown", by="admin", now=NOW)
    mine = by_name(received(issuer))["settings"].items
    assert mine == (
        {"key": "fever_celsius", "value": 37.5},
        {"key": "mode", "value": "lockdown"},
    )
    theirs = by_name(received(issuer, gate=OTHER_GATE))["settings"].items
    assert {"key": "mode", "value": "screening"} in theirs
    version = issuer.list_versions()["settings"]
    store.set_setting(GATE, "mode", None, by="admin", now=NOW)
    assert issuer.list_versions()["settings"] == version + 1
    assert {"key": "mode", "value": "screening"} in by_name(received(issuer))["settings"].items
    assert [row[:3] for row in store.settings_rows()] == [
        ("", "fever_celsius", 37.5),
        ("", "mode", "screening"),
    ]


def test_the_centre_key_is_made_once_and_kept_private(issuer: Issuer, tmp_path: Path) -> None:
    first = issuer.centre_public()
    assert issuer.centre_public() == first
    assert ((tmp_path / "keys" / "centre.pem").stat().st_mode & 0o777) == 0o600
    # It is not an issuer key: passes are never signed with it.
    assert first["kid"] not in {row.kid for row in issuer.store.issuer_keys()}


# -- the endpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_enrolled_gates_fetch_their_signed_lists(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    with centre(tmp_path / "central", dsn) as opened:
        opened.issuer.new_key(NOW)
        opened.issuer.issue(fields("PASS000001"), NOW)
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, lambda: NOW)
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            reply = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": opened.code()})
            assert reply.status_code == 200
            enrolment = reply.json()
            assert enrolment["centre_key"] == opened.issuer.centre_public()
            auth = {"Authorization": f"Bearer {enrolment['token']}"}
            trusted = {
                enrolment["centre_key"]["kid"]: base64.b64decode(
                    enrolment["centre_key"]["public_key"]
                )
            }

            got = client.get(f"/v1/gates/{GATE}/lists", headers=auth)
            assert got.status_code == 200
            payload = verify_lists(got.content, trusted, gate_id=GATE)
            assert len(payload.lists) == 5
            versions = ",".join(f"{u.name}:{u.version}" for u in payload.lists)
            again = client.get(f"/v1/gates/{GATE}/lists?have={versions}", headers=auth)
            assert verify_lists(again.content, trusted, gate_id=GATE).lists == ()

            assert client.get(f"/v1/gates/{GATE}/lists").status_code == 401
            assert client.get(f"/v1/gates/{OTHER_GATE}/lists", headers=auth).status_code == 403
            bad = client.get(f"/v1/gates/{GATE}/lists?have=keys", headers=auth)
            assert (bad.status_code, bad.json()["error"]) == (422, "bad_have")


def _centre_key_in_process(data_dir: str, out: Any) -> None:
    with CentralStore(Path(data_dir) / "central.sqlite3") as store:
        out.put(Issuer(Path(data_dir), store).centre_public())


def test_server_workers_starting_together_make_one_centre_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [
        context.Process(target=_centre_key_in_process, args=(str(tmp_path), out)) for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    keys = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert len({key["kid"] for key in keys}) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["centre.pem"]
