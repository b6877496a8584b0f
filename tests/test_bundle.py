"""Signed entry bundles: a gate's entries go to the centre on a USB stick, exactly once."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent import cli as agent_cli
from gate_agent.bundle_export import ExportRefused, bundle_bytes, export_bundle
from gate_agent.clock import FakeClock
from gate_agent.config import load_config
from gate_agent.ledger import Ledger
from gate_agent.uplink import Step, Uploader
from gate_agent.uplink_http import save_token, token_path
from sync import cli as sync_cli
from sync.bundle import read, seal
from sync.server.app import create_app
from sync.server.auth import secret_hash
from tests.ledger.helpers import draft
from tests.sync.stream_helpers import ADMIN_TOKEN, GATE, NOW, Centre, centre, fill_ledger, serving
from tests.test_gate_syncs import gate_toml

TOKEN = "gate-a-token-0123456789abcdefghij"
EXPORTED = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
COUNT = 1100  # more than two batches of 500


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gate ledger of COUNT entries, made once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    fill_ledger(path, COUNT)
    return path


@pytest.fixture
def ledger(tmp_path: Path, template: Path) -> Iterator[Ledger]:
    path = tmp_path / "gate" / "ledger.sqlite3"
    path.parent.mkdir()
    shutil.copy(template, path)
    with Ledger.open(path, gate_id=GATE) as opened:
        yield opened


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Centre]:
    """A centre where gate-a is enrolled with TOKEN."""
    with centre(tmp_path / "central") as opened:
        enrol(opened, TOKEN)
        yield opened


def enrol(opened: Centre, token: str) -> None:
    code = f"code-{token}"
    opened.streams.add_enrol_code(GATE, secret_hash(code), NOW + timedelta(days=30))
    assert opened.streams.enrol(GATE, secret_hash(code), secret_hash(token), NOW)


def export(ledger: Ledger, path: Path, **kw: Any) -> Path:
    clock = kw.pop("clock", None) or FakeClock(EXPORTED)
    export_bundle(ledger, path, token=kw.pop("token", TOKEN), clock=clock, **kw)
    return path


def import_(opened: Centre, path: Path, *args: str) -> int:
    data = opened.data_dir
    return sync_cli.main(["--data-dir", str(data), "import-bundle", str(path), *args])


def stored_seqs(opened: Centre) -> list[int]:
    return [r.seq for r in opened.streams.entries_after(0, 10_000)]


def rewrite(path: Path, change: Any) -> None:
    """Change the bundle's JSON document the way someone with a text editor would."""
    document = json.loads(gzip.decompress(path.read_bytes()))
    change(document)
    path.write_bytes(gzip.compress(json.dumps(document).encode("utf-8")))


