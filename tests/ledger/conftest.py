"""Fixtures of the ledger tests: a fresh ledger file in pytest's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gate_agent.ledger import Ledger


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """Where the test's ledger lives (not created yet)."""
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    """An open, empty ledger for gate ``gate-a``, closed after the test."""
    with Ledger.open(ledger_path, gate_id="gate-a") as opened:
        yield opened
