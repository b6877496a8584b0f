"""The central server installs and runs with no camera, GPIO or I2C libraries."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("cv2", "zxingcpp", "pyzbar", "gpiozero", "smbus2", "numpy", "sqlite_utils")


def test_gate_sync_runs_with_the_gate_stack_missing(tmp_path: object) -> None:
    program = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
                return None

        sys.meta_path.insert(0, Missing())
        from sync import cli
        code = cli.main(["--data-dir", {str(tmp_path)!r}, "keys", "new"])
        code |= cli.main(["--data-dir", {str(tmp_path)!r}, "lists", "export"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        print("LOADED", loaded)
        sys.exit(code)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
