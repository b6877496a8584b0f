"""The soak harnesses run whole at tiny sizes (``make soak`` runs them for an hour).

Nothing here is timed: memory, descriptor and latency limits are reported but only
enforced by ``make soak``; what a short run can prove is asserted: every person got a
decision and an entry, the backlog reached the centre, every entry is stored once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import soak_centre, soak_gate
from bench.report_proof import unread


def test_gate_soak_records_every_person_and_drains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gate.json"
    code = soak_gate.main(["--out", str(out), "--seconds", "12", "--sample-seconds", "1",
                           "--warmup-seconds", "2", "--slices", "2", "--report-only"])  # fmt: skip
    capsys.readouterr()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0, report["failed"]
    assert report["people_shown"] >= 3 and report["undecided"] == 0
    # The person at the gate when it stops may be recorded before their line is printed.
    assert report["ledger_entries"] - report["people_shown"] in (0, 1)
    assert report["ledger_chain_ok"] is True
    assert report["centre_stored_through"] == report["ledger_entries"]
    assert report["demo_exit_code"] == 0
    # Refusals come through too, not only residents let in.
    assert {"ALLOW", "DENY"} <= set(report["outcomes"])
    sample = report["series"][-1]
    assert sample["rss_mb"] > 0 and sample["fds"] > 0 and sample["threads"] > 0
    assert sample["ledger_entries"] > 0 and "backlog" in sample
    assert {"rss_growth_mb", "fd_growth", "latency_ratio_last_first", "limits"} <= set(report)
    assert len(report["latency_slices"]) == 2
    assert unread("soak_gate", report) == []  # the report can read every figure it names


def test_centre_soak_stores_every_entry_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "centre.json"
    code = soak_centre.main(["--out", str(out), "--seconds", "6", "--gates", "10",
                             "--person-seconds", "1", "--poll-seconds", "1",
                             "--lists-seconds", "2", "--sample-seconds", "0.5"])  # fmt: skip
    capsys.readouterr()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0, report["failed"]
    assert report["errors"] == 0 and report["stored_exactly_once"] is True
    # A person a second at each of 10 gates for 6 s: every gate sent its people.
    assert report["entries_sent"] == report["entries_stored"] >= 10 * 5
    assert report["by_kind"]["upload"]["requests"] >= 10
    assert report["by_kind"]["lists"]["requests"] >= 10
    assert report["server_rss_growth_mb"] is not None
    assert unread("soak_centre", report) == []
