"""`gate-agent`: the gate's command line (decode, check, verify-ledger, lists)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate_agent import allocator, cli_centre, housekeeping
from gate_agent import calibrate as calibrate_
from gate_agent import commands as commands_
from gate_agent.assess import Assessor, Evaluation
from gate_agent.clock import SystemClock
from gate_agent.config import GateConfig, config_path, load_config
from gate_agent.console.auth import Roster
from gate_agent.console.server import roster_path
from gate_agent.core import messages
from gate_agent.core.passes import VerifiedPass
from gate_agent.core.reasons import Direction, Outcome
from gate_agent.core.temperature import manual_reading
from gate_agent.errors import GateError
from gate_agent.hardware.decoder import QrDecoder, decode_image_file
from gate_agent.journal import configure_logging
from gate_agent.ledger.entries import Ledger
from gate_agent.ledger.verify import verify_ledger_file
from gate_agent.records import temperature_fields

#: What a folder given to `decode` is searched for.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm"})
#: `check` exit codes, so scripts can branch on the outcome.
EXIT_CODES = {Outcome.ALLOW: 0, Outcome.DENY: 3, Outcome.RECHECK: 4}
#: Commands that run for hours or weeks, and so get glibc's allocator set for it.
LONG_RUNNING = frozenset({"run", "demo"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `gate-agent` command; returns the process exit code."""
    args = _parser().parse_args(argv)
    level = logging.INFO if args.command == "run" else logging.WARNING
    configure_logging(level, identifier="gate-agent", target=args.log_target)
    if args.command in LONG_RUNNING:
        tuning = allocator.tune()  # before any thread starts
        logging.getLogger("gate_agent").info("allocator: %s", tuning.applied or tuning.reason)
    try:
        result: int = args.handler(args)
        return result
    except (GateError, ValueError, OSError) as exc:
        print(f"gate-agent: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-agent", description=__doc__)
    parser.add_argument("--config", help="gate.toml (env GATE_AGENT_CONFIG)")
    parser.add_argument(
        "--log-target",
        choices=["auto", "journal", "stderr"],
        default="auto",
        help="where logs go: the journal with fields (auto: when systemd runs us) or stderr",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    decode = commands.add_parser("decode", help="read the QR codes in image files")
    decode.add_argument("images", nargs="+", type=Path, help="image files or folders of them")
    decode.add_argument("--json", action="store_true", help="one JSON object per image")
    decode.set_defaults(handler=_decode)

    check = commands.add_parser("check", help="verify a pass and decide, writing nothing")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("pass_text", nargs="?", help="the pass text as scanned")
    source.add_argument("--image", type=Path, help="read the pass from a photo instead")
    check.add_argument("--direction", choices=[d.value for d in Direction], default="in")
    check.add_argument("--temperature", type=float, help="body temperature in °C")
    check.add_argument("--json", action="store_true", help="print a JSON object")
    check.set_defaults(handler=_check)

    run = commands.add_parser("run", help="run the gate until stopped (SIGTERM, Ctrl-C)")
    run.set_defaults(handler=lambda args: commands_.run(_config(args)))

    doctor = commands.add_parser("doctor", help="check camera, decoders, sensor, GPIO, clock…")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(handler=lambda args: commands_.doctor(_config(args), as_json=args.json))

    demo = commands.add_parser("demo", help="walk scripted visitors through a simulated gate")
    demo.add_argument("--scenario", type=Path, required=True, help="a JSON list of visits")
    demo.add_argument("--passes", type=Path, required=True, help="folder of <name>.txt passes")
    demo.add_argument("--rounds", type=int, default=1, help="times through; 0: until Ctrl-C")
    spacing = demo.add_mutually_exclusive_group()
    spacing.add_argument(
        "--pace", type=float, default=0.3, help="seconds of nobody after each decision"
    )
    spacing.add_argument(
        "--every", type=float, help="a visitor every so many seconds (instead of --pace)"
    )
    demo.set_defaults(
        handler=lambda args: commands_.demo(
            _config(args),
            args.scenario,
            args.passes,
            rounds=args.rounds,
            pace_s=args.pace,
            every_s=args.every,
        )
    )

    guards = commands.add_parser("guards", help="guards' shift PINs for the console")
    guards_commands = guards.add_subparsers(dest="guards_command", required=True)
    add = guards_commands.add_parser("add", help="put a guard on shift; prints their PIN")
    add.add_argument("name")
    add.add_argument("--hours", type=float, default=12.0, help="how long the PIN is good for")
    add.set_defaults(handler=_guards_add)
    guards_commands.add_parser("list", help="guards on shift").set_defaults(handler=_guards_list)
    remove = guards_commands.add_parser("remove", help="end a guard's shift now")
    remove.add_argument("name")
    remove.set_defaults(handler=_guards_remove)

    purge = commands.add_parser(
        "purge", help="purge personal data past [retention] days now (the agent does it hourly)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    purge.add_argument("--json", action="store_true", help="print the counts as JSON")
    purge.set_defaults(handler=_purge)

    calibrate = commands.add_parser(
        "calibrate", help="fit the thermometer's skin model k against a clinical thermometer"
    )
    calibrate.add_argument(
        "--pairs",
        type=Path,
        help="fit the pairs of this CSV (skin_celsius, ambient_celsius, clinical_celsius)"
        " instead of measuring people now",
    )
    calibrate.add_argument(
        "--people", type=int, default=8, help="people to measure, one by one (8; at least 5)"
    )
    calibrate.add_argument(
        "--save", type=Path, help="CSV the pairs are saved to (default: the data folder)"
    )
    calibrate.add_argument(
        "--write", action="store_true", help="set skin_model_k in gate.toml (comments kept)"
    )
    calibrate.set_defaults(handler=_calibrate)

    verify = commands.add_parser("verify-ledger", help="check the ledger's integrity and chain")
    verify.add_argument("path", nargs="?", type=Path, help="ledger file (default: the config's)")
    verify.set_defaults(handler=_verify_ledger)

    cli_centre.register(commands, _config)
    return parser


def _config(args: argparse.Namespace) -> GateConfig:
    return load_config(config_path(args.config))


def _roster(args: argparse.Namespace) -> Roster:
    return Roster(roster_path(_config(args).gate.data_dir))


def _guards_add(args: argparse.Namespace) -> int:
    if not 0 < args.hours <= 24:
        raise ValueError("--hours must be between 0 and 24: a PIN is for one shift")
    until = datetime.now(UTC) + timedelta(hours=args.hours)
    pin = _roster(args).add(args.name, until=until)
    print(f"{args.name}: PIN {pin}, good until {until.astimezone():%Y-%m-%d %H:%M}")
    return 0


def _guards_list(args: argparse.Namespace) -> int:
    for guard in _roster(args).on_shift(datetime.now(UTC)):
        print(f"{guard.name}  until {guard.until.astimezone():%Y-%m-%d %H:%M}")
    return 0


def _guards_remove(args: argparse.Namespace) -> int:
    removed = _roster(args).remove(args.name)
    print(f"{args.name}: {'shift ended' if removed else 'was not on shift'}")
    return 0 if removed else 1


def _open_ledger(config: GateConfig) -> Ledger:
    return Ledger.open(config.ledger_path, gate_id=config.gate.id)


def _decode(args: argparse.Namespace) -> int:
    decoder = QrDecoder()
    failed = False
    for path in _image_files(args.images):
        result = decode_image_file(path, decoder)
        failed |= result.error is not None
        if args.json:
            print(result.to_json(), flush=True)
        elif result.error:
            print(f"{path}: error: {result.error}")
        else:
            print(f"{path}: {' | '.join(result.texts) or '(no code)'}")
    return 1 if failed else 0


def _image_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the image files inside the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)  # a named file is tried whatever its name; errors say why
    return found


def _check(args: argparse.Namespace) -> int:
    config = _config(args)
    text = args.pass_text
    if args.image is not None:
        result = decode_image_file(args.image, QrDecoder())
        if result.error or not result.texts:
            raise ValueError(f"{args.image}: {result.error or 'no QR code found'}")
        text = result.texts[0]
    # A typed-in reading, as from the guard's handheld: an impossible value is a typo.
    reading = manual_reading(args.temperature) if args.temperature is not None else None
    with _open_ledger(config) as ledger:
        evaluation = Assessor(config, ledger).evaluate(
            text,
            Direction(args.direction),
            temperature=reading,
            now=datetime.now(UTC),
        )
    if args.json:
        print(json.dumps(_evaluation_record(evaluation), ensure_ascii=False))
    else:
        print(_evaluation_lines(evaluation))
    return EXIT_CODES[evaluation.decision.outcome]


def _evaluation_record(evaluation: Evaluation) -> dict[str, object]:
    decision = evaluation.decision
    record: dict[str, object] = {
        "outcome": decision.outcome.value,
        "reason": decision.reason.value,
        "next_step": decision.next_step.value,
        "alert": decision.alert,
        "direction": evaluation.direction.value,
        "mode": evaluation.mode.value,
        "temperature": temperature_fields(evaluation.temperature),
        "message_zh": messages.text(decision.reason, "zh"),
        "message_en": messages.text(decision.reason, "en"),
    }
    if isinstance(evaluation.scan, VerifiedPass):
        fields = evaluation.scan.fields
        record["pass"] = {
            "pass_id": fields.pass_id,
            "kind": fields.kind.value,
            "household_id": fields.household_id,
            "display_name": fields.display_name,
            "unit": fields.unit,
            "scope": str(fields.scope),
            "valid_from": fields.valid_from.isoformat(),
            "valid_until": fields.valid_until.isoformat(),
            "key_id": evaluation.scan.key_id,
        }
    elif evaluation.scan is not None:
        record["detail"] = evaluation.scan.detail
    return record


def _evaluation_lines(evaluation: Evaluation) -> str:
    d = evaluation.decision
    head = f"{messages.text(d.outcome)} {messages.text(d.outcome, 'en')}  [{d.reason}]"
    lines = [
        head,
        f"  {messages.text(d.reason)} / {messages.text(d.reason, 'en')}",
        f"  → {messages.text(d.next_step)} / {messages.text(d.next_step, 'en')}",
    ]
    if isinstance(evaluation.scan, VerifiedPass):
        f = evaluation.scan.fields
        lines.append(f"  {f.display_name} {f.unit} ({f.kind}) pass {f.pass_id}")
    if d.alert:
        lines.append("  ! alert raised")
    return "\n".join(lines)


def _purge(args: argparse.Namespace) -> int:
    config = _config(args)
    with _open_ledger(config) as ledger:
        counts = housekeeping.purge(
            ledger,
            now=datetime.now(UTC),
            days=config.retention.days,
            sync_enabled=config.sync.enabled,
            dry_run=args.dry_run,
        )
    if args.json:
        print(json.dumps(counts.as_dict()))
        return 0
    verb = "would purge" if args.dry_run else "purged"
    scope = (
        "sync off: by age alone"
        if counts.through_seq is None
        else f"acknowledged by the centre through entry {counts.through_seq}"
    )
    print(
        f"{verb} the personal data of {counts.entries} entries older than"
        f" {config.retention.days} days ({scope});"
        f" {counts.alerts} alerts and {counts.passages} passages of the compound"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    return calibrate_.command(
        load_config(path),
        path,
        pairs_file=args.pairs,
        people=args.people,
        save=args.save,
        write=args.write,
        clock=SystemClock(),
        ask=input,
        say=print,
    )


def _verify_ledger(args: argparse.Namespace) -> int:
    path = args.path or _config(args).ledger_path
    report = verify_ledger_file(path)
    if report.ok:
        print(f"{path}: ok, {report.entries_checked} entries, chain intact")
        return 0
    print(f"{path}: BROKEN at entry {report.first_break_seq}: {report.problem}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
