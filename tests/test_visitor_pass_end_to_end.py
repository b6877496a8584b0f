"""A one-time visitor pass, requested and approved at a real centre, used at a real gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from gate_agent import cli as agent_cli
from gate_agent.assemble import open_gate
from gate_agent.config import load_config
from sync import cli as sync_cli
from sync.cli import open_central
from tests.limits import PATIENCE_S
from tests.sync.test_residents_cli import ZH_HEADER, ZH_ROWS, write_csv
from tests.test_gate_syncs import centre

__all__ = ["centre"]  # the fixture: `gate-sync serve` as its own process


def gate_toml(tmp_path: Path, url: str) -> Path:
    """Gate G1 of compound C1, a camera each way, a thermometer the test sets, syncing."""
    path = tmp_path / "gate.toml"
    path.write_text(
        f"""[gate]
id = "G1"
compound_id = "C1"
community_id = "CM1"
data_dir = "gate"

[[cameras]]
source = "sim:"
direction = "in"

[[cameras]]
source = "sim:"
direction = "out"

[scanner]
debounce_seconds = 0.5

[thermometer]
kind = "simulated"
warmup_seconds = 0
wait_seconds = 2

[signals]
kind = "mock"
open_seconds = 0.2
hold_seconds = 0.2

[console]
enabled = false

[sync]
enabled = true
server_url = "{url}"
poll_seconds = 0.2
lists_poll_seconds = 0.3
""",
        encoding="utf-8",
    )
    return path


def until(ready: Callable[[], bool], seconds: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready()


def test_a_one_time_visitor_pass_lets_its_holder_in_once(
    tmp_path: Path, centre: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, data = centre

    def admin(*args: str) -> str:
        capsys.readouterr()
        assert sync_cli.main(["--data-dir", str(data), *args]) == 0, capsys.readouterr().err
        return capsys.readouterr().out.strip()

    admin("keys", "new")
    admin("residents", "import", str(write_csv(tmp_path / "residents.csv", [ZH_HEADER, *ZH_ROWS])))
    with closing(open_central(data, None)) as store:
        host = next(r.household for r in store.residents() if r.household.compound == "C1")
    asked = admin("visitors", "request", "--host", host.household_id, "--name", "赵小燕",
                  "--phone", "13700000001", "--reason", "探望老人", "--hours", "4", "--once",
                  "--by", "王小明")  # fmt: skip
    request_id = asked.split()[2]
    text = admin("visitors", "approve", request_id, "--by", "社区李四")
    code = admin("gates", "enrol", "G1")
    path = gate_toml(tmp_path, url)
    assert agent_cli.main(["--config", str(path), "sync", "enrol", "--code", code]) == 0

    with open_gate(load_config(path)) as gate:
        until(lambda: len(gate.ledger.state.issuer_keys()) == 1)
        gate.simulated_thermometer().set(36.6)
        into, out = gate.simulated_camera("in"), gate.simulated_camera("out")

        def show(camera: object, count: int) -> tuple[str, str]:
            camera.show_pass(text)  # type: ignore[attr-defined]
            until(lambda: gate.ledger.count() == count)
            camera.show_nothing()  # type: ignore[attr-defined]
            entry = gate.ledger.entries()[-1]
            time.sleep(0.6)  # past the scanner's debounce
            return entry.direction, f"{entry.outcome}/{entry.reason}"

        assert show(into, 1) == ("in", "allow/ok")
        assert show(out, 2) == ("out", "allow/ok")
        assert show(into, 3) == ("in", "deny/pass_used")
        entries = gate.ledger.entries()
    assert {e.pass_id for e in entries} == {entries[0].pass_id}
    assert entries[0].pass_kind == "visitor" and entries[0].household_id == host.household_id
