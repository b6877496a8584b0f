"""Admin accounts and sessions in both issuer stores, and `gate-sync admins ...`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sync import admins, cli
from sync.errors import Conflict, NotFound
from sync.store.central import IssuerStore
from tests.sync.stream_helpers import NOW, STORES, open_central, store_dsn

IDLE = timedelta(minutes=30)
HASH = admins.hash_password("a-long-password", n=2**10)  # cheap: this is not about scrypt


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerStore]:
    opened = open_central(tmp_path, store_dsn(request))
    try:
        yield opened
    finally:
        opened.close()


def test_accounts_are_added_once_listed_disabled_and_given_new_passwords(
    store: IssuerStore,
) -> None:
    store.add_admin("li.na", HASH, NOW)
    store.add_admin("wang", HASH, NOW)
    with pytest.raises(Conflict):
        store.add_admin("wang", HASH, NOW)
    assert [a.name for a in store.admin_accounts()] == ["li.na", "wang"]
    store.add_admin_session("k1", "wang", "csrf1", NOW, NOW + timedelta(hours=12))
    assert store.disable_admin("wang", NOW) is True
    assert store.disable_admin("wang", NOW) is False
    assert store.admin_session("k1", NOW, IDLE) is None  # its session ended with it
    with pytest.raises(NotFound):
        store.disable_admin("nobody", NOW)
    with pytest.raises(NotFound):
        store.set_admin_password("nobody", HASH, NOW)
    store.set_admin_password("wang", admins.hash_password("another-password", n=2**10), NOW)
    account = store.admin_account("wang")
    assert account is not None and account.disabled_at is None  # enabled again
    assert admins.verify_password("another-password", account.password_hash)


def test_failures_lock_an_account_and_a_good_sign_in_starts_the_count_again(
    store: IssuerStore,
) -> None:
    store.add_admin("wang", HASH, NOW)
    lock = timedelta(minutes=15)
    assert [store.admin_signin_failed("wang", NOW, 3, lock) for _ in range(2)] == [None, None]
    store.admin_signed_in("wang", NOW)
    assert store.admin_signin_failed("wang", NOW, 3, lock) is None
    assert store.admin_signin_failed("wang", NOW, 3, lock) is None
    assert store.admin_signin_failed("wang", NOW, 3, lock) == NOW + lock
    account = store.admin_account("wang")
    assert account is not None and account.locked_until == NOW + lock


def test_sessions_end_idle_at_their_end_and_on_sign_out(store: IssuerStore) -> None:
    store.add_admin("wang", HASH, NOW)
    end = NOW + timedelta(hours=1)
    store.add_admin_session("k1", "wang", "csrf1", NOW, end)
    found = store.admin_session("k1", NOW + timedelta(minutes=29), IDLE)
    assert found is not None and (found.name, found.csrf) == ("wang", "csrf1")
    # Used at 29 minutes: idle counts from then.
    assert store.admin_session("k1", NOW + timedelta(minutes=58), IDLE) is not None
    assert store.admin_session("k1", end, IDLE) is None  # the absolute end
    store.add_admin_session("k2", "wang", "csrf2", NOW, end)
    assert store.admin_session("k2", NOW + IDLE + timedelta(seconds=1), IDLE) is None
    store.add_admin_session("k3", "wang", "csrf3", NOW, end)
    store.end_admin_session("k3")
    assert store.admin_session("k3", NOW, IDLE) is None


def test_replicas_on_one_postgres_database_share_sessions(postgres_dsn: str) -> None:
    from sync.store.central_postgres import PostgresCentralStore

    with PostgresCentralStore(postgres_dsn) as one, PostgresCentralStore(postgres_dsn) as two:
        one.add_admin("wang", HASH, NOW)
        one.add_admin_session("k1", "wang", "csrf1", NOW, NOW + timedelta(hours=1))
        seen = two.admin_session("k1", NOW, IDLE)
        assert seen is not None and seen.csrf == "csrf1"
        two.end_admin_session("k1")
        assert one.admin_session("k1", NOW, IDLE) is None


def gate_sync(data: Path, *args: str, stdin: str = "", capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["--data-dir", str(data), "admins", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_gate_sync_admins_add_list_disable_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        return gate_sync(tmp_path, *args, stdin=stdin, capsys=capsys, monkeypatch=monkeypatch)

    code, out, err = run("add", "wang")
    generated = out.strip()
    assert code == 0 and len(generated) == admins.GENERATED_LENGTH and "only this once" in err
    assert run("add", "li", "--password-stdin", stdin="chosen-password\n")[0] == 0
    code, _, err = run("add", "zhao", "--password-stdin", stdin="short\n")
    assert code == 1 and "10-200 characters" in err
    code, _, err = run("add", "wang")
    assert code == 1 and "exists already" in err
    assert run("add", "bad name")[0] == 1
    assert run("disable", "li")[0] == 0
    code, out, _ = run("list")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["li", "wang"]
    assert lines[0].split()[1] == "disabled" and lines[1].split()[1] == "enabled"
    code, out, _ = run("password", "li")
    assert code == 0 and len(out.strip()) == admins.GENERATED_LENGTH
    store = open_central(tmp_path, None)
    try:
        account = store.admin_account("li")
        assert account is not None and account.disabled_at is None
        assert admins.verify_password(out.strip(), account.password_hash)
        wang = store.admin_account("wang")
        assert wang is not None and admins.verify_password(generated, wang.password_hash)
    finally:
        store.close()
    assert run("disable", "nobody")[0] == 1
