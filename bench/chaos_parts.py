"""What the sync chaos run drives: the server it kills, the gates it restarts, the centre's view.

``bench/chaos.py`` picks the steps; these carry them out and read back what the centre
holds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.centre import ADMIN_TOKEN, free_port, wait_serving
from bench.ledger import draft
from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.uplink import UplinkSettings, Uploader
from tests.sync.faultproxy import Fault, FaultProxy

BATCH = 10  # entries per batch: small, so a few entries make several requests
TIMEOUT_S = 0.5  # the uploader's HTTP timeout: what a stall costs
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NETWORK_FAULTS = (Fault.RESET, Fault.CUT, Fault.DROP_REPLY, Fault.DUPLICATE, Fault.STALL)
KILL_WINDOWS = (Fault.HOLD_BODY, Fault.HOLD_SENT, Fault.HOLD_REPLY)


class ChaosFailure(AssertionError):
    """An invariant broke; the message names the seed that replays it."""


# -- the server ---------------------------------------------------------------------------------


class Server:
    """``gate-sync serve`` as a process of its own, killed and started again at will."""

    def __init__(self, data_dir: Path, dsn: str | None) -> None:
        """Over ``data_dir`` (and PostgreSQL at ``dsn`` when given); not started yet."""
        self.data_dir = data_dir
        self.dsn = dsn
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        token = data_dir / "admin.token"
        token.write_text(ADMIN_TOKEN, encoding="utf-8")
        token.chmod(0o600)
        self._token = token

    @property
    def url(self) -> str:
        """The running server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        """Whether the server process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start on a fresh port and wait (bounded) until it answers."""
        self.port = free_port()
        script = str(Path(sys.executable).parent / "gate-sync")
        command = [script, "--data-dir", str(self.data_dir), "serve", "--port", str(self.port),
                   "--admin-token-file", str(self._token)]  # fmt: skip
        if self.dsn is not None:
            command += ["--dsn", self.dsn]
        with (self.data_dir / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_serving(self.url, self.process, self.data_dir / "serve.log")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (a kill when it will not go)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        """The server's output so far."""
        path = self.data_dir / "serve.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def errors(self) -> list[str]:
        """Lines of its log that are errors or tracebacks."""
        return [
            line
            for line in self.log().splitlines()
            if line.startswith("ERROR") or "Traceback" in line
        ]


# -- the gates ----------------------------------------------------------------------------------


@dataclass
class Gate:
    """One gate: its ledger file, open ledger and uploader, and its own fault proxy."""

    gate_id: str
    path: Path
    token: str
    proxy: FaultProxy
    ledger: Ledger | None = None
    uploader: Uploader | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> the gate's hash
    stream_id: str = ""
    appended: int = 0

    def open(self) -> None:
        """Open the ledger and a new uploader on it (a gate starting)."""
        self.ledger = Ledger.open(self.path, gate_id=self.gate_id)
        self.stream_id = self.ledger.stream_id
        self.uploader = Uploader(
            self.ledger,
            base_url=self.proxy.url,
            gate_id=self.gate_id,
            token=self.token,
            clock=FakeClock(),
            settings=UplinkSettings(timeout_s=TIMEOUT_S, max_entries=BATCH),
            sleep=lambda _delay: None,  # the schedule decides when to try again
        )

    def close(self) -> None:
        """Close the uploader and ledger (a gate stopping)."""
        if self.uploader is not None:
            self.uploader.close()
        if self.ledger is not None:
            self.ledger.close()
        self.uploader = self.ledger = None

    def append(self, count: int) -> None:
        """Append ``count`` entries, remembering each one's hash."""
        assert self.ledger is not None
        for _ in range(count):
            entry = self.ledger.append(draft(self.appended))
            self.appended += 1
            self.hashes[entry.seq] = entry.hash

    def acked(self) -> int:
        """The gate's acknowledged cursor."""
        assert self.ledger is not None
        return int(self.ledger.sync.status().acked_through)

    def next_request(self) -> int:
        """The number the proxy will give this gate's next request."""
        return len(self.proxy.seen) + 1


# -- the centre as the admin API shows it -------------------------------------------------------


@dataclass
class CentreView:
    """What the centre was seen to hold, read incrementally through the admin API."""

    stored: dict[tuple[str, int], str] = field(default_factory=dict)  # (stream, seq) -> hash
    after: int = 0

    def refresh(self, url: str) -> list[str]:
        """Read the rows stored since last time; the problems they show."""
        problems: list[str] = []
        with httpx.Client(base_url=url, timeout=10, headers=ADMIN) as client:
            while True:
                page = client.get(f"/v1/admin/entries?after={self.after}&limit=1000")
                page.raise_for_status()
                rows = [json.loads(line) for line in page.text.splitlines()]
                if not rows:
                    return problems
                for row in rows:
                    key = (str(row["stream_id"]), int(row["seq"]))
                    if key in self.stored:
                        problems.append(f"{key} is stored twice")
                    self.stored[key] = str(row["hash"])
                    if row.get("flagged"):
                        problems.append(f"{key} is flagged: {row.get('problem')}")
                self.after = int(page.headers["X-Next-After"])

    def cursors(self, url: str) -> dict[str, int]:
        """Each stream's stored_through, from the fleet view."""
        fleet = httpx.get(f"{url}/v1/admin/gates", headers=ADMIN, timeout=10).json()
        return {
            str(s["stream_id"]): int(s["stored_through"])
            for g in fleet["gates"]
            for s in g["streams"]
        }


# -- the run ------------------------------------------------------------------------------------
