"""A gate's whole stream through a real server socket, with `gate-sync` making the code."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from sync import cli, cli_serve
from sync.server.app import create_app
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    GATE,
    STORES,
    batch_dict,
    centre,
    fill_ledger,
    gzip_body,
    ledger_entries,
    serving,
)


@pytest.mark.parametrize("kind", STORES)
def test_a_gate_enrols_uploads_and_an_admin_pulls_every_entry_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "central"
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    on_dsn = ["--dsn", dsn] if dsn else []
    assert cli.main(["--data-dir", str(data), "gates", "enrol", GATE, *on_dsn]) == 0
    code = capsys.readouterr().out.strip()
    ledger = tmp_path / "gate" / "ledger.sqlite3"
    stream_id = fill_ledger(ledger, 60)
    entries = ledger_entries(ledger)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with centre(data, dsn) as opened:
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN)
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            enrolled = client.post("/v1/gates/enrol", json={"gate_id": GATE, "code": code})
            token = enrolled.json()["token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
            path = f"/v1/gates/{GATE}/streams/{stream_id}/batches"
            acks: list[int] = []

            def upload() -> None:
                with httpx.Client(base_url=url, timeout=10) as gate_client:
                    for start in range(0, 60, 9):
                        # Each batch also resends the previous one's last entry.
                        chunk = entries[max(0, start - 1) : start + 9]
                        body = gzip_body(batch_dict(chunk))
                        reply = gate_client.post(path, content=body, headers=headers)
                        acks.append(reply.json()["stored_through"])

            uploader = threading.Thread(target=upload)
            uploader.start()
            pulled: list[dict[str, object]] = []
            after = 0
            try:
                while True:
                    finished = not uploader.is_alive()
                    page = client.get(f"/v1/admin/entries?after={after}&limit=4", headers=admin)
                    lines = [json.loads(line) for line in page.text.splitlines()]
                    pulled += lines
                    after = int(page.headers["X-Next-After"])
                    if finished and not lines:
                        break
            finally:
                uploader.join()
    assert acks == [9, 18, 27, 36, 45, 54, 60]
    assert [line["seq"] for line in pulled] == list(range(1, 61))
    assert [line["hash"] for line in pulled] == [entry["hash"] for entry in entries]
    assert not any(line["flagged"] for line in pulled)


def test_serve_refuses_an_admin_token_others_can_read(tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(ADMIN_TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        cli_serve.read_admin_token(token_file)
    token_file.chmod(0o600)
    assert cli_serve.read_admin_token(token_file) == ADMIN_TOKEN
    token_file.write_text("short", encoding="utf-8")
    with pytest.raises(ValueError, match="at least 16"):
        cli_serve.read_admin_token(token_file)
    code = cli.main(
        ["--data-dir", str(tmp_path / "c"), "serve", "--admin-token-file", str(token_file)]
    )
    assert code == 1


def test_gates_enrol_refuses_a_bad_gate_id(tmp_path: Path) -> None:
    assert cli.main(["--data-dir", str(tmp_path), "gates", "enrol", "no spaces"]) == 1
