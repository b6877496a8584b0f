"""The whole path through the real commands: issue on the centre, import on the gate, check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate_agent import cli as agent_cli
from sync import cli as sync_cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Site:
    """A central data folder and one gate's config, both in a temporary folder."""

    root: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def central(self) -> Path:
        return self.root / "central"

    @property
    def config(self) -> Path:
        return self.root / "gate.toml"

    def sync(self, *args: str) -> tuple[int, str]:
        code = sync_cli.main(["--data-dir", str(self.central), *args])
        return code, self.capsys.readouterr().out

    def agent(self, *args: str) -> tuple[int, str]:
        code = agent_cli.main(["--config", str(self.config), *args])
        return code, self.capsys.readouterr().out

    def issue(self, pass_id: str, *extra: str) -> str:
        code, out = self.sync(
            "passes", "issue", "--kind", "resident", "--household", "LGQ012-H0301",
            "--name", "张三明", "--unit", "3-2-501", "--pass-id", pass_id, *extra,
        )  # fmt: skip
        assert code == 0
        return out.strip()

    def check(self, text: str, *extra: str) -> tuple[int, dict[str, object]]:
        code, out = self.agent("check", "--json", text, *extra)
        return code, json.loads(out)

    def publish(self) -> None:
        """Export the signed lists and import them, pinning the centre key read off the centre."""
        assert self.sync("lists", "export", "--out", str(self.root / "lists.json"))[0] == 0
        code, key = self.sync("keys", "centre")
        assert code == 0
        lists = str(self.root / "lists.json")
        assert self.agent("lists", "import", lists, "--trust-key", key.strip())[0] == 0


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    example = (ROOT / "firmware_config" / "gate.example.toml").read_text(encoding="utf-8")
    config = example.replace('data_dir = "/var/lib/gate-agent"', 'data_dir = "gate"')
    assert config != example
    (tmp_path / "gate.toml").write_text(config, encoding="utf-8")
    s = Site(tmp_path, capsys)
    assert s.sync("keys", "new")[0] == 0
    yield s


def test_an_issued_pass_is_allowed_and_each_spoiled_one_refused(site: Site) -> None:
    valid = site.issue("GOODPASS1", "--scope", "compound:LGQ-012", "--days", "30")
    expired = site.issue(
        "OLDPASS1", "--scope", "compound:LGQ-012",
        "--valid-from", "2026-01-01", "--valid-until", "2026-01-31",
    )  # fmt: skip
    revoked = site.issue("GONEPASS1", "--scope", "compound:LGQ-012", "--days", "30")
    elsewhere = site.issue("OTHERPASS1", "--scope", "compound:LGQ-099", "--days", "30")
    assert site.sync("passes", "revoke", "GONEPASS1", "--reason", "moved out")[0] == 0

    # Before the gate has the issuer's key, nothing it signed is trusted.
    assert site.check(valid, "--temperature", "36.6")[1]["reason"] == "unknown_key"
    site.publish()

    code, record = site.check(valid, "--temperature", "36.6")
    assert (code, record["outcome"], record["reason"]) == (0, "allow", "ok")
    shown = record["pass"]
    assert isinstance(shown, dict)
    assert (shown["display_name"], shown["unit"], shown["kind"]) == ("张*明", "3-2-501", "resident")

    i = len(valid) // 2
    tampered = valid[:i] + ("A" if valid[i] != "A" else "B") + valid[i + 1 :]
    for text, reason in [
        (tampered, "bad_signature"),
        (expired, "expired"),
        (revoked, "revoked"),
        (elsewhere, "out_of_scope"),
        (valid[:-5], "truncated"),
    ]:
        code, record = site.check(text, "--temperature", "36.6")
        assert (code, record["outcome"], record["reason"]) == (3, "deny", reason), text


def test_check_reads_a_pass_from_its_qr_image(site: Site, tmp_path: Path) -> None:
    png = tmp_path / "card.png"
    text = site.issue("IMAGEPASS1", "--scope", "compound:LGQ-012", "--days", "3",
                      "--png", str(png))  # fmt: skip
    site.publish()
    code, out = site.agent("decode", "--json", str(png))
    assert code == 0
    assert json.loads(out)["texts"] == [text]
    code, out = site.agent("check", "--json", "--image", str(png), "--temperature", "36.6")
    assert (code, json.loads(out)["outcome"]) == (0, "allow")
    code, out = site.agent("check", "--json", "--image", str(png), "--temperature", "38.0")
    assert (code, json.loads(out)["reason"]) == (4, "recheck_temperature")


