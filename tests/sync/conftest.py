"""Fixtures shared by the sync tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sync.stream_helpers import fill_ledger

FAULT_ENTRIES = 240


@pytest.fixture(scope="session")
def ledger_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed gate ledger of FAULT_ENTRIES entries (gate GATE), to copy rather than fill."""
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    fill_ledger(path, FAULT_ENTRIES)
    return path


@pytest.fixture
def gate_ledger(tmp_path: Path, ledger_template: Path) -> Path:
    """A fresh copy of the template ledger at ``tmp_path/gate/ledger.sqlite3``."""
    path = tmp_path / "gate" / "ledger.sqlite3"
    path.parent.mkdir()
    shutil.copy(ledger_template, path)
    return path
