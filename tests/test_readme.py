"""The README's promises: the two commands exist, and every command it shows parses."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from gate_agent import cli as agent_cli
from sync import cli as sync_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shown_commands() -> list[list[str]]:
    """Every gate-agent or gate-sync command in the README's shell blocks."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            words = shlex.split(line.split("  #")[0], comments=True)
            if words and words[0] in {"gate-agent", "gate-sync"}:
                commands.append(words)
    return commands


def test_the_readme_shows_the_two_commands_first() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    assert "make demo" in first_block.group(1)
    assert "make test" in first_block.group(1)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "bench", "lint"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_make_test_runs_every_check_and_the_tests() -> None:
    """`make -n -B` prints what `make test` runs on a fresh clone: the set-up, then the
    linter, the formatter's check, the type checker, the import contracts and pytest."""
    dry = subprocess.run(
        ["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    wanted = ["ruff check .", "ruff format --check .", "/mypy", "/lint-imports", "pytest -q -n"]
    places = [dry.find(command) for command in wanted]
    assert -1 not in places and places == sorted(places), dry
    setup = dry.find("pip install")
    assert -1 < setup < places[0]  # make test installs what it runs first


def test_the_readme_shows_commands() -> None:
    assert len(shown_commands()) >= 8


@pytest.mark.parametrize("words", shown_commands(), ids=" ".join)
def test_every_readme_command_parses(words: list[str]) -> None:
    parser = agent_cli._parser() if words[0] == "gate-agent" else sync_cli._parser()
    args = parser.parse_args(words[1:])
    assert callable(args.handler)
