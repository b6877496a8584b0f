"""The admin page's words: every label and every error code in Chinese and English; and
every asset of the page packaged with the wheel."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from sync.ledgers import LEDGERS
from sync.pull import COLUMNS
from sync.trace import INSIDE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "sync" / "server" / "static" / "admin"
SERVER = ROOT / "sync" / "server"
#: Words the panels make from a prefix and a value the server sends.
DYNAMIC: dict[str, list[str]] = {
    "kind_": ["resident", "tenant", "worker", "delivery", "vehicle", "visitor"],
    "pass_": ["active", "revoked", "expired", "key-retired", "unverifiable"],
    "key_": ["active", "rotating", "retired"],
    "iso_": ["active", "planned", "ended", "lifted"],
    "done_": ["revoke", "reissue", "expire"],
    "role_": ["resident", "tenant", "landlord"],
    "vstate_": ["pending", "approved", "rejected", "cancelled"],
    "vdone_": ["approve", "reject", "cancel"],
    "range_": ["today", "yesterday", "week", "dates"],
    "trace_": ["gates", "pass", "household", "inside"],
    "ledger_": list(LEDGERS),
    "tc_": sorted({*COLUMNS, *INSIDE_COLUMNS}),
}
USES = [
    r'\bt: "([\w-]+)"', r'tPlaceholder: "([\w-]+)"', r'\bT\("([\w-]+)"\)', r'field\("([\w-]+)"',
    r'\["(col_\w+)"', r'title: "([\w-]+)"', r'data-t="([\w-]+)"', r', "(no_\w+)"\)',
]  # fmt: skip


def words() -> dict[str, tuple[str, str]]:
    text = (STATIC / "words.js").read_text(encoding="utf-8")
    pairs = re.findall(r'^\s*"?([\w-]+)"?: \["([^"]*)",\s*"([^"]*)"\]', text, re.M)
    pairs += re.findall(r'^\s*"?([\w-]+)"?: \["([^"]*)",\s*\n\s*"([^"]*)"\]', text, re.M)
    return {key: (zh, en) for key, zh, en in pairs}


def test_every_word_has_chinese_and_english() -> None:
    table = words()
    assert len(table) > 150
    for key, (zh, en) in table.items():
        assert re.search(r"[\u4e00-\u9fff]", zh), key
        assert en.strip() and en.isascii(), key


def test_every_word_the_page_uses_is_in_the_table() -> None:
    table = words()
    used: set[str] = set()
    for path in [STATIC / "index.html", *STATIC.glob("*.js"), *STATIC.glob("panels/*.js")]:
        text = path.read_text(encoding="utf-8")
        for pattern in USES:
            used.update(re.findall(pattern, text))
        for prefix, values in DYNAMIC.items():
            if f'"{prefix}" +' in text:
                used.update(prefix + value for value in values)
    used = {key for key in used if not key.endswith("_")} - {"_blank"}
    assert len(used) > 100
    assert sorted(used - set(table)) == []


def test_every_action_of_the_audit_trail_has_words() -> None:
    actions: set[str] = set()
    for path in SERVER.glob("admin_api*.py"):
        text = path.read_text(encoding="utf-8")
        actions.update(re.findall(r'"((?:pass|key|isolation|residents)\.[a-z]+)"', text))
    assert len(actions) >= 10
    table = words()
    assert sorted(a for a in actions if "act_" + a.replace(".", "_") not in table) == []


def server_codes() -> set[str]:
    codes: set[str] = set()
    for path in [
        *SERVER.glob("*.py"),
        *(ROOT / "sync").glob("*.py"),
        *(ROOT / "sync" / "store").glob("*.py"),
    ]:
        text = path.read_text(encoding="utf-8")
        codes.update(re.findall(r'\b(?:reply|_?error)\(\s*\d+,\s*"([\w-]+)"', text))
        codes.update(re.findall(r'BodyError\(\s*\d+,\s*"([\w-]+)"', text))
        codes.update(
            re.findall(r'(?:CardRefused|RosterRefused|VisitorRefused)\(\s*"([\w-]+)"', text)
        )
        codes.update(re.findall(r'return \d+, "([\w-]+)", str\(exc\)', text))
        codes.update(re.findall(r'BadQuery\(\s*"([\w-]+)"', text))
        codes.update(f"bad_{what}" for what in re.findall(r'_subject\(\w+, "(\w+)"\)', text))
    return codes


def test_every_error_code_the_server_answers_has_words() -> None:
    codes = server_codes()
    for expected in ("unauthorized", "bad_csrf", "account_locked", "no-cards", "bad-rows",
                     "key_in_use", "bad_pass_field"):  # fmt: skip
        assert expected in codes  # the scan finds them where they are made
    table = words()
    assert sorted(code for code in codes if f"err_{code}" not in table) == []


def test_every_asset_of_the_page_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["sync.server"]
    files = [p.relative_to(SERVER).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) >= 10
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
