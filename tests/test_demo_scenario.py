"""The scenario `make demo` ships, walked through the demo gate: each visitor decided as told.

The centre is made as the Makefile's demo recipe makes it (the same passes under the
same names), the gate is firmware_config/demo/gate.toml on a free port and without a
sync server, and `gate-agent demo --rounds 1` runs in its own process.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench.centre import free_port
from bench.soak_gate import sh, tool
from tests.limits import PATIENCE_S

ROOT = Path(__file__).parents[1]
SCENARIO = ROOT / "firmware_config/demo/scenario.json"

#: The Makefile's demo passes: (file name, what `passes issue` is given after the scope).
PASSES = {
    "resident": ["--kind", "resident", "--household", "LGQ012-H0301", "--name", "张三明",
                 "--days", "90"],
    "expired": ["--kind", "resident", "--household", "LGQ012-H0302", "--name", "李四",
                "--valid-from", "2026-01-01", "--valid-until", "2026-01-31"],
    "revoked": ["--kind", "tenant", "--household", "LGQ012-H0303", "--name", "王小红",
                "--days", "90", "--pass-id", "DEMOREVOKED"],
    "isolated": ["--kind", "resident", "--household", "LGQ012-H0404", "--name", "赵大为",
                 "--days", "90"],
    "fever": ["--kind", "resident", "--household", "LGQ012-H0505", "--name", "孙丽",
              "--days", "90"],
}  # fmt: skip

#: What each visit of the shipped scenario must come to, in order.
EXPECTED = [
    ("resident, healthy", "in", "allow", "ok"),
    ("the same resident again at once", "in", "deny", "already_inside"),
    ("expired pass (printed card)", "in", "deny", "expired"),
    ("revoked pass (tenant moved out)", "in", "deny", "revoked"),
    ("isolated household, going out", "out", "deny", "quarantined_exit"),
    ("fever, first reading", "in", "recheck", "recheck_temperature"),
    ("fever, re-check after a rest", "in", "deny", "fever"),
    ("resident going out", "out", "allow", "ok"),
    ("another compound's pass, bad angle", "in", "deny", "out_of_scope"),
    ("delivery worker", "in", "allow", "ok"),
    ("delivery worker leaves", "out", "allow", "ok"),
]


def make_centre(central: Path, passes: Path) -> None:
    sync = [tool("gate-sync"), "--data-dir", str(central)]
    sh(*sync, "keys", "new")
    issue = [*sync, "passes", "issue", "--scope", "compound:LGQ-012", "--unit", "3-2-501"]
    for name, options in PASSES.items():
        (passes / f"{name}.txt").write_text(sh(*issue, *options), encoding="ascii")
    elsewhere = sh(*sync, "passes", "issue", "--scope", "compound:LGQ-099", "--unit", "1-1-101",
                   "--kind", "resident", "--household", "LGQ099-H0101", "--name", "周强",
                   "--days", "90")  # fmt: skip
    (passes / "elsewhere.txt").write_text(elsewhere, encoding="ascii")
    delivery = sh(*sync, "passes", "issue", "--scope", "community:LGQ", "--kind", "delivery",
                  "--household", "LGQ-DELIVERY", "--name", "吴师傅", "--days", "30")  # fmt: skip
    (passes / "delivery.txt").write_text(delivery, encoding="ascii")
    sh(*sync, "passes", "revoke", "DEMOREVOKED", "--reason", "tenant moved out")
    sh(*sync, "households", "isolate", "LGQ012-H0404", "--until", "2099-12-31")


def test_the_makefile_issues_the_passes_this_test_issues() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    made = set(re.findall(r"\$\(DEMO\)/passes/(\w+)\.txt", recipe))
    assert made == {*PASSES, "elsewhere", "delivery"}


def test_the_shipped_demo_scenario_decides_each_visitor_as_its_label_says(tmp_path: Path) -> None:
    central, passes = tmp_path / "central", tmp_path / "passes"
    passes.mkdir()
    make_centre(central, passes)
    sh(tool("gate-sync"), "--data-dir", str(central), "lists", "export", "--out",
       str(tmp_path / "lists.json"))  # fmt: skip
    centre_key = sh(tool("gate-sync"), "--data-dir", str(central), "keys", "centre").strip()
    text = (ROOT / "firmware_config/demo/gate.toml").read_text(encoding="utf-8")
    text = text.replace("port = 8080", f"port = {free_port()}")
    text = text.replace("enabled = true ", "enabled = false")  # no centre to upload to here
    assert "enabled = false" in text
    config = tmp_path / "gate.toml"
    config.write_text(text, encoding="utf-8")
    (tmp_path / "admin.token").write_text(secrets.token_urlsafe(24), encoding="ascii")
    (tmp_path / "admin.token").chmod(0o600)
    gate = [tool("gate-agent"), "--config", str(config)]
    sh(*gate, "lists", "import", str(tmp_path / "lists.json"), "--trust-key", centre_key)

    labels = [visit["label"] for visit in json.loads(SCENARIO.read_text(encoding="utf-8"))]
    assert labels == [label for label, *_ in EXPECTED]  # the scenario and this test agree
    done = subprocess.run(
        [sys.executable, "-m", "gate_agent.cli", "--config", str(config), "demo",
         "--scenario", str(SCENARIO), "--passes", str(passes), "--rounds", "1", "--pace", "0.2"],
        capture_output=True, text=True, timeout=PATIENCE_S * 2, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "11 entries in the ledger; chain intact." in done.stdout
    with sqlite3.connect(tmp_path / "gate" / "ledger.sqlite3") as db:
        rows = db.execute("SELECT direction, outcome, reason FROM entries ORDER BY seq").fetchall()
    assert rows == [(direction, outcome, reason) for _, direction, outcome, reason in EXPECTED]
