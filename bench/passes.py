"""Pass verification and decision cost, against a bare Ed25519 verify measured in the same run.

Run as ``python -m bench.passes --out bench/out/passes.json``. The baseline is the
signature check alone; the ratio says what parsing, canonical-encoding checks and
the decision add on top of the cryptography every verifier must pay for.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import median_us, report_header, versus, write_report
from gate_agent.core.passes import (
    ExitQuota,
    IssuerKey,
    Keyring,
    PassFields,
    PassKind,
    Scope,
    sign,
    verify,
)
from gate_agent.core.policy import GateIdentity, GateLists, PassHistory, PolicySettings, decide
from gate_agent.core.reasons import Direction, GateMode
from gate_agent.core.temperature import TemperatureReading, TemperatureSource

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
BASELINE = "ed25519_verify_us: one bare Ed25519 signature check of the same pass"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.passes", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/passes.json"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args(argv)

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    fields = PassFields(
        pass_id="P7K2M9QX4T",
        kind=PassKind.RESIDENT,
        household_id="LGQ012-H0301",
        scope=Scope.parse("compound:LGQ-012"),
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=90),
        display_name="张*明",
        unit="3-2-501",
        exit_quota=ExitQuota(1, 2),
    )
    text = sign(fields, key)
    signed = text.rsplit(":", 1)[0].encode("ascii")
    signature = key.sign(signed)
    # Several keys, as a gate holds after rotations, and a long revocation list.
    others = [IssuerKey(Ed25519PrivateKey.generate().public_key()) for _ in range(7)]
    keyring = Keyring([IssuerKey(public), *others])
    lists = GateLists(revoked=frozenset(f"R{i:09d}" for i in range(20_000)))
    gate = GateIdentity("LGQ-012-N", "LGQ-012", "LGQ")
    settings = PolicySettings()
    scan = verify(text, keyring)

    def baseline() -> None:
        public.verify(signature, signed)

    reading = TemperatureReading(36.6, TemperatureSource.SENSOR)

    def decision() -> object:
        return decide(
            scan, Direction.IN, gate=gate, lists=lists, mode=GateMode.SCREENING,
            temperature=reading, history=PassHistory(), now=NOW, settings=settings,
        )  # fmt: skip

    def timed(fn: Callable[[], object], number: int = args.number) -> float:
        return median_us(fn, repeat=args.repeat, number=number)

    timings = {
        "ed25519_verify_us": timed(baseline),
        "verify_us": timed(lambda: verify(text, keyring)),
        "verify_tampered_us": timed(lambda: verify(text[:-2] + "AA", keyring)),
        "decide_us": timed(decision, args.number * 10),
    }
    base = timings["ed25519_verify_us"]
    report = {
        **report_header("passes", ("cryptography",)),
        "pass_chars": len(text),
        "keys_held": len(keyring),
        "revocations_held": len(lists.revoked),
        "timing": "median of `repeat` rounds, each the mean of `number` calls",
        "baseline": "ed25519_verify_us",
        **timings,
        "ratio_verify_vs_baseline": round(timings["verify_us"] / base, 3),
        "ratio_verify_and_decide_vs_baseline": round(
            (timings["verify_us"] + timings["decide_us"]) / base, 3
        ),
        "vs_baseline": [
            versus(name, timings[name], base, unit="µs", baseline=BASELINE)
            for name in ("verify_us", "verify_tampered_us", "decide_us")
        ],
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
