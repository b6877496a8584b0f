"""`gate-sync visitors ...` on real stores: request, list, approve, reject, cancel, issue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate_agent.core.passes import PassKind, VerifiedPass, verify
from sync.cards import store_keyring
from tests.sync.stream_helpers import STORES, store_dsn
from tests.sync.test_residents_cli import ZH_HEADER, ZH_ROWS, Admin, write_csv

HOST = "C1-3-2-501"
VISIT = ["--host", HOST, "--name", "赵小燕", "--phone", "13700000001", "--reason", "探望"]


@pytest.fixture(params=STORES)
def admin(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Admin]:
    made = Admin(tmp_path / "centre", store_dsn(request), capsys)
    assert made.run("keys", "new")[0] == 0
    residents = write_csv(tmp_path / "residents.csv", [ZH_HEADER, *ZH_ROWS])
    assert made.run("residents", "import", str(residents))[0] == 0
    yield made


def household_id(admin: Admin) -> str:
    with closing(admin.store()) as store:
        return store.residents()[0].household.household_id


def test_request_list_approve_prints_the_pass(admin: Admin, tmp_path: Path) -> None:
    host = household_id(admin)
    visit = ["--host", host, *VISIT[2:]]
    code, out, _ = admin.run(
        "visitors", "request", *visit, "--hours", "4", "--once", "--by", "王小明"
    )
    assert code == 0 and "pending" in out
    request_id = out.split()[2]
    code, out, _ = admin.run("visitors", "list", "--pending", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(r["request_id"], r["name"], r["phone"], r["once"]) for r in listed] == [
        (int(request_id), "赵小燕", "13700000001", True)
    ]
    png, jsonl = tmp_path / "pass.png", tmp_path / "passes.jsonl"
    code, out, err = admin.run(
        "visitors",
        "approve",
        request_id,
        "--by",
        "社区李四",
        "--png",
        str(png),
        "--out",
        str(jsonl),
    )
    assert code == 0, err
    text = out.strip()
    with closing(admin.store()) as store:
        scanned = verify(text, store_keyring(store))
    assert isinstance(scanned, VerifiedPass)
    assert (scanned.fields.kind, scanned.fields.household_id, scanned.fields.once) == (
        PassKind.VISITOR, host, True
    )  # fmt: skip
    assert png.read_bytes().startswith(b"\x89PNG")
    record = json.loads(jsonl.read_text(encoding="utf-8"))
    assert (record["text"], record["display_name"], record["request_id"]) == (
        text, "赵*燕", int(request_id)
    )  # fmt: skip
    assert "赵小燕" not in jsonl.read_text(encoding="utf-8")
    code, _, err = admin.run("visitors", "approve", request_id, "--by", "乙")
    assert code == 1 and "(already_decided)" in err
    code, out, _ = admin.run("visitors", "list", "--host", host)
    assert "approved by 社区李四" in out and scanned.fields.pass_id in out
    assert admin.run("visitors", "list", "--pending")[1] == ""
    # Revoked as any pass is.
    code, out, _ = admin.run("passes", "revoke", scanned.fields.pass_id, "--reason", "来访取消")
    assert code == 0 and "revoked" in out


def test_issue_reject_cancel_and_refusals(admin: Admin) -> None:
    host = household_id(admin)
    visit = ["--host", host, *VISIT[2:]]
    start = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    code, out, err = admin.run(
        "visitors", "issue", *visit, "--from", start, "--until", start, "--by", "管理员"
    )
    assert code == 0, err
    assert out.startswith("GP1:")
    for words, refusal in (
        (["--host", "C9-NOBODY", *VISIT[2:], "--hours", "2"], "(unknown_host)"),
        (
            [
                *visit,
                "--from",
                start,
                "--until",
                (datetime.now(UTC) + timedelta(days=9)).date().isoformat(),
            ],
            "(too_long)",
        ),
        ([*visit, "--hours", "200"], "--hours must be 1-168"),
    ):
        code, _, err = admin.run("visitors", "request", *words, "--by", "王小明")
        assert code == 1 and refusal in err, err
    ids = []
    for _ in range(2):
        code, out, _ = admin.run("visitors", "request", *visit, "--hours", "3", "--by", "王小明")
        ids.append(out.split()[2])
    assert admin.run("visitors", "reject", ids[0], "--reason", "未核实", "--by", "社区李四")[0] == 0
    assert admin.run("visitors", "cancel", ids[1], "--reason", "不来了", "--by", "王小明")[0] == 0
    code, _, err = admin.run("visitors", "approve", ids[0], "--by", "社区李四")
    assert code == 1 and "rejected already (already_decided)" in err
    code, out, _ = admin.run("visitors", "list")
    states = [line.split()[1] for line in out.splitlines()]
    assert states == ["approved", "rejected", "cancelled"]
    assert "(未核实)" in out
    # Isolation of the host during the visit: refused.
    assert admin.run("households", "isolate", host, "--until", "2099-01-01")[0] == 0
    code, _, err = admin.run("visitors", "issue", *visit, "--hours", "2", "--by", "管理员")
    assert code == 1 and "(host_in_isolation)" in err
