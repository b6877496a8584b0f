"""`gate-sync residents import` and `passes bulk|reissue|expire` on real files and stores."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from sync.cli import main
from sync.issuer import Issuer
from sync.store import IssuerStore
from tests.sync.stream_helpers import STORES, open_central, store_dsn

ZH_HEADER = ["社区", "小区", "楼栋", "单元", "房号", "姓名", "手机", "身份", "房东电话", "备注"]
ZH_ROWS = [
    ["CM1", "C1", "3", "2", "501", "王小明", "138 0013 8000", "住户", "", ""],
    ["CM1", "C1", "3", "2", "501", "王大明", "+86 13800138001", "住户", "", "老人"],
    ["CM1", "C1", "3", "2", "502", "李房东", "13900139000", "房东", "", ""],
    ["CM1", "C1", "3", "2", "502", "赵租客", "13600136000", "租户", "", ""],
    ["CM1", "C1", "5", "1", "101", "欧阳小明", "13500135000", "租客", "13900139000", ""],
]
FULL_NAMES = ("王小明", "王大明", "李房东", "赵租客", "欧阳小明")
PHONES = ("13800138000", "13900139000", "13600136000")


@dataclass
class Admin:
    """The admin's command line over one data folder (and PostgreSQL when given a DSN)."""

    data_dir: Path
    dsn: str | None
    capsys: pytest.CaptureFixture[str]

    def run(self, *words: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        prefix = ["--data-dir", str(self.data_dir)] + (["--dsn", self.dsn] if self.dsn else [])
        code = main([*prefix, *words])
        out, err = self.capsys.readouterr()
        return code, out, err

    def store(self) -> IssuerStore:
        return open_central(self.data_dir, self.dsn)


@pytest.fixture(params=STORES)
def admin(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Admin]:
    made = Admin(tmp_path / "centre", store_dsn(request), capsys)
    assert made.run("keys", "new")[0] == 0
    yield made


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_a_chinese_csv_imports_and_a_reimport_changes_nothing(admin: Admin, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "住户.csv", [ZH_HEADER, *ZH_ROWS])
    code, out, err = admin.run("residents", "import", str(path))
    assert code == 0, err
    assert "persons: 5 added, 0 updated, 0 unchanged" in out
    assert "households: 3 added" in out
    assert "ignored columns: 备注" in err
    code, out, _ = admin.run("residents", "import", str(path))
    assert "persons: 0 added, 0 updated, 5 unchanged" in summary(out)
    with closing(admin.store()) as store:
        recorded = {r.name: r for r in store.residents("C1")}
    assert recorded["王大明"].phone == "13800138001"
    assert recorded["赵租客"].landlord_id == recorded["李房东"].person_id
    assert recorded["欧阳小明"].landlord_id == recorded["李房东"].person_id  # by phone
    assert recorded["王小明"].household.household_id == "C1-3-2-501"


def test_an_english_xlsx_with_numbers_and_a_household_column(admin: Admin, tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["Compound", "Building", "Room", "Household", "Name", "Phone", "Role"],
        ["C1", 3, 501, "H501", "王小明", 13800138000, "resident"],
        ["C1", 3, 501, "H501", "Anna Li", None, "landlord"],
    ]
    path = write_xlsx(tmp_path / "residents.xlsx", rows)
    code, out, err = admin.run("residents", "import", str(path))
    assert code == 0, err
    assert "persons: 2 added" in out
    rows[1][5] = 13800138009  # a new phone: updated, not added
    write_xlsx(path, rows)
    _, out, _ = admin.run("residents", "import", str(path))
    assert "persons: 0 added, 1 updated, 1 unchanged" in out
    with closing(admin.store()) as store:
        assert {r.name: r.phone for r in store.residents()} == {
            "王小明": "13800138009",
            "Anna Li": "",
        }


def test_a_gb18030_csv_from_older_excel(admin: Admin, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "old.csv", [ZH_HEADER, *ZH_ROWS[:2]], encoding="gb18030")
    code, _, err = admin.run("residents", "import", str(path))
    assert code == 0, err
    with closing(admin.store()) as store:
        assert {r.name for r in store.residents()} == {"王小明", "王大明"}


def test_bad_rows_are_named_by_row_and_column_and_nothing_is_imported(
    admin: Admin, tmp_path: Path
) -> None:
    bad = [list(row) for row in ZH_ROWS]
    bad[1][6] = "12345"  # row 3
    bad[2][7] = "保安"  # row 4: not a role
    bad[3][4] = "502室!"  # row 5: not a room
    orphan = ["CM1", "C1", "7", "1", "101", "孙租客", "", "租户", "", ""]  # row 7
    path = write_csv(tmp_path / "bad.csv", [ZH_HEADER, *bad, orphan])
    code, _, err = admin.run("residents", "import", str(path))
    assert code == 1
    assert "nothing imported" in err
    assert "row 3, column phone: '+86 12345' is not a phone number" not in err
    assert "row 3, column phone: '12345' is not a phone number" in err
    assert "row 4, column role:" in err
    assert "row 5, column room:" in err
    assert "row 7, column role: tenant 孙租客 has no landlord" in err
    with closing(admin.store()) as store:
        assert store.residents() == []


def test_a_missing_column_and_a_duplicate_person(admin: Admin, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "no-role.csv", [["小区", "房号", "姓名"], ["C1", "101", "王五"]])
    code, _, err = admin.run("residents", "import", str(path))
    assert code == 1
    assert "row 1, column role: missing" in err
    twice = write_csv(tmp_path / "twice.csv", [ZH_HEADER, ZH_ROWS[0], ZH_ROWS[0]])
    code, _, err = admin.run("residents", "import", str(twice))
    assert code == 1
    assert "row 3, column name: 王小明 of C1-3-2-501 is in row 2 too" in err


def test_a_dry_run_writes_nothing(admin: Admin, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "住户.csv", [ZH_HEADER, *ZH_ROWS])
    code, out, _ = admin.run("residents", "import", str(path), "--dry-run")
    assert code == 0
    assert out.startswith("dry run, nothing written: 5 rows; persons: 5 added")
    with closing(admin.store()) as store:
        assert store.residents() == []


def test_bulk_passes_per_person_are_idempotent_and_carry_masked_names_only(
    admin: Admin, tmp_path: Path
) -> None:
    admin.run("residents", "import", str(write_csv(tmp_path / "r.csv", [ZH_HEADER, *ZH_ROWS])))
    out_file = tmp_path / "passes.jsonl"
    common = ["passes", "bulk", "--compound", "C1", "--per", "person", "--days", "90"]
    with closing(admin.store()) as store:
        before = store.list_version("directory")
    code, out, err = admin.run(
        *common, "--kind", "resident", "--chunk", "2", "--out", str(out_file)
    )
    assert code == 0, err
    assert "3 resident passes issued per person; 0 skipped" in out
    with closing(admin.store()) as store:
        assert store.list_version("directory") == before + 2  # two chunks, two versions
        directory = store.directory(datetime.now(UTC))
    assert sorted(row.display_name for row in directory) == ["李*东", "王*明", "王*明"]
    code, out, _ = admin.run(*common, "--kind", "resident", "--out", str(out_file))
    assert "0 resident passes issued per person; 3 skipped" in out
    code, out, _ = admin.run(*common, "--kind", "tenant", "--out", str(out_file))
    assert "2 tenant passes issued" in out
    written = out_file.read_text(encoding="utf-8")
    records = [json.loads(line) for line in written.splitlines()]
    assert len(records) == 5
    assert {r["unit"] for r in records} == {"3-2-501", "3-2-502", "5-1-101"}
    for secret in FULL_NAMES + PHONES:
        assert secret not in written


def test_bulk_passes_per_household_are_named_by_the_landlord(admin: Admin, tmp_path: Path) -> None:
    admin.run("residents", "import", str(write_csv(tmp_path / "r.csv", [ZH_HEADER, *ZH_ROWS])))
    common = ["passes", "bulk", "--compound", "C1", "--per", "household", "--days", "30"]
    code, out, err = admin.run(*common, "--kind", "resident", "--quota", "1/2")
    assert code == 0, err
    # 5-1-101 holds only a tenant: no resident pass for it.
    assert "2 resident passes issued per household; 0 skipped" in out
    with closing(admin.store()) as store:
        directory = store.directory(datetime.now(UTC))
    assert {(row.household_id, row.display_name, row.exit_quota) for row in directory} == {
        ("C1-3-2-501", "王*明", "1/2"),
        ("C1-3-2-502", "李*东", "1/2"),
    }
    _, out, _ = admin.run(*common, "--kind", "resident")
    assert "0 resident passes issued per household; 2 skipped" in out
    _, out, _ = admin.run(*common, "--kind", "vehicle", "--roles", "tenant")
    assert "2 vehicle passes issued per household" in out
    code, _, err = admin.run(*common, "--kind", "vehicle", "--roles", "owner")
    assert code == 1
    assert "--roles: unknown owner" in err


def test_reissue_and_expire_reach_the_gate_lists(admin: Admin, tmp_path: Path) -> None:
    admin.run("residents", "import", str(write_csv(tmp_path / "r.csv", [ZH_HEADER, *ZH_ROWS])))
    out_file = tmp_path / "p.jsonl"
    admin.run(
        "passes", "bulk", "--compound", "C1", "--kind", "tenant", "--per", "person",
        "--days", "10", "--out", str(out_file),
    )  # fmt: skip
    first, second = (json.loads(line)["pass_id"] for line in out_file.read_text().splitlines())
    with closing(admin.store()) as store:
        issuer = Issuer(admin.data_dir, store)
        held = issuer.list_versions()
    code, out, err = admin.run("passes", "reissue", first, "--days", "30")
    assert code == 0, err
    new_id = out.split()[3]
    code, out, _ = admin.run("passes", "expire", second)
    assert out.strip() == f"{second} expired now"
    code, out, _ = admin.run("passes", "expire", second)
    assert "was already revoked" in out
    code, _, err = admin.run("passes", "reissue", second)
    assert code == 1
    assert "revoked already" in err
    with closing(admin.store()) as store:
        issuer = Issuer(admin.data_dir, store)
        now = datetime.now(UTC)
        signed = issuer.signed_lists(now, gate_id="gate-a", have=held)
        holders = store.live_holders("tenant", now)
        tenants = {r.person_id for r in store.residents() if r.role == "tenant"}
        old_fields = store.get_pass(first)
    lists = {item["name"]: item for item in signed["payload"]["lists"]}
    assert lists["revocations"]["version"] == held["revocations"] + 2
    revoked = {item["pass_id"]: item["reason"] for item in lists["revocations"]["items"]}
    assert revoked == {first: f"reissued as {new_id}", second: "expired early"}
    directory = lists["directory"]
    assert directory["version"] > held["directory"]
    listed = {item["pass_id"] for item in directory["items"]}
    assert new_id in listed
    assert not {first, second} & listed
    if directory["kind"] == "delta":
        assert {first, second} <= set(directory["removed"])
    assert old_fields.revoked_at is not None
    assert len(holders) == 1 and holders < tenants  # the reissued pass kept its holder


def test_big_files_show_progress(admin: Admin, tmp_path: Path) -> None:
    header = ["compound", "building", "unit", "room", "name", "phone", "role"]
    rows = [
        [
            "C9",
            str(1 + n // 100),
            "1",
            str(100 + n % 100),
            f"住户{n:03d}号",
            f"137{n:08d}",
            "resident",
        ]
        for n in range(600)
    ]
    path = write_csv(tmp_path / "big.csv", [header, *rows], encoding="utf-8")  # no BOM
    code, out, err = admin.run("residents", "import", str(path))
    assert code == 0, err
    assert "rows checked 600/600" in err
    assert "persons: 600 added" in out
    code, out, err = admin.run(
        "passes", "bulk", "--compound", "C9", "--kind", "resident", "--per", "household",
        "--days", "7", "--chunk", "250",
    )  # fmt: skip
    assert code == 0, err
    assert err.splitlines()[-1] == "passes issued 600/600"
    assert "passes issued 250/600" in err


def test_the_residents_ledger_lists_who_lives_where(admin: Admin, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "住户.csv", [ZH_HEADER, *ZH_ROWS])
    assert admin.run("residents", "import", str(path))[0] == 0
    out = tmp_path / "住户台账.xlsx"
    code, _, err = admin.run("ledgers", "residents", "--out", str(out))
    assert code == 0, err
    book = load_workbook(out, read_only=True)
    try:
        rows = [tuple(row) for row in book.active.iter_rows(values_only=True)]
    finally:
        book.close()
    assert rows[0][:2] == ("社区", "小区") and rows[1][:2] == ("community", "compound")
    people = {row[6]: row for row in rows[2:]}
    assert set(people) == set(FULL_NAMES)
    assert people["赵租客"][8:11] == ("租户 tenant", "李房东", "13900139000")
    assert people["王小明"][5:8] == ("C1-3-2-501", "王小明", "13800138000")
