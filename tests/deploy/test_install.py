"""firmware_config/install.sh against a scratch root: install, again, upgrade, uninstall.

The machine-changing commands are the installer's hardware port: apt-get, dpkg-query,
systemctl and udevadm are recording shims first on PATH; groupadd, useradd and usermod
record and then run the real tools on the scratch root (they refuse to run without
--root, so a slip cannot touch this machine's users). The venv and pip are real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate_agent.config import load_config
from sync.cli_serve import read_admin_token

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "firmware_config" / "install.sh"
PREFIX = Path("opt/gate-station")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the installer chowns files: run as root"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd (passwd)"),
]

# A Raspberry Pi OS bookworm config.txt as the image ships it: its last filter is [all],
# earlier ones are [cm4] and [cm5].
STOCK_CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
arm_64bit=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host
"""

RECORD = (
    'printf "%s" "$(basename "$0")" >> "$SHIM_LOG"; printf "\\t%s" "$@" >> "$SHIM_LOG"\n'
    'echo >> "$SHIM_LOG"\n'
)
SHIMS = {
    "apt-get": RECORD + 'if [ "$1" = install ]; then for a; do case $a in -*|install) ;; *)'
    ' echo "$a" >> "$SHIM_STATE/dpkg";; esac; done; fi\n',
    "dpkg-query": 'for a; do pkg=$a; done\ngrep -qx "$pkg" "$SHIM_STATE/dpkg" 2>/dev/null'
    ' || exit 1\nprintf "ii "\n',
    "systemctl": RECORD,
    "udevadm": RECORD,
}
# For the tests that are not about the venv: "python3 -m venv DIR" makes a DIR/bin/python
# that records its pip install and leaves the console scripts behind. The gate's test
# runs the real venv and pip.
VENV_SHIM = (
    RECORD + 'venv=${*: -1}; mkdir -p "$venv/bin"\n'
    "cat > \"$venv/bin/python\" <<'EOF'\n#!/bin/bash\n"
    + RECORD
    + 'if [ "$3" = install ]; then for s in gate-agent gate-sync; do\n'
    '  printf "#!/bin/sh\\n" > "${0%/*}/$s"; chmod +x "${0%/*}/$s"; done; fi\nEOF\n'
    'chmod +x "$venv/bin/python"\n'
)
for _tool in ("groupadd", "useradd", "usermod"):
    SHIMS[_tool] = (
        RECORD + 'case " $* " in *" --root "*) ;; *) echo "shim: no --root" >&2; exit 97;; esac\n'
        f'exec /usr/sbin/{_tool} "$@"\n'
    )


@dataclass
class Machine:
    """A scratch root, the shims' PATH and what they recorded."""

    root: Path
    env: dict[str, str]
    log: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", str(INSTALL), "--root", str(self.root), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"install.sh {args} -> {result.returncode}\n{result.stderr}")
        return result

    def calls(self) -> list[list[str]]:
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return [line.split("\t") for line in text.splitlines()]

    def take_calls(self) -> list[list[str]]:
        calls = self.calls()
        self.log.write_text("", encoding="utf-8")
        return calls


