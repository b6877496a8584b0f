"""A running simulated gate with its console on 127.0.0.1, for API and browser tests."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from gate_agent.assemble import Gate, open_gate
from gate_agent.clock import SystemClock
from gate_agent.config import GateConfig
from gate_agent.console.auth import Roster
from gate_agent.console.server import ConsoleServer, console_app, roster_path
from gate_agent.core.passes import PassFields, PassKind, Scope, key_id, mask_name, sign
from tests.chromium import launch_browser
from tests.console import browser_kit

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
GUARD = "王师傅"
KEY = Ed25519PrivateKey.generate()


@dataclass
class ConsoleSite:
    """The gate, its console's URL, and the verbs tests use to drive them."""

    url: str
    gate: Gate
    guard_name: str
    guard_pin: str
    admin_token: str
    server: ConsoleServer
    app: FastAPI
    _revoked: list[str] = field(default_factory=list)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    def make_pass(
        self,
        pass_id: str,
        *,
        household: str = "H0301",
        kind: str = "resident",
        name: str = "张三明",
        unit: str = "3-2-501",
    ) -> str:
        """A pass signed by a key this gate trusts."""
        now = datetime.now(UTC).replace(microsecond=0)
        fields = PassFields(
            pass_id=pass_id,
            kind=PassKind(kind),
            household_id=household,
            scope=Scope.parse("compound:C1"),
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=30),
            display_name=mask_name(name),
            unit=unit,
        )
        return sign(fields, KEY)

    def stop_serving(self) -> None:
        """Stop the console's server: every open connection (a page's event stream) is
        cut, and connections are refused until ``serve_again``."""
        self.server.stop()

    def serve_again(self) -> None:
        """Serve the same app on the same port again: to a page, as after a moment
        without the gate's Wi-Fi (sessions, being the app's, hold)."""
        self.server = ConsoleServer(self.app, "127.0.0.1", self.server.port)
        self.server.start()

    def revoke(self, pass_id: str) -> None:
        """Put a pass on this gate's revocation list, as the centre's next list would."""
        self._revoked.append(pass_id)
        now = datetime.now(UTC).isoformat()
        items = [{"pass_id": p, "revoked_at": now, "reason": "test"} for p in self._revoked]
        self.gate.ledger.state.apply_snapshots({"revocations": (next(self._versions), items)})


def site_config(tmp_path: Path, overrides: dict[str, Any] | None = None) -> GateConfig:
    """A screening gate with two simulated lanes, a simulated thermometer and mock pins.

    ``overrides`` maps a section to settings put over the section's (``{"gate":
    {"lists_max_age_hours": 1}}``).
    """
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    raw: dict[str, Any] = {
        "gate": {"id": "G1", "compound_id": "C1", "community_id": "M1", "name": "北门",
                 "data_dir": str(tmp_path / "gate")},
        "cameras": [{"source": "sim:", "direction": "in", "fps": 20},
                    {"source": "sim:", "direction": "out", "fps": 20}],
        "scanner": {"debounce_seconds": 0.5},
        "thermometer": {"kind": "simulated", "warmup_seconds": 0, "wait_seconds": 0.5},
        "signals": {"kind": "mock", "open_seconds": 3.0, "hold_seconds": 0.3},
        "console": {"host": "127.0.0.1", "port": 8080, "admin_token_file": str(token)},
    }  # fmt: skip
    for section, settings in (overrides or {}).items():
        raw[section] = {**raw[section], **settings}
    return GateConfig.model_validate(raw)


def trust(gate: Gate) -> None:
    """Give the gate the test issuer's key and empty lists, as a fresh import would."""
    raw = base64.b64encode(KEY.public_key().public_bytes_raw()).decode()
    key = {"kid": key_id(KEY.public_key()), "public_key": raw, "retired": False}
    gate.ledger.state.apply_snapshots(
        {"keys": (1, [key]), "revocations": (1, []), "isolations": (1, [])}
    )


class UnsyncedClock(SystemClock):
    """The machine's clock, said to be unsynchronised whatever the kernel says."""

    def synced(self) -> bool:
        """Never."""
        return False


class SyncedClock(SystemClock):
    """The machine's clock, said to be synchronised whatever the kernel says."""

    def synced(self) -> bool:
        """Always."""
        return True


class JumpingClock(SyncedClock):
    """The machine's clocks, with a wall clock a test sets back or forward (``offset``)."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The machine's wall time plus the offset."""
        return super().now() + self.offset


@pytest.fixture
def console_clock() -> SystemClock:
    """The clock of the console's gate (a test may parametrize it to another)."""
    return SyncedClock()


@pytest.fixture
def console_overrides() -> dict[str, Any]:
    """Settings over the console gate's config (a test may parametrize it), by section."""
    return {}


@pytest.fixture
def console(
    tmp_path: Path, console_clock: SystemClock, console_overrides: dict[str, Any]
) -> Iterator[ConsoleSite]:
    """A running gate and its console; guard 王师傅 on shift; the admin token known."""
    config = site_config(tmp_path, console_overrides)
    clock = console_clock
    pin = Roster(roster_path(config.gate.data_dir)).add(
        GUARD, until=clock.now() + timedelta(hours=8)
    )
    with open_gate(config, clock=clock) as gate:
        trust(gate)
        app = console_app(gate, config.console, clock)
        server = ConsoleServer(app, "127.0.0.1", 0)
        server.start()
        site = ConsoleSite(server.url, gate, GUARD, pin, ADMIN_TOKEN, server, app)
        try:
            yield site
        finally:
            site.server.stop()


# -- for the browser tests (tests/console/browser_kit.py) -----------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Debian chromium for the module, driven by Playwright."""
    yield from launch_browser()


@pytest.fixture
def watched(browser: Any, console: ConsoleSite) -> Iterator[browser_kit.Watched]:
    """A fresh context (no cookies, no stored language) at monitor size, for one test."""
    yield from browser_kit.watch(browser, console)
