"""`gate-sync gates place|enrol|list`, `compounds quota|list`, `lists export --gate`, and
the compounds' admin endpoints, on both central stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sync.cli import main
from sync.lists import SettingItem, centre_key_id, check_setting, verify_lists
from sync.server.app import create_app
from tests.sync.stream_helpers import (
    ADMIN_TOKEN,
    NOW,
    STORES,
    TickingClock,
    centre,
    serving,
    store_dsn,
)


@dataclass
class Site:
    data_dir: Path
    dsn: str | None

    def run(self, *argv: str) -> int:
        dsn = ["--dsn", self.dsn] if self.dsn else []
        return main(["--data-dir", str(self.data_dir), *argv, *dsn])


@pytest.fixture(params=STORES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    yield Site(tmp_path / "central", store_dsn(request))


def test_places_and_quotas_from_the_command_line(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.run("gates", "enrol", "gate-a", "--compound", "C1", "--community", "M1") == 0
    code = capsys.readouterr().out.strip()
    assert len(code.replace("-", "")) >= 12
    assert site.run("gates", "place", "gate-b", "--compound", "C1") == 0
    assert "gate gate-b: compound C1, community -" in capsys.readouterr().out
    assert site.run("gates", "enrol", "gate-c", "--community", "M1") == 1
    assert "--community needs --compound" in capsys.readouterr().err
    assert site.run("gates", "place", "gate-c", "--compound", "bad id") == 1
    capsys.readouterr()
    assert site.run("gates", "list", "--json") == 0
    gates = {g["gate_id"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert (gates["gate-a"]["compound"], gates["gate-a"]["community"]) == ("C1", "M1")
    assert (gates["gate-b"]["compound"], gates["gate-b"]["community"]) == ("C1", None)
    assert site.run("gates", "list") == 0
    assert "C1" in capsys.readouterr().out

    assert site.run("compounds", "quota", "C1", "1/2", "--by", "zhang") == 0
    assert "exit quota 1/2" in capsys.readouterr().out
    for bad in (["C1", "0/2"], ["C1"], ["C1", "1/2", "--clear"], ["C1", "2"]):
        assert site.run("compounds", "quota", *bad) == 1
    capsys.readouterr()
    assert site.run("compounds", "quota", "C2", "3/7") == 0
    assert site.run("compounds", "quota", "C2", "--clear") == 0
    capsys.readouterr()
    assert site.run("compounds", "list", "--json") == 0
    listed = {c["compound"]: c for c in json.loads(capsys.readouterr().out)["compounds"]}
    assert (listed["C1"]["gates"], listed["C1"]["exit_quota"], listed["C1"]["set_by"]) == (
        ["gate-a", "gate-b"], "1/2", "zhang",
    )  # fmt: skip
    assert listed["C2"]["exit_quota"] is None
    assert [h["exit_quota"] for h in listed["C2"]["history"]] == ["3/7", None]
    assert site.run("compounds", "list") == 0
    assert "C1" in capsys.readouterr().out

    # A gate's export carries its compound's quota, which every-gate exports leave out.
    assert (
        site.run("lists", "export", "--gate", "gate-a", "--out", str(site.data_dir / "a.json")) == 0
    )
    assert site.run("lists", "export", "--out", str(site.data_dir / "all.json")) == 0
    capsys.readouterr()
    settings = {}
    for name in ("a", "all"):
        document = json.loads((site.data_dir / f"{name}.json").read_text(encoding="utf-8"))
        payload = verify_lists(document, _centre_key(site), gate_id="gate-a")
        items = [i for u in payload.lists if u.name == "settings" for i in u.items]
        settings[name] = {i["key"]: i["value"] for i in items}
    assert settings == {"a": {"exit_quota": "1/2"}, "all": {}}


def _centre_key(site: Site) -> dict[str, bytes]:
    key = load_pem_private_key((site.data_dir / "keys" / "centre.pem").read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes_raw()
    return {centre_key_id(raw): raw}


def test_the_compound_quota_setting_goes_only_to_gates_that_know_the_compound_lists(
    tmp_path: Path,
) -> None:
    check_setting("exit_quota", "1/2")
    for bad in ("1/0", "100/2", 1.5, "x"):
        with pytest.raises(ValueError, match="exit_quota"):
            SettingItem(key="exit_quota", value=bad)
    clock = TickingClock()
    with centre(tmp_path / "central") as opened:
        opened.central.set_compound_quota("C1", "1/2", by="ops", now=NOW)
        opened.central.set_setting("", "mode", "screening", by="ops", now=NOW)
        opened.streams.set_place("gate-a", "C1", "M1")
        app = create_app(opened.streams, opened.issuer, ADMIN_TOKEN, clock)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            token = client.post(
                "/v1/gates/enrol", json={"gate_id": "gate-a", "code": opened.code("gate-a")}
            ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}

            def settings(have: str) -> tuple[dict[str, object], list[str]]:
                reply = client.get("/v1/gates/gate-a/lists", params={"have": have}, headers=auth)
                assert reply.status_code == 200, reply.text
                lists = reply.json()["payload"]["lists"]
                (update,) = [u for u in lists if u["name"] == "settings"]
                return {i["key"]: i["value"] for i in update["items"]}, [u["name"] for u in lists]

            # An older gate does not name the compound lists: it gets neither them nor
            # the setting it could not read.
            old, names = settings("")
            assert old == {"mode": "screening"}
            assert "alerts" not in names and "passages" not in names
            new, _ = settings("alerts:0,passages:0")
            assert new == {"mode": "screening", "exit_quota": "1/2"}
            # Nothing happened at the compound's gates yet: the lists stay at version 0.
            assert "passages" not in settings("alerts:0,passages:0")[1]

            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            put = client.put("/v1/admin/compounds/C1", json={"exit_quota": "2/3"}, headers=admin)
            assert put.json() == {"compound": "C1", "exit_quota": "2/3"}
            assert settings("alerts:0,passages:0")[0]["exit_quota"] == "2/3"
            assert (
                client.put(
                    "/v1/admin/compounds/C1", json={"exit_quota": "0/3"}, headers=admin
                ).status_code
                == 422
            )
            assert (
                client.put("/v1/admin/compounds/C1", json={"exit_quota": None}).status_code == 401
            )
            cleared = client.put(
                "/v1/admin/compounds/C1", json={"exit_quota": None, "by": "li"}, headers=admin
            )
            assert cleared.status_code == 200
            assert "exit_quota" not in settings("alerts:0,passages:0")[0]
            history = client.get("/v1/admin/compounds", headers=admin).json()["compounds"][0]
            assert [(h["exit_quota"], h["set_by"]) for h in history["history"]] == [
                ("1/2", "ops"), ("2/3", "admin"), (None, "li"),
            ]  # fmt: skip
            # Moving the gate to another compound raises the settings version.
            before = opened.issuer.list_versions()["settings"]
            opened.central.set_compound_quota("C2", "1/7", by="ops", now=NOW)
            assert main(["--data-dir", str(opened.data_dir), "gates", "place", "gate-a",
                         "--compound", "C2"]) == 0  # fmt: skip
            assert opened.issuer.list_versions()["settings"] == before + 2
            assert settings("alerts:0,passages:0")[0]["exit_quota"] == "1/7"
