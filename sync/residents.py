"""Reading the residents file (CSV or XLSX): headers in Chinese or English, every row checked.

One row is one person. The whole file is checked before anything is written: every
problem names its row (as the spreadsheet numbers it, the header being row 1) and its
column, and one bad row means nothing is imported. A person is known by (household id,
full name), so importing the file again updates phones, roles and landlords instead
of adding people twice. See ``docs/administration.md`` for the columns.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import load_workbook

from gate_agent.core.passes import PassFieldError, mask_name
from sync.errors import RosterRefused
from sync.store.central import Household, Person, Resident

#: Each column's English name, then the Chinese headers read as the same column.
COLUMNS: dict[str, tuple[str, ...]] = {
    "community": ("社区",),
    "compound": ("小区",),
    "building": ("楼栋", "楼号", "栋"),
    "unit": ("单元",),
    "room": ("房号", "室", "门牌号"),
    "household": ("户号", "household_id"),
    "name": ("姓名",),
    "phone": ("电话", "手机", "手机号", "联系电话"),
    "role": ("身份", "类型", "人员类型"),
    "landlord_phone": ("房东电话", "房东手机"),
}
#: Each role and the words (English or Chinese) read as it.
ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "resident": ("resident", "住户", "居民", "业主"),
    "tenant": ("tenant", "租户", "租客"),
    "landlord": ("landlord", "房东", "出租人"),
}
REQUIRED = ("compound", "name", "role")
#: Problems listed in the error before "... and N more".
MAX_LISTED = 50

_HEADERS = {alias: name for name, aliases in COLUMNS.items() for alias in (name, *aliases)}
_ROLES = {word: role for role, words in ROLE_WORDS.items() for word in words}
_IDENT = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,23}")
_PART = re.compile(r"[0-9A-Za-z]{1,6}")
_PHONE = re.compile(r"1[3-9][0-9]{9}|0[0-9]{9,11}")
_PHONE_NOISE = re.compile(r"[\s()\-]")
_MAX_NAME = 40

Progress = Callable[[int, int], None]


@dataclass
class Roster:
    """A checked residents file: its households and persons, ready for the store."""

    households: list[Household] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rows: int = 0


def read_table(path: Path) -> list[list[str]]:
    """The cells of a .csv (UTF-8 with or without BOM, else GB18030) or .xlsx file's first sheet."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                # Older Chinese Excel saves CSV in the local code page.
                text = raw.decode("gb18030")
            except UnicodeDecodeError as exc:
                raise RosterRefused(
                    "bad-encoding", f"{path}: neither UTF-8 nor GB18030 text"
                ) from exc
        return [list(row) for row in csv.reader(io.StringIO(text, newline=""))]
    if suffix in (".xlsx", ".xlsm"):
        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise RosterRefused("bad-file", f"{path}: not a readable XLSX file: {exc}") from exc
        try:
            sheet = book.worksheets[0]
            return [[_cell(value) for value in row] for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    raise RosterRefused("bad-file", f"{path}: give a .csv or .xlsx file")


def _cell(value: object) -> str:
    """A spreadsheet value as text: 13800138000.0 (a phone typed as a number) as digits."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check(
    table: Sequence[Sequence[str]],
    known: Iterable[Resident] = (),
    progress: Progress | None = None,
) -> Roster:
    """Check every row; the roster, or ``RosterRefused`` listing every problem.

    ``known`` are the persons already recorded, where a tenant's landlord may be.
    """
    if not table or not any(cell.strip() for cell in table[0]):
        raise RosterRefused("bad-rows", "row 1: the header row is missing")
    columns, roster, problems = _header(table[0])
    if problems:
        raise RosterRefused("bad-rows", _listing(problems))
    seen: dict[tuple[str, str], int] = {}
    homes: dict[str, tuple[Household, int]] = {}
    tenants: list[tuple[int, Person, str]] = []
    total = len(table) - 1
    for index, cells in enumerate(table[1:], start=2):
        if progress is not None:
            progress(index - 1, total)
        row = {name: cells[at].strip() if at < len(cells) else "" for name, at in columns.items()}
        if not any(row.values()):
            continue
        roster.rows += 1
        bad = len(problems)
        home = _household(row, index, problems)
        name = _name(row.get("name", ""), index, problems)
        phone = _phone(row.get("phone", ""), index, "phone", problems)
        role = _ROLES.get(row.get("role", "").lower())
        if role is None:
            words = ", ".join(w for words in ROLE_WORDS.values() for w in words)
            problems.append(
                f"row {index}, column role: {row.get('role', '')!r} is not one of {words}"
            )
        landlord_phone = _phone(row.get("landlord_phone", ""), index, "landlord_phone", problems)
        if len(problems) > bad or home is None or role is None:
            continue
        earlier = homes.get(home.household_id)
        if earlier is not None and earlier[0] != home:
            problems.append(
                f"row {index}, column household: {home.household_id} is at another address"
                f" in row {earlier[1]}"
            )
            continue
        homes.setdefault(home.household_id, (home, index))
        key = (home.household_id, name)
        if key in seen:
            problems.append(
                f"row {index}, column name: {name} of {home.household_id} is in row {seen[key]} too"
            )
            continue
        seen[key] = index
        person = Person(home.household_id, name, phone, role)
        if role == "tenant":
            tenants.append((index, person, landlord_phone))
        else:
            roster.persons.append(person)
    landlords = [p for p in roster.persons if p.role == "landlord"] + [
        Person(r.household.household_id, r.name, r.phone, r.role)
        for r in known
        if r.role == "landlord" and (r.household.household_id, r.name) not in seen
    ]
    for index, tenant, by_phone in tenants:
        linked = _landlord(tenant, by_phone, landlords, index, problems)
        if linked is not None:
            roster.persons.append(
                Person(tenant.household_id, tenant.name, tenant.phone, tenant.role, linked)
            )
    if problems:
        raise RosterRefused("bad-rows", _listing(problems))
    roster.households = [home for home, _ in homes.values()]
    return roster


def _header(cells: Sequence[str]) -> tuple[dict[str, int], Roster, list[str]]:
    columns: dict[str, int] = {}
    roster = Roster()
    problems: list[str] = []
    for at, cell in enumerate(cells):
        label = cell.strip().lstrip("\ufeff")
        name = _HEADERS.get(label.lower().replace(" ", "_"))
        if name is None:
            if label:
                roster.ignored_columns.append(label)
        elif name in columns:
            problems.append(f"row 1, column {label}: {name} is given twice")
        else:
            columns[name] = at
    for name in REQUIRED:
        if name not in columns:
            problems.append(f"row 1, column {name}: missing ({name} or {'/'.join(COLUMNS[name])})")
    if "household" not in columns and "room" not in columns:
        problems.append("row 1, column household: give household (户号) or room (房号)")
    return columns, roster, problems


def _household(row: dict[str, str], index: int, problems: list[str]) -> Household | None:
    bad = len(problems)
    for column in ("community", "compound"):
        value = row.get(column, "")
        if value and not _IDENT.fullmatch(value):
            problems.append(
                f"row {index}, column {column}: {value!r} is not an id"
                " (letters, digits, - or _, at most 24)"
            )
    if not row.get("compound"):
        problems.append(f"row {index}, column compound: empty")
    for column in ("building", "unit", "room"):
        value = row.get(column, "")
        if value and not _PART.fullmatch(value):
            problems.append(
                f"row {index}, column {column}: {value!r} must be 1-6 letters or digits"
            )
    household = row.get("household", "")
    if not household:
        parts = [row.get(c, "") for c in ("compound", "building", "unit", "room")]
        if not row.get("room"):
            problems.append(f"row {index}, column household: empty, and no room to make it from")
        household = "-".join(part for part in parts if part)
    if household and not _IDENT.fullmatch(household):
        problems.append(
            f"row {index}, column household: {household!r} is not an id"
            " (letters, digits, - or _, at most 24)"
        )
    if len(problems) > bad:
        return None
    return Household(
        household,
        row.get("community", ""),
        row["compound"],
        row.get("building", ""),
        row.get("unit", ""),
        row.get("room", ""),
    )


def _name(value: str, index: int, problems: list[str]) -> str:
    name = " ".join(value.split())
    if not name:
        problems.append(f"row {index}, column name: empty")
    elif len(name) > _MAX_NAME or not name.isprintable():
        problems.append(f"row {index}, column name: not a name (at most {_MAX_NAME} characters)")
    else:
        try:
            mask_name(name)
        except PassFieldError as exc:
            problems.append(f"row {index}, column name: {exc}")
    return name


def _phone(value: str, index: int, column: str, problems: list[str]) -> str:
    phone = _PHONE_NOISE.sub("", value)
    for prefix in ("+86", "0086"):
        if phone.startswith(prefix):
            phone = phone[len(prefix) :]
    if phone and not _PHONE.fullmatch(phone):
        problems.append(f"row {index}, column {column}: {value!r} is not a phone number")
        return ""
    return phone


def _landlord(
    tenant: Person, by_phone: str, landlords: list[Person], index: int, problems: list[str]
) -> tuple[str, str] | None:
    if by_phone:
        found = {(p.household_id, p.name) for p in landlords if p.phone == by_phone}
        where = f"column landlord_phone: no landlord with phone {by_phone} in the file or store"
    else:
        found = {
            (p.household_id, p.name) for p in landlords if p.household_id == tenant.household_id
        }
        where = (
            f"column role: tenant {tenant.name} has no landlord: list {tenant.household_id}'s"
            " landlord or give landlord_phone (房东电话)"
        )
    if len(found) == 1:
        return found.pop()
    if found:
        where = "column landlord_phone: several landlords match; give the landlord's phone"
    problems.append(f"row {index}, {where}")
    return None


def _listing(problems: list[str]) -> str:
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    lines = [f"{len(problems)} problem(s), nothing imported:", *shown]
    if more:
        lines.append(f"... and {more} more")
    return "\n".join(lines)
