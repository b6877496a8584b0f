"""`make fuzz`: each target under atheris for a bounded time, crashes kept as files.

    python -m fuzz.run [--seconds 60] [--target NAME ...] [--out bench/out/fuzz.json]

Each target runs in its own process (``--one NAME``): libFuzzer owns the process and
exits it on the first finding. Its corpus grows in ``fuzz/out/corpus/NAME`` (seeded
from ``fuzz.corpus.seeds``), and an input that crashes or breaks the oracle is written
to ``fuzz/out/crashes/NAME-crash-<sha1>``. Reproduce one with
``python -m fuzz.run --replay FILE``. Exit status: 0 when no target found anything,
1 when one did, 0 with a message when atheris is not installed (not every platform has
wheels).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.common import report_header

OUT = Path(__file__).resolve().parent / "out"
NAMES = ("pass_text", "lists_import", "bundle_import", "image_decode")


def main(argv: list[str] | None = None) -> int:
    """Run the targets, or one target in this process (``--one``), or replay a file."""
    parser = argparse.ArgumentParser(prog="python -m fuzz.run")
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--target", action="append", choices=NAMES, help="default: all")
    parser.add_argument("--out", type=Path, default=Path("bench/out/fuzz.json"))
    parser.add_argument("--one", choices=NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help="run the target named by a crash file on it")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    if args.one is not None:
        return fuzz_one(args.one, args.seconds)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("make fuzz: atheris is not installed (no wheel for this platform?); skipped")
        return 0
    results = [run_target(name, args.seconds) for name in args.target or NAMES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {**report_header("fuzz", ("atheris",)), "seconds": args.seconds, "targets": results}
    args.out.write_text(json.dumps(report, indent=1))
    for r in results:
        crashes = r["crashes"]
        assert isinstance(crashes, list)
        found = f"FOUND {', '.join(crashes)}" if crashes else "nothing found"
        print(f"{r['target']}: {r['runs']} runs, {r['corpus']} corpus files, {found}")
    return 1 if any(r["crashes"] or r["exit"] != 0 for r in results) else 0


def run_target(name: str, seconds: int) -> dict[str, object]:
    """Fuzz one target in a child process; what it did, as JSON primitives."""
    crashes = OUT / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.glob(f"{name}-*"))
    log = OUT / f"{name}.log"
    started = time.monotonic()
    with log.open("wb") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "fuzz.run", "--one", name, "--seconds", str(seconds)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = log.read_text(encoding="utf-8", errors="replace")
    runs = re.findall(r"^#(\d+)\s", text, re.MULTILINE)
    return {
        "target": name,
        "exit": done.returncode,
        "runs": int(runs[-1]) if runs else 0,
        "wall_seconds": round(time.monotonic() - started, 1),
        "corpus": len(list((OUT / "corpus" / name).glob("*"))),
        "crashes": sorted(str(p) for p in set(crashes.glob(f"{name}-*")) - before),
        "log": str(log),
    }


def fuzz_one(name: str, seconds: int) -> int:
    """Run one target under atheris in this process, until ``seconds`` or a finding."""
    import atheris

    with atheris.instrument_imports(include=["gate_agent", "sync", "fuzz"]):
        from fuzz import corpus, targets

    targets.world()  # made before fuzzing starts, so its time is not the target's
    corpus_dir = OUT / "corpus" / name
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(corpus.seeds(name)):
        (corpus_dir / f"seed-{index}").write_bytes(seed)
    target = targets.TARGETS[name]
    atheris.Setup(
        [
            sys.argv[0],
            str(corpus_dir),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={OUT / 'crashes'}/{name}-",
            "-rss_limit_mb=3072",
            "-timeout=20",
            "-print_final_stats=1",
        ],
        target,
    )
    atheris.Fuzz()
    return 0


def replay(path: Path) -> int:
    """Run a crash file through the target its name starts with; 1 if it still fails."""
    from fuzz import targets

    name = next((n for n in NAMES if path.name.startswith(n)), None)
    if name is None:
        print(f"{path}: the file name must start with a target name: {', '.join(NAMES)}")
        return 2
    try:
        targets.TARGETS[name](path.read_bytes())
    except Exception:  # noqa: BLE001 - shown to whoever reproduces the crash
        traceback.print_exc()
        return 1
    print(f"{path}: {name} handles it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
