"""The benchmarks run and keep their report keys (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import bundle, decode, gate, ledger, passes
from bench import compound as compound_bench
from bench import stats as stats_bench
from bench import sync as sync_bench
from bench import trace as trace_bench


def run(module: object, out: Path, *args: str) -> dict[str, Any]:
    assert module.main(["--out", str(out), *args]) == 0  # type: ignore[attr-defined]
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert report["environment"]["sqlite"] and report["environment"]["git_commit"]
    assert_versus(report)
    return report


def assert_versus(report: dict[str, Any]) -> None:
    """Every figure the report lists stands beside a baseline from the same run, and a ratio.

    Only PostgreSQL's figures may be missing, when no PostgreSQL could be started.
    """
    rows = report["vs_baseline"]
    assert rows
    for row in rows:
        assert {"figure", "value", "unit", "baseline_value", "ratio", "baseline"} <= set(row)
        assert row["baseline"], row
        if report.get("postgres_skipped") and "postgres" in row["figure"]:
            continue
        assert row["value"] is not None and row["baseline_value"], row
        assert row["ratio"] == round(row["value"] / row["baseline_value"], 4), row


def test_passes_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(passes, tmp_path / "p.json", "--repeat", "1", "--number", "3")
    assert {"ed25519_verify_us", "verify_us", "decide_us", "ratio_verify_vs_baseline"} <= set(
        report
    )
    capsys.readouterr()


def test_ledger_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(ledger, tmp_path / "l.json", "--count", "5")
    assert report["verify_ok"] is True
    assert {"bare_insert_median_ms", "append_median_ms", "ratio_append_vs_baseline"} <= set(report)
    capsys.readouterr()


def test_decode_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.json"
    assert decode.main(["--out", str(out), "--repeat", "1"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    capsys.readouterr()
    if "skipped" in report:
        pytest.skip(report["skipped"])
    production = report["configurations"][report["production"]]
    assert_versus(report)
    assert production["positives_exact"] >= 127
    assert production["negatives_with_text"] == 0
    assert report["ratio_median_vs_baseline"] > 0


def test_gate_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(gate, tmp_path / "g.json", "--repeat", "1", "--persons", "4")
    capsys.readouterr()
    assert set(report["empty_frame_ms"]) == {"640x480", "1280x720", "zxingcpp_only_1280x720"}
    assert set(report["frame_to_decision_ms"]) == {"median", "p95"}
    # One latency per scan, for the report's distribution plot.
    assert len(report["frame_to_decision_ms_each"]) == 4
    assert report["persons_per_minute"] > 0
    assert report["peak_rss_mb"] > 0
    memory = report["memory"]
    assert isinstance(memory, dict) and memory["run_entries"] == 4
    decoded = report["decode"]
    assert isinstance(decoded, dict)
    if "skipped" not in decoded:
        assert set(decoded) == {  # the keys issue 3 names; others read them
            "positives_read", "positives_total", "negatives_false",
            "pyzbar_only_read", "zxingcpp_only_read", "median_ms",
        }  # fmt: skip
        assert decoded["positives_read"] >= 131 and decoded["negatives_false"] == 0
        assert decoded["positives_read"] > max(
            decoded["pyzbar_only_read"], decoded["zxingcpp_only_read"]
        )


def test_bundle_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(bundle, tmp_path / "b.json", "--count", "12")
    assert (report["stored_new"], report["repeats_on_reimport"]) == (12, 12)
    assert {"export_ms_per_1000", "import_ms_per_1000", "ratio_import_vs_baseline"} <= set(report)
    assert report["bundle_bytes_per_entry"] > 0
    capsys.readouterr()


def test_sync_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(sync_bench, tmp_path / "s.json", "--backlog", "600", "--gates", "4",
                 "--rounds", "2", "--batch", "5")  # fmt: skip
    capsys.readouterr()
    backlog, ingest = report["backlog_100k_seconds"], report["ingest_rows_per_second"]
    assert set(backlog) == set(ingest) == {"sqlite", "postgres"}
    assert backlog["sqlite"] > 0 and ingest["sqlite"] > 0
    if report.get("postgres_skipped"):
        assert backlog["postgres"] is None and ingest["postgres"] is None
    else:
        assert backlog["postgres"] > 0 and ingest["postgres"] > 0
    # The drain curve starts at the whole backlog and ends with nothing left, never rising.
    curve = report["backlog_drain_curve"]["sqlite"]
    assert (curve["backlog"][0], curve["backlog"][-1]) == (600, 0)
    assert curve["backlog"] == sorted(curve["backlog"], reverse=True)
    assert curve["seconds"] == sorted(curve["seconds"]) and len(curve["seconds"]) >= 3
    fleet = report["gates_200"]
    assert (fleet["failed_uploads"], fleet["gates_complete"], fleet["batches"]) == (0, 4, 8)
    assert fleet["p99_batch_ms"] >= fleet["p50_batch_ms"] > 0
    assert report["ratio_sqlite_ingest_vs_baseline"] > 0


def test_trace_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(trace_bench, tmp_path / "t.json", "--gates", "2", "--count", "150",
                 "--passes", "15", "--spacing-seconds", "30")  # fmt: skip
    capsys.readouterr()
    assert report["entries"] == 300
    # The indexed trace finds exactly what the full scan finds: an hour at 30 s apart.
    assert report["same_rows_as_scan"] is True and report["gate_hour_rows"] == 120
    assert report["pass_rows"] == 300 // 15 and report["inside_passes"] > 0
    assert {"ratio_trace_vs_scan", "ratio_ingest_with_vs_without"} <= set(report)


def test_stats_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(stats_bench, tmp_path / "s.json", "--count", "400", "--gates", "3",
                 "--days", "2")  # fmt: skip
    capsys.readouterr()
    # Counted in SQL, every entry is there, and hour by hour as Python counts them.
    assert report["entries"] == report["counted"] == 400
    assert report["same_hourly_counts"] is True
    assert {"stats_seconds", "python_count_seconds", "ratio_stats_vs_python"} <= set(report)


def test_compound_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(compound_bench, tmp_path / "c.json", "--compounds", "2", "--gates", "2",
                 "--count", "120", "--spacing-seconds", "6000")  # fmt: skip
    capsys.readouterr()
    assert (report["entries"], report["gates"], report["compound_gates"]) == (480, 4, 2)
    # 120 entries 100 minutes apart, the last 100 minutes ago: the last 7 days hold 100 a gate.
    assert report["entries_in_window"] == 2 * 100
    assert report["alerts"] == 0 and report["passages"] > 0
    assert {"ratio_request_vs_scan", "ratio_ingest_with_vs_without"} <= set(report)
