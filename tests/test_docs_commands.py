"""The documents' commands are real: every `gate-agent …`/`gate-sync …` line in a code
block of docs/*.md and README.md names a subcommand whose --help works, and options it has.

Inline code in the text (`gate-sync keys rotate --overlap-days 14`) is checked too, where
naming a group (`gate-sync trace`) is fine. The README's commands are also parsed whole
(tests/test_readme.py); the docs' lines may carry placeholders (`[--hours 24]`, `…`), so
here the subcommand path and the option names are checked, not the values.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate_agent import cli as agent_cli
from sync import cli as sync_cli

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
PROGRAMS = {
    # Built once: parsing never changes a parser, and the sync one is large.
    "gate-agent": functools.cache(agent_cli._parser),
    "gate-sync": functools.cache(sync_cli._parser),
}
_OPTION = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")


@dataclass(frozen=True)
class Shown:
    """One command line shown in a document."""

    document: str
    line: str
    program: str
    words: tuple[str, ...]
    inline: bool = False  # from inline code in the text: a command group may be named

    def __str__(self) -> str:
        return f"{self.document}: {self.line}"


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of a Markdown text."""
    return re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, flags=re.S | re.M)


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in an example: plain words will do
        return line.split()


def shown_commands() -> list[Shown]:
    """Every command line of the two programs in the documents' code blocks."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in code_blocks(text):
            for line in block.replace("\\\n", " ").splitlines():
                words = _words(line.split("  #")[0].strip().removeprefix("$ "))
                for index, word in enumerate(words):
                    # The program first on the line, or by its path after `sudo -u …` and
                    # the like (not `systemctl restart gate-agent`, the unit's name).
                    name = word.rsplit("/", 1)[-1]
                    if name in PROGRAMS and (index == 0 or word.endswith("/bin/" + name)):
                        found.append(
                            Shown(document.name, line.strip(), name, tuple(words[index + 1 :]))
                        )
                        break
        for span in re.findall(r"`((?:gate-agent|gate-sync) [^`\n]+)`", text):
            words = _words(span)
            found.append(Shown(document.name, span, words[0], tuple(words[1:]), inline=True))
    return found


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _takes_value(parser: argparse.ArgumentParser, option: str) -> bool:
    for action in parser._actions:
        if option in action.option_strings:
            return action.nargs != 0
    return False


def command_path(
    parser: argparse.ArgumentParser, words: tuple[str, ...]
) -> tuple[list[str], argparse.ArgumentParser, list[str]]:
    """The subcommand words, the parser they lead to, and the options used along the way."""
    path: list[str] = []
    options: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        choices = _subcommands(parser)
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            options.append(option)
            index += 2 if "=" not in word and _takes_value(parser, option) else 1
            continue
        if word not in choices:
            break
        path.append(word)
        parser = choices[word]
        index += 1
    # The options of the leaf command, however they are written ([--hours 24], --x=1).
    options += [m.group(1) for w in words[index:] if (m := _OPTION.match(w))]
    return path, parser, options


def _known_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_the_documents_show_many_commands() -> None:
    shown = shown_commands()
    assert len([s for s in shown if not s.inline]) >= 50
    assert len([s for s in shown if s.inline]) >= 50
    assert any(s.document == "operations.md" for s in shown)


@pytest.mark.parametrize("shown", shown_commands(), ids=str)
def test_every_documented_command_exists(shown: Shown, capsys: pytest.CaptureFixture[str]) -> None:
    root = PROGRAMS[shown.program]()
    path, leaf, options = command_path(root, shown.words)
    if not shown.inline:
        assert not _subcommands(leaf), f"{shown}: `{shown.program} {' '.join(path)}` is a group"
    with pytest.raises(SystemExit) as exited:
        root.parse_args([*path, "--help"])
    assert exited.value.code == 0, f"{shown}: --help of {path} failed"
    assert capsys.readouterr().out.startswith("usage:")
    known = _known_options(root) | _known_options(leaf)
    unknown = [option for option in options if option not in known]
    assert not unknown, f"{shown}: no option {unknown} in `{shown.program} {' '.join(path)}`"


def test_a_made_up_command_or_option_is_caught() -> None:
    root = agent_cli._parser()
    path, leaf, _ = command_path(root, ("sync", "enrol", "--code", "X"))
    assert path == ["sync", "enrol"] and not _subcommands(leaf)
    path, leaf, _ = command_path(root, ("sync", "frobnicate"))
    assert path == ["sync"] and _subcommands(leaf)  # stops short: reported as missing
    _, leaf, options = command_path(root, ("guards", "add", "X", "[--shifts", "2]"))
    assert "--shifts" in options and "--shifts" not in _known_options(leaf)