def test_a_stale_bundle_changes_nothing(site: Site) -> None:
    text = site.issue("LATEPASS1", "--scope", "compound:LGQ-012", "--days", "30")
    site.publish()
    stale = (site.root / "lists.json").read_bytes()
    assert site.sync("passes", "revoke", "LATEPASS1", "--reason", "lost")[0] == 0
    site.publish()
    assert site.check(text, "--temperature", "36.5")[1]["reason"] == "revoked"
    (site.root / "stale.json").write_bytes(stale)
    code, out = site.agent("lists", "import", str(site.root / "stale.json"))
    assert code == 0
    assert "revocations: version 2 (unchanged)" in out
    assert site.check(text, "--temperature", "36.5")[1]["reason"] == "revoked"


def test_lists_files_must_carry_the_pinned_centre_keys_signature(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(*args: str) -> str:
        """Run `gate-agent`, expecting a refusal; its message."""
        capsys.readouterr()
        assert agent_cli.main(["--config", str(site.config), *args]) == 1
        return capsys.readouterr().err

    def other(*args: str) -> str:
        """Another centre, with a centre key of its own."""
        capsys.readouterr()
        assert sync_cli.main(["--data-dir", str(tmp_path / "other"), *args]) == 0
        return capsys.readouterr().out.strip()

    text = site.issue("SIGNPASS1", "--scope", "compound:LGQ-012", "--days", "30")
    lists = str(tmp_path / "lists.json")
    assert site.sync("lists", "export", "--out", lists)[0] == 0
    # A gate that never enrolled names the key and waits for an operator to confirm it.
    kid = json.loads((tmp_path / "lists.json").read_text())["kid"]
    assert f"signed by {kid}" in refused("lists", "import", lists)
    # A key that is not the one in the file is no confirmation.
    other_key = other("keys", "centre")
    assert "lists_unknown_key" in refused("lists", "import", lists, "--trust-key", other_key)
    assert site.check(text, "--temperature", "36.6")[1]["reason"] == "unknown_key"

    site.publish()
    assert site.check(text, "--temperature", "36.6")[1]["outcome"] == "allow"
    # Once pinned, a file from another centre, or one altered on the way, changes nothing.
    other("keys", "new")
    other("households", "isolate", "LGQ012-H0301", "--until", "2099-01-01")
    other("lists", "export", "--out", str(tmp_path / "forged.json"))
    assert "lists_unknown_key" in refused("lists", "import", str(tmp_path / "forged.json"))
    genuine = json.loads((site.root / "lists.json").read_text())
    genuine["payload"]["lists"][0]["version"] += 5
    (tmp_path / "altered.json").write_text(json.dumps(genuine), encoding="utf-8")
    assert "lists_bad_signature" in refused("lists", "import", str(tmp_path / "altered.json"))
    code, record = site.check(text, "--direction", "out")
    assert (code, record["outcome"]) == (0, "allow")


def test_an_isolated_household_may_come_home_but_not_go_out(site: Site) -> None:
    text = site.issue("HOMEPASS1", "--scope", "compound:LGQ-012", "--days", "30")
    assert site.sync("households", "isolate", "LGQ012-H0301", "--until", "2099-01-01")[0] == 0
    site.publish()
    code, record = site.check(text, "--direction", "out")
    assert (code, record["reason"], record["alert"]) == (3, "quarantined_exit", True)
    assert site.check(text, "--temperature", "36.6")[1]["outcome"] == "allow"
    assert site.sync("households", "lift", "LGQ012-H0301")[0] == 0
    site.publish()
    assert site.check(text, "--direction", "out")[1]["outcome"] == "allow"
    code, _ = site.sync("households", "isolate", "bad id", "--until", "2099-01-01")
    assert code == 1


def test_verify_ledger_reports_an_intact_ledger(site: Site) -> None:
    site.publish()
    code, out = site.agent("verify-ledger")
    assert code == 0
    assert "ok" in out


def test_errors_are_one_line_not_a_traceback(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.json").write_text("{}", encoding="utf-8")
    assert agent_cli.main(["--config", str(site.config), "lists", "import",
                           str(tmp_path / "junk.json")]) == 1  # fmt: skip
    assert "not a signed lists file" in capsys.readouterr().err
    assert agent_cli.main(["--config", str(tmp_path / "none.toml"), "check", "GP1:X"]) == 1
    assert "no such config file" in capsys.readouterr().err
    assert agent_cli.main(["--config", str(site.config), "check", "GP1:X",
                           "--temperature", "366"]) == 1  # fmt: skip
    assert "not a body temperature" in capsys.readouterr().err
    assert (
        sync_cli.main(
            ["--data-dir", str(site.central), "passes", "revoke", "NOSUCH1", "--reason", "x"]
        )
        == 1
    )
    assert "no pass NOSUCH1" in capsys.readouterr().err
    empty = tmp_path / "empty-central"
    code = sync_cli.main(["--data-dir", str(empty), "passes", "issue", "--kind", "resident",
                          "--household", "H1", "--name", "李四", "--scope", "compound:C1",
                          "--days", "1"])  # fmt: skip
    assert code == 1
    assert "gate-sync keys new" in capsys.readouterr().err


def test_the_private_key_is_readable_only_by_its_owner(site: Site) -> None:
    (key,) = (site.central / "keys").iterdir()
    assert key.stat().st_mode & 0o777 == 0o600
    assert (site.central / "keys").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("script", ["gate-agent", "gate-sync"])
def test_console_scripts_are_installed(script: str) -> None:
    path = shutil.which(script, path=str(Path(sys.executable).parent))
    assert path, f"{script} is not installed next to {sys.executable}"
    result = subprocess.run([path, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "usage:" in result.stdout


PHOTOS = ROOT.parent / "shared" / "data" / "qr-photos"


def _decode_folder(folder: Path) -> dict[str, list[str]]:
    script = shutil.which("gate-agent", path=str(Path(sys.executable).parent))
    assert script
    result = subprocess.run(
        [script, "decode", "--json", str(folder)], capture_output=True, text=True, check=False
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # every file in the set is a whole image: none may come back as an error
    assert [r for r in lines if "error" in r] == [] and result.returncode == 0, result.stderr
    return {str(Path(r["image"]).relative_to(folder)): r["texts"] for r in lines}


@pytest.mark.photos
def test_gate_agent_decode_reads_the_real_photographs() -> None:
    if not PHOTOS.is_dir():
        pytest.skip(f"no photo set at {PHOTOS}")
    manifest = json.loads((PHOTOS / "positives" / "manifest.json").read_text(encoding="utf-8"))
    read = _decode_folder(PHOTOS / "positives")
    assert len(read) == len(manifest["images"]) == 137
    exact = sum(read[i["image"]] == [i["expected_text"]] for i in manifest["images"])
    assert exact >= 127, f"only {exact} of 137 read exactly"
    negatives = _decode_folder(PHOTOS / "negatives")
    assert len(negatives) == 46
    assert all(texts == [] for texts in negatives.values())


def test_gate_settings_are_checked_when_an_admin_sets_them(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(*args: str) -> str:
        capsys.readouterr()
        assert sync_cli.main(["--data-dir", str(site.central), "gates", *args]) == 1
        return capsys.readouterr().err

    assert "mode must be one of" in refused("set", "mode=party")
    assert "between 35 and 42" in refused("set", "fever_celsius=45")
    assert "must be a number" in refused("set", "fever_celsius=hot")
    assert "unknown gate setting" in refused("set", "colour=red")
    assert "KEY=VALUE" in refused("set", "mode")
    assert "not a gate id" in refused("set", "mode=open", "--gate", "no such gate")
    assert "unknown gate setting" in refused("unset", "colour")
    # Nothing half-done: the valid pair before a bad one was not set either.
    assert "mode must be" in refused("set", "fever_celsius=37.5", "mode=party")
    assert "no gate settings" in site.sync("gates", "settings")[1]

    code, out = site.sync("gates", "set", "mode=lockdown", "screen_exits=true", "--by", "李主任")
    assert code == 0 and "every gate" in out
    assert site.sync("gates", "set", "fever_celsius=37.5", "--gate", "LGQ-012-N")[0] == 0
    shown = site.sync("gates", "settings")[1].splitlines()
    assert any(
        line.split()[:3] == ["*", "mode", '"lockdown"'] and "李主任" in line for line in shown
    )
    assert any(line.split()[:3] == ["LGQ-012-N", "fever_celsius", "37.5"] for line in shown)
    assert site.sync("gates", "unset", "mode")[0] == 0
    assert not any(" mode " in line for line in site.sync("gates", "settings")[1].splitlines())