def test_export_then_import_stores_every_entry_once(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stick").mkdir()
    path = export(ledger, tmp_path / "stick" / "a.gsb")
    assert not list(path.parent.glob(".*tmp"))  # no temporary file is left behind
    assert ledger.sync.acked_through() == 0  # exporting acknowledges nothing
    assert import_(central, path, "--json") == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert (summary["stored_new"], summary["repeats"], summary["flagged"]) == (COUNT, 0, [])
    assert summary["stored_through"] == COUNT
    assert "500/1100 entries imported" in err and "1100/1100 entries imported" in err
    stored = central.streams.entries_after(0, 10_000)
    assert [r.seq for r in stored] == list(range(1, COUNT + 1))
    assert [r.hash for r in stored] == [e.hash for e in ledger.entries(0, 10_000)]
    assert not any(r.flagged for r in stored)
    # Importing the same stick again adds nothing.
    assert import_(central, path) == 0
    assert f"0 stored new, {COUNT} repeats, 0 flagged" in capsys.readouterr().out
    assert stored_seqs(central) == list(range(1, COUNT + 1))
    assert central.streams.gates()[0].last_seen is None  # a stick is not the gate online


def test_a_second_bundle_continues_after_the_first(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = export(ledger, tmp_path / "first.gsb")
    clock = FakeClock(EXPORTED)
    for n in range(3):
        ledger.append(draft(COUNT + n, wall_time=EXPORTED + timedelta(minutes=n)))
    # The gate never heard back, so the second stick carries everything again.
    second = export(ledger, tmp_path / "second.gsb", clock=clock)
    assert import_(central, first) == 0
    assert import_(central, second) == 0
    assert f"3 stored new, {COUNT} repeats" in capsys.readouterr().out
    assert stored_seqs(central) == list(range(1, COUNT + 4))


def test_a_gap_stops_the_import_and_names_the_first_missing_entry(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = export(ledger, tmp_path / "later.gsb", from_seq=601)
    assert import_(central, later) == 3
    err = capsys.readouterr().err
    assert "[gap]" in err and "entry 1 is missing" in err and "--from-seq 1" in err
    assert stored_seqs(central) == []
    # The technician re-exports from the missing entry; both sticks then go in.
    assert import_(central, export(ledger, tmp_path / "all.gsb", from_seq=1)) == 0
    assert import_(central, later) == 0
    assert stored_seqs(central) == list(range(1, COUNT + 1))


@pytest.mark.parametrize(
    "case",
    [
        (lambda d: d["entries"][7].update(outcome="deny"), "bad_signature"),
        (lambda d: d.update(clock_synced=not d["clock_synced"]), "bad_signature"),
        (lambda d: d.update(signature="hmac-sha256:" + "0" * 64), "bad_signature"),
        (lambda d: d.update(format="gate-station-entries/9"), "unsupported_format"),
        (lambda d: d["entries"].pop(), "bad_bundle"),  # no longer contiguous to last_seq
        (lambda d: d.update(extra=1), "bad_bundle"),
    ],
)
def test_a_changed_bundle_is_refused_and_nothing_is_stored(
    ledger: Ledger,
    central: Centre,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[Any, str],
) -> None:
    change, code = case
    path = export(ledger, tmp_path / "a.gsb")
    rewrite(path, change)
    assert import_(central, path) == 2
    assert f"[{code}]" in capsys.readouterr().err
    assert stored_seqs(central) == []


def test_a_flipped_or_cut_file_is_refused(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(ledger, tmp_path / "a.gsb")
    raw = path.read_bytes()
    for damaged in (
        raw[: len(raw) // 2],  # the stick was pulled out mid-copy
        raw[:-4],  # only the gzip trailer is missing
        raw[:100] + bytes([raw[100] ^ 0x01]) + raw[101:],  # one bit flipped
        b"not a bundle",
    ):
        path.write_bytes(damaged)
        assert import_(central, path) == 2
        assert "[bad_bundle]" in capsys.readouterr().err
    assert import_(central, tmp_path / "missing.gsb") == 2
    assert "[unreadable]" in capsys.readouterr().err
    assert stored_seqs(central) == []


def test_a_broken_chain_inside_a_signed_bundle_is_refused(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = bundle_bytes(ledger, token=TOKEN, clock=FakeClock(EXPORTED))
    _, document = read(data)
    entries = [dict(e) for e in document["entries"]]
    entries[3]["prev_hash"] = entries[1]["hash"]
    header = {k: v for k, v in document.items() if k not in ("entries", "signature")}
    path = tmp_path / "chain.gsb"
    path.write_bytes(seal({**header, "entries": entries}, secret_hash(TOKEN)))
    assert import_(central, path) == 2
    assert "[broken_chain]" in capsys.readouterr().err
    assert stored_seqs(central) == []


def test_another_gates_or_an_old_token_does_not_verify(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(ledger, tmp_path / "a.gsb")
    with centre(tmp_path / "elsewhere") as opened:  # a centre that never enrolled gate-a
        assert import_(opened, path) == 2
        assert "[not_enrolled]" in capsys.readouterr().err
        enrol(opened, "a-newer-token-after-re-enrolment-0")
        assert import_(opened, path) == 2  # the bundle predates the gate's new token
        assert "[bad_signature]" in capsys.readouterr().err
        signed_by_other = export(ledger, tmp_path / "b.gsb", token="some-other-gates-token")
        assert import_(opened, signed_by_other) == 2
        assert stored_seqs(opened) == []


def test_clock_correction_follows_the_exports_clock(
    tmp_path: Path, central: Centre, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gate" / "ledger.sqlite3"
    boot = "11111111-2222-4333-8444-555555555555"
    with Ledger.open(path, gate_id=GATE) as ledger:
        for n in range(3):
            # The RTC had reset to 2000 after a power cut; NTP never came back.
            wrong = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
            ledger.append(draft(n, wall_time=wrong, clock_synced=False, boot_id=boot))
        synced = FakeClock(EXPORTED, synced=True, boot_id=boot)
        unsynced = FakeClock(EXPORTED, synced=False, boot_id=boot)
        export(ledger, tmp_path / "synced.gsb", clock=synced)
        entries = ledger.entries()
    assert import_(central, tmp_path / "synced.gsb") == 0
    stored = central.streams.entries_after(0, 10)
    for entry, record in zip(entries, stored, strict=True):
        lag = timedelta(microseconds=(synced.monotonic_ns() - entry.monotonic_ns) / 1000)
        assert record.corrected_time == EXPORTED - lag
        assert record.wall_time is not None and record.wall_time.startswith("2000-01-01")
    with centre(tmp_path / "other") as opened:
        enrol(opened, TOKEN)
        with Ledger.open(path, gate_id=GATE) as ledger:
            export(ledger, tmp_path / "unsynced.gsb", clock=unsynced)
        assert import_(opened, tmp_path / "unsynced.gsb") == 0
        # Nothing in the bundle says what time it was: no correction is invented.
        assert [r.corrected_time for r in opened.streams.entries_after(0, 10)] == [None] * 3


def test_after_an_import_the_network_sync_adds_nothing_and_moves_the_cursor(
    ledger: Ledger, central: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert import_(central, export(ledger, tmp_path / "a.gsb")) == 0
    for n in range(4):  # the gate kept working after the export
        ledger.append(draft(COUNT + n))
    app = create_app(central.streams, central.issuer, ADMIN_TOKEN)
    with serving(app) as url:
        clock = FakeClock(EXPORTED + timedelta(days=1))
        with Uploader(ledger, base_url=url, gate_id=GATE, token=TOKEN, clock=clock) as uploader:
            # The first batch (1..500) is all repeats, answered with the cursor at 1100.
            assert uploader.step() == (Step.SENT, 0.0)
            assert ledger.sync.acked_through() == COUNT
            assert uploader.drain() is Step.IDLE
            status = uploader.status()
    assert (status.acked_through, status.backlog, status.alarm) == (COUNT + 4, 0, None)
    assert stored_seqs(central) == list(range(1, COUNT + 5))
    log = central.streams.sync_log(GATE, 10)
    assert [(row.result, row.count) for row in log[:2]] == [("stored", 4), ("repeat", 0)]


def test_export_refuses_when_not_enrolled_or_nothing_is_left(
    ledger: Ledger, tmp_path: Path
) -> None:
    with pytest.raises(ExportRefused) as refused:
        export(ledger, tmp_path / "a.gsb", token=None)
    assert refused.value.code == "not_enrolled"
    ledger.sync.record_ack(COUNT, EXPORTED, {})
    with pytest.raises(ExportRefused) as refused:
        export(ledger, tmp_path / "a.gsb")
    assert refused.value.code == "nothing_to_export"
    with pytest.raises(ExportRefused) as refused:
        export(ledger, tmp_path / "a.gsb", from_seq=COUNT + 1)
    assert refused.value.code == "bad_from_seq"
    assert not list(tmp_path.glob("*.gsb"))
    export(ledger, tmp_path / "a.gsb", from_seq=COUNT - 1)  # a lost stick: export again
    bundle, _ = read((tmp_path / "a.gsb").read_bytes())
    assert (bundle.first_seq, bundle.last_seq, bundle.acked_through) == (COUNT - 1, COUNT, COUNT)


def test_the_export_command_and_its_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = gate_toml(tmp_path, "http://127.0.0.1:9")
    config = load_config(config_file)
    args = ["--config", str(config_file), "export-bundle"]
    with Ledger.open(config.ledger_path, gate_id="G1") as ledger:
        ledger.append(draft(0))
    stick = tmp_path / "stick"
    stick.mkdir()
    assert agent_cli.main([*args, str(stick)]) == 2
    assert "[not_enrolled]" in capsys.readouterr().err
    save_token(token_path(config.gate.data_dir), TOKEN)
    assert agent_cli.main([*args, str(stick)]) == 0
    written = list(stick.glob("*.gsb"))
    assert len(written) == 1 and written[0].name.startswith("G1-")
    assert "entries 1..1" in capsys.readouterr().out
    with Ledger.open(config.ledger_path, gate_id="G1") as ledger:
        ledger.sync.record_ack(1, EXPORTED, {})
    assert agent_cli.main([*args, str(stick / "again.gsb")]) == 3
    assert "[nothing_to_export]" in capsys.readouterr().err
    assert agent_cli.main([*args, "--from-seq", "1", str(stick / "again.gsb")]) == 0
    assert read((stick / "again.gsb").read_bytes())[0].first_seq == 1


def test_exports_are_deterministic_apart_from_their_metadata(ledger: Ledger) -> None:
    clock = FakeClock(EXPORTED)
    one, _ = bundle_bytes(ledger, token=TOKEN, clock=clock)
    two, _ = bundle_bytes(ledger, token=TOKEN, clock=clock)
    assert one == two
    later, _ = bundle_bytes(ledger, token=TOKEN, clock=FakeClock(EXPORTED + timedelta(1)))
    assert later != one
