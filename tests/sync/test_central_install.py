"""The central server installs and runs with no camera, GPIO or I2C libraries."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import httpx

from bench.centre import ADMIN_TOKEN, build_ledger, free_port, wait_serving
from gate_agent.clock import SystemClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, Uploader
from gate_agent.uplink_http import enrol
from sync import cli as sync_cli

BLOCKED = ("cv2", "zxingcpp", "pyzbar", "gpiozero", "smbus2", "numpy", "sqlite_utils")

#: Makes every module of the gate's stack unimportable, as on a server installed with
#: `pip install .[central]` alone.
BLOCK = f"""
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
        return None

sys.meta_path.insert(0, Missing())
"""


def test_gate_sync_runs_with_the_gate_stack_missing(tmp_path: Path) -> None:
    program = BLOCK + textwrap.dedent(
        f"""
        from sync import cli
        code = cli.main(["--data-dir", {str(tmp_path)!r}, "keys", "new"])
        code |= cli.main(["--data-dir", {str(tmp_path)!r}, "lists", "export"])
        code |= cli.main(["--data-dir", {str(tmp_path)!r}, "passes", "issue", "--scope",
                          "compound:C1", "--kind", "resident", "--household", "H1",
                          "--name", "张三", "--unit", "1-1-101", "--days", "9"])
        sys.exit(code)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("GP1:")  # the pass, last


def test_gate_sync_serve_takes_uploads_and_serves_the_admin_page_without_the_gate_stack(
    tmp_path: Path,
) -> None:
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    port = free_port()
    # Any import of the gate's stack fails in the server, so an upload, an enrolment or
    # a page that needed one would fail here (openpyxl's optional numpy falls back).
    program = BLOCK + textwrap.dedent(
        f"""
        from sync import cli
        sys.exit(cli.main(["--data-dir", {str(tmp_path)!r}, "serve", "--port", "{port}",
                           "--admin-token-file", {str(token)!r}]))
        """
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-c", program], stdout=subprocess.DEVNULL, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, server, log)
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert httpx.get(f"{url}/v1/admin/gates", headers=admin, timeout=10).json()["gates"] == []
        page = httpx.get(f"{url}/admin/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        # A gate enrols with a code from the CLI and uploads its ledger: the whole uplink.
        code = io.StringIO()
        with redirect_stdout(code):
            assert sync_cli.main(["--data-dir", str(tmp_path), "gates", "enrol", "G1"]) == 0
        enrolment = enrol(url, "G1", code.getvalue().strip())
        build_ledger(tmp_path / "gate.sqlite3", "G1", 12)
        with Ledger.open(tmp_path / "gate.sqlite3", gate_id="G1") as ledger:
            with Uploader(ledger, base_url=url, gate_id="G1", token=enrolment.token,
                          clock=SystemClock()) as uploader:  # fmt: skip
                assert uploader.drain() is Step.IDLE
            assert ledger.sync.status().backlog == 0
        (gate,) = httpx.get(f"{url}/v1/admin/gates", headers=admin, timeout=10).json()["gates"]
        assert gate["gate_id"] == "G1"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode in (0, -signal.SIGTERM), log.read_text(encoding="utf-8")
    assert "Application shutdown complete" in log.read_text(encoding="utf-8")