def make_machine(tmp: Path, model: str | None = None, real_venv: bool = False) -> Machine:
    root, shims, state = tmp / "root", tmp / "shims", tmp / "state"
    for path in (root / "etc", root / "boot" / "firmware", shims, state):
        path.mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "nologin").write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    (root / "usr" / "sbin" / "nologin").chmod(0o755)
    (root / "boot" / "firmware" / "config.txt").write_text(STOCK_CONFIG_TXT, encoding="utf-8")
    if model is not None:
        (root / "proc" / "device-tree").mkdir(parents=True)
        (root / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\0")
    for name, body in SHIMS.items():
        (shims / name).write_text("#!/bin/bash\n" + body, encoding="utf-8")
        (shims / name).chmod(0o755)
    python_dir = tmp / "python"
    python_dir.mkdir()
    if real_venv:  # the python running the tests (3.11+, with venv and ensurepip)
        (python_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    else:
        (python_dir / "python3").write_text("#!/bin/bash\n" + VENV_SHIM, encoding="utf-8")
        (python_dir / "python3").chmod(0o755)
    env = {
        "PATH": f"{shims}:{python_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
        "SHIM_LOG": str(tmp / "calls.log"),
        "SHIM_STATE": str(state),
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
    }
    for key in ("PIP_CONFIG_FILE", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return Machine(root, env, tmp / "calls.log")


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root: type, mode, owner and, for files, content hash and mtime."""
    seen: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            seen[rel] = ("link", str(path.readlink()))
        elif path.is_dir():
            seen[rel] = ("dir", st.st_mode, st.st_uid, st.st_gid)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[rel] = ("file", st.st_mode, st.st_uid, st.st_gid, digest, st.st_mtime_ns)
    return seen


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def group_entry(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc" / "group").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def passwd_entry(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def tools(calls: list[list[str]]) -> list[str]:
    return [call[0] for call in calls]


def copy_source(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "*.egg-info", "__pycache__", ".*_cache", "demo-data", "build"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def test_a_gate_with_its_kiosk_installs_reinstalls_upgrades_and_uninstalls(
    tmp_path: Path,
) -> None:
    machine = make_machine(tmp_path, model="Raspberry Pi 5 Model B Rev 1.0", real_venv=True)
    root = machine.root
    source = copy_source(tmp_path / "source-1")
    # A tree checked out by the Pi's login user, group-writable: root's alone once copied.
    readme = source / "README.md"
    os.chown(readme, 1000, 1000)
    readme.chmod(0o664)

    # -- install: the real venv and pip install of .[gate] (its dependencies from the cache).
    machine.run("--kiosk", "--source", str(source), "install")
    calls = machine.take_calls()

    apt = [c for c in calls if c[0] == "apt-get"]
    assert apt[0][1:] == ["update", "-qq"]
    assert set(apt[1]) >= {
        "install", "python3-venv", "libzbar0", "i2c-tools", "cage", "chromium", "fonts-noto-cjk",
        "rpicam-apps-lite",  # the Pi 5's camera module is read through rpicam-vid
    }  # fmt: skip
    added_groups = [c[-1] for c in calls if c[0] == "groupadd"]
    assert "gpio" in added_groups and "i2c" in added_groups
    assert "video" not in added_groups  # Debian has it already: not added again
    agent = passwd_entry(root, "gate-agent")
    assert agent is not None and agent[6] == "/usr/sbin/nologin"
    assert agent[5] == "/var/lib/gate-agent"
    for group in ("gpio", "i2c", "video"):
        entry = group_entry(root, group)
        assert entry is not None and "gate-agent" in entry[3].split(","), group
    kiosk_user = passwd_entry(root, "gate-kiosk")
    assert kiosk_user is not None
    for group in ("video", "render", "input"):
        entry = group_entry(root, group)
        assert entry is not None and "gate-kiosk" in entry[3].split(","), group
    gid = int(group_entry(root, "gate-agent")[2])  # type: ignore[index]

    venv = root / PREFIX / "venv"
    help_text = subprocess.run(
        [str(venv / "bin" / "gate-agent"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "doctor" in help_text
    st = (root / PREFIX / "src" / "README.md").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)
    assert not (root / PREFIX / "src" / ".venv").exists()
    # Nor what runs write into the tree (screenshots of tests running beside this one).
    assert not (root / PREFIX / "src" / "test-artifacts").exists()
    assert (root / PREFIX / "src" / "firmware_config" / "kiosk.sh").is_file()

    # The config: from the example with the Pi 5's profile (the board's model file said
    # Pi 5), valid for the real loader, readable by root and the gate-agent group only.
    conf = root / "etc" / "gate-agent" / "gate.toml"
    st = conf.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid)
    config = load_config(conf)
    assert [c.source for c in config.cameras] == ["rpicam:"]
    assert config.thermometer.kind == "mlx90614" and config.console.port == 8080
    assert config.sync.server_url == "http://10.1.1.5:8600"
    conf_dir = (root / "etc" / "gate-agent").stat()
    assert (conf_dir.st_mode & 0o777, conf_dir.st_gid) == (0o750, gid)
    token = root / "etc" / "gate-agent" / "admin.token"
    assert len(token.read_text(encoding="utf-8").strip()) >= 16
    # Owned by the service user, mode 0600: the agent reads it, no one else.
    uid = int(passwd_entry(root, "gate-agent")[2])  # type: ignore[index]
    assert (token.stat().st_mode & 0o777, token.stat().st_uid) == (0o600, uid)

    # config.txt: the Pi 5's lines once, between markers, under [all], the rest untouched.
    boot = (root / "boot" / "firmware" / "config.txt").read_text(encoding="utf-8")
    assert boot.startswith(STOCK_CONFIG_TXT)
    block = boot[len(STOCK_CONFIG_TXT) :].splitlines()
    assert block[0].startswith("# >>> gate-station") and block[-1] == "# <<< gate-station <<<"
    assert block[1] == "[all]"
    assert "dtparam=i2c_arm=on,i2c_arm_baudrate=100000" in block
    assert (root / "etc" / "modules-load.d" / "gate-station.conf").read_text().endswith("i2c-dev\n")

    rules = root / "etc" / "udev" / "rules.d" / "99-gate-station.rules"
    assert rules.read_bytes() == (ROOT / "firmware_config/udev/99-gate-station.rules").read_bytes()
    assert ["udevadm", "control", "--reload"] in calls

    units = root / "etc" / "systemd" / "system"
    for unit in ("gate-agent.service", "gate-kiosk.service"):
        assert (units / unit).read_bytes() == (ROOT / "systemd" / unit).read_bytes()
    systemctl = [c[1:] for c in calls if c[0] == "systemctl"]
    assert systemctl[0] == ["daemon-reload"]
    assert ["enable", "--now", "gate-agent.service", "gate-kiosk.service"] in systemctl

    # The agent is running now: its ledger appears.
    ledger = root / "var" / "lib" / "gate-agent" / "ledger.sqlite3"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"SQLite format 3\0 entries that must survive")
    conf.write_text(conf.read_text(encoding="utf-8") + "# edited on site\n", encoding="utf-8")

    # -- install again: nothing changes, nobody is added, no package is fetched.
    before = snapshot(root)
    machine.run("--kiosk", "--source", str(source), "install")
    calls = machine.take_calls()
    assert snapshot(root) == before
    assert not {"apt-get", "groupadd", "useradd", "usermod", "udevadm"} & set(tools(calls))
    assert [c[1:] for c in calls if c[0] == "systemctl"] == [
        ["enable", "--now", "gate-agent.service", "gate-kiosk.service"]
    ]
    assert boot == (root / "boot" / "firmware" / "config.txt").read_text(encoding="utf-8")

    # -- upgrade from a newer source: code and venv replaced, services restarted onto it,
    # the ledger, config and token untouched. The kiosk is remembered without --kiosk.
    newer = copy_source(tmp_path / "source-2")
    init = newer / "gate_agent" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8") + "# newer\n", encoding="utf-8")
    kept = {p: file_hash(p) for p in (ledger, conf, token)}
    machine.run("--source", str(newer), "upgrade")
    calls = machine.take_calls()
    assert {p: file_hash(p) for p in kept} == kept
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "gate_agent" / "__init__.py").read_text(encoding="utf-8").endswith("# newer\n")
    assert ["systemctl", "try-restart", "gate-agent.service", "gate-kiosk.service"] in calls
    assert not {"apt-get", "useradd"} & set(tools(calls))

    # -- uninstall: software gone; data, config, users and groups kept.
    assert machine.run("status").returncode == 0
    machine.run("uninstall")
    calls = machine.take_calls()
    assert ["systemctl", "disable", "--now", "gate-agent.service"] in calls
    assert ["systemctl", "disable", "--now", "gate-kiosk.service"] in calls
    assert not (root / PREFIX).exists()
    assert not (units / "gate-agent.service").exists()
    assert not (units / "gate-kiosk.service").exists()
    assert not rules.exists()
    assert {p: file_hash(p) for p in kept} == kept
    assert passwd_entry(root, "gate-agent") is not None
    assert "i2c_arm_baudrate" in (root / "boot" / "firmware" / "config.txt").read_text()
    status = machine.run("status", check=False)
    assert status.returncode == 3 and "installed: no" in status.stdout


def test_the_central_role_gets_its_user_env_file_token_and_unit(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)
    machine.run("--role", "central", "install")
    calls = machine.take_calls()
    root = machine.root
    pip = next(c for c in calls if c[0] == "python" and "install" in c)
    assert pip[-1] == f"{root / PREFIX / 'src'}[central,postgres]"
    assert passwd_entry(root, "gate-sync") is not None
    assert passwd_entry(root, "gate-agent") is None
    assert [c for c in calls if c[0] == "apt-get"][1][-1] == "python3-venv"
    gid = int(group_entry(root, "gate-sync")[2])  # type: ignore[index]
    env = (root / "etc" / "gate-sync" / "gate-sync.env").stat()
    assert (env.st_mode & 0o777, env.st_gid) == (0o640, gid)
    # `gate-sync serve` refuses a token its group could read: 0600, the service user's.
    token_path = root / "etc" / "gate-sync" / "admin.token"
    uid = int(passwd_entry(root, "gate-sync")[2])  # type: ignore[index]
    assert (token_path.stat().st_mode & 0o777, token_path.stat().st_uid) == (0o600, uid)
    assert len(read_admin_token(token_path)) >= 16
    assert (root / PREFIX / "venv" / "bin" / "gate-sync").is_file()
    assert ["systemctl", "enable", "--now", "gate-sync.service"] in calls
    assert not (root / "etc" / "systemd" / "system" / "gate-agent.service").exists()
    # No firmware lines and no udev rules on the central server.
    assert (root / "boot" / "firmware" / "config.txt").read_text() == STOCK_CONFIG_TXT
    assert not (root / "etc" / "udev").exists()
    # A second run keeps the token it made (a new one would lock every admin out).
    token = file_hash(root / "etc" / "gate-sync" / "admin.token")
    machine.run("--role", "central", "install")
    assert file_hash(root / "etc" / "gate-sync" / "admin.token") == token
    # The role is read back from what is installed.
    assert "role: central" in machine.run("status").stdout


def test_another_prefix_is_written_into_the_units(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)
    machine.run("--prefix", "/srv/gates", "--profile", "pi-zero-2w", "install")
    unit = (machine.root / "etc/systemd/system/gate-agent.service").read_text(encoding="utf-8")
    assert "ExecStart=/srv/gates/venv/bin/gate-agent " in unit
    assert "/opt/gate-station" not in unit
    assert (machine.root / "srv" / "gates" / "venv" / "bin" / "gate-agent").is_file()
    config = load_config(machine.root / "etc" / "gate-agent" / "gate.toml")
    assert (config.cameras[0].width, config.thermometer.sample_hz) == (640, 8)
    boot = (machine.root / "boot" / "firmware" / "config.txt").read_text(encoding="utf-8")
    assert "i2c_arm_baudrate=50000" in boot and "100000" not in boot


@pytest.mark.parametrize(
    ("model", "camera", "baudrate"),
    [
        ("Raspberry Pi 4 Model B Rev 1.5", "v4l2:/dev/video0", 50000),
        ("Raspberry Pi Zero 2 W Rev 1.0", "rpicam:", 50000),
        (None, "v4l2:/dev/video0", 50000),  # not a Pi (a test rig): the example's own
    ],
)
def test_the_board_chooses_the_profile(
    tmp_path: Path, model: str | None, camera: str, baudrate: int
) -> None:
    machine = make_machine(tmp_path, model=model)
    machine.run("install")
    config = load_config(machine.root / "etc" / "gate-agent" / "gate.toml")
    assert config.cameras[0].source == camera
    packages = next(c for c in machine.calls() if c[:2] == ["apt-get", "install"])
    assert ("rpicam-apps-lite" in packages) == (camera == "rpicam:")
    boot = (machine.root / "boot" / "firmware" / "config.txt").read_text(encoding="utf-8")
    assert f"dtparam=i2c_arm=on,i2c_arm_baudrate={baudrate}\n" in boot


def test_an_older_image_gets_its_lines_in_boot_config_txt(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)
    boot = machine.root / "boot"
    (boot / "firmware" / "config.txt").rename(boot / "config.txt")
    (boot / "firmware").rmdir()
    machine.run("install")
    assert (boot / "config.txt").read_text().endswith("gpio=23=ip,pu\n# <<< gate-station <<<\n")


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        ([], 2, "usage"),
        (["install", "upgrade"], 2, "usage"),
        (["--role", "edge", "install"], 2, "usage"),
        (["--role", "central", "--kiosk", "install"], 2, "usage"),
        (["--profile", "pi3-webcam", "install"], 2, "usage"),
        (["upgrade"], 3, "not_installed"),
        (["--source", "/nonexistent", "install"], 4, "no_source"),
    ],
)
def test_bad_requests_are_refused_with_a_code_and_change_nothing(
    tmp_path: Path, args: list[str], status: int, code: str
) -> None:
    machine = make_machine(tmp_path)
    before = snapshot(machine.root)
    result = machine.run(*args, check=False)
    assert result.returncode == status
    assert f"install.sh: error: {code}:" in result.stderr
    assert snapshot(machine.root) == before
    assert not {"apt-get", "useradd", "systemctl"} & set(tools(machine.calls()))


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", ["install.sh", "kiosk.sh"])
def test_the_scripts_are_shellcheck_clean(script: str) -> None:
    result = subprocess.run(
        ["shellcheck", str(ROOT / "firmware_config" / script)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
