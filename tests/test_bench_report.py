"""bench.report: the tables of figures beside baselines, and the PNG plots (small fixtures)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.common import report_header, versus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def write(folder: Path, name: str, body: dict[str, Any]) -> None:
    (folder / f"{name}.json").write_text(
        json.dumps({**report_header(name), **body}), encoding="utf-8"
    )


@pytest.fixture
def bench_out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    write(folder, "gate", {
        "frame_to_decision_ms_each": [12.5, 14.0, 13.1, 40.2, 12.9, 15.5],
        "zxingcpp_decode_ms": {"median": 6.0, "p95": 7.5},
        "vs_baseline": [
            versus("frame_to_decision_ms.median", 13.55, 6.0, unit="ms",
                   baseline="zxing-cpp alone | same frames"),
            versus("peak_rss_mb", 151.2, 120.0, unit="MB", baseline="bare interpreter"),
        ],
    })  # fmt: skip
    write(folder, "sync", {
        "backlog_entries": 1500,
        "backlog_drain_curve": {
            "sqlite": {"seconds": [0.0, 0.4, 0.8, 1.1], "backlog": [1500, 1000, 500, 0]},
            "postgres": {"seconds": [0.0, 0.5, 0.9, 1.6], "backlog": [1500, 1000, 500, 0]},
        },
        "postgres_skipped": None,
        "vs_baseline": [
            versus("ingest_rows_per_second.sqlite", 41_000, 52_000, unit="rows/s",
                   baseline="plain executemany"),
            versus("ingest_rows_per_second.postgres", None, 52_000, unit="rows/s",
                   baseline="plain executemany"),
        ],
    })  # fmt: skip
    write(folder, "decode", {"skipped": "no photo set at /nowhere"})
    write(folder, "old", {"verify_us": 80.0})
    (folder / "notes.json").write_text('["not a benchmark"]', encoding="utf-8")
    (folder / "broken.json").write_text("{", encoding="utf-8")
    return folder


def test_report_tables_machine_and_plots(bench_out: Path) -> None:
    out = bench_out / "report.md"
    assert report.main(["--in", str(bench_out), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")

    # Each figure beside its baseline and the ratio (value / baseline), with what the
    # baseline is; a pipe in a description does not break the table.
    assert "| figure | value | baseline | ratio | what the baseline is |" in text
    assert (
        "| frame_to_decision_ms.median | 13.55 ms | 6 ms | 2.258× "
        "| zxing-cpp alone \\| same frames |" in text
    )
    assert "| peak_rss_mb | 151.2 MB | 120 MB | 1.26× | bare interpreter |" in text
    assert "| ingest_rows_per_second.sqlite | 41,000 rows/s | 52,000 rows/s | 0.7885× |" in text
    assert "| ingest_rows_per_second.postgres | — | 52,000 rows/s | — |" in text
    # Benchmarks in make-bench order; a skipped one says why; one without rows says so.
    assert text.index("## decode") < text.index("## gate") < text.index("## sync")
    assert "Skipped: no photo set at /nowhere" in text
    assert "## old" in text and "`vs_baseline` missing" in text
    assert "## notes" not in text and "## broken" not in text

    # The machine the figures came from.
    for label in ("CPU", "Cores", "Python", "SQLite", "Benchmarks ran", "Git commit"):
        assert re.search(rf"^\| {label} \| \S", text, re.MULTILINE), label

    # Both plots linked by relative path, and each is a real PNG beside the report.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == [report.LATENCY_PNG, report.DRAIN_PNG]
    for link in links:
        data = (out.parent / link).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_report_without_plot_data_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    write(folder, "passes", {"vs_baseline": [versus("verify_us", 90.0, 60.0, unit="µs",
                                                    baseline="bare Ed25519 verify")]})  # fmt: skip
    out = tmp_path / "elsewhere" / "report.md"
    plots = report.build(folder, out, now=NOW)
    assert [p.missing for p in plots] == [
        "gate.json has no frame_to_decision_ms_each",
        "sync.json has no backlog_drain_curve",
    ]
    text = out.read_text(encoding="utf-8")
    assert "2026-03-01T08:00:00+00:00" in text
    assert "| verify_us | 90 µs | 60 µs | 1.5× | bare Ed25519 verify |" in text
    assert "not drawn (gate.json has no frame_to_decision_ms_each)" in text
    assert not list(out.parent.glob("*.png"))


def test_report_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        report.main(["--in", str(tmp_path / "absent"), "--out", str(tmp_path / "r.md")])
    assert stopped.value.code == 2


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"), (True, "yes"), (12345, "12,345"), (0.0, "0"), (6.0, "6"),
        (0.116, "0.116"), (float("nan"), "nan"), (1234.7, "1,235"), (13.55, "13.55"),
        (0.001234, "0.001234"), (151.2, "151.2"),
    ],
)  # fmt: skip
def test_number_format(value: Any, shown: str) -> None:
    assert report.number(value) == shown


def test_proof_runs_follow_the_benchmarks_with_each_limit_and_whether_it_held(
    bench_out: Path,
) -> None:
    write(bench_out, "crash", {
        "entries_target": 10000, "greens": 10004, "entries_in_ledger": 10004, "kills": 50,
        "restarts": 50, "checks": 51, "power_loss": False, "seconds": 900.0, "failures": [],
    })  # fmt: skip
    write(bench_out, "soak_centre", {
        "gates": 500, "seconds": 600, "requests_per_second": 33.0, "entries_per_second": 25.0,
        "p50_ms": 8.0, "p95_ms": 40.0, "p99_ms": 90.0,
        "by_kind": {"upload": {"requests": 15000, "p95_ms": 45.0}},
        "errors": 3, "entries_sent": 15000, "entries_stored": 15000,
        "stored_exactly_once": True, "server_rss_growth_mb": 1.5, "failed": ["errors"],
    })  # fmt: skip
    out = bench_out / "report.md"
    report.build(bench_out, out, NOW)
    text = out.read_text(encoding="utf-8")
    proof = text.index("# Proof runs")
    assert proof > text.index("## gate") and proof > text.index("## sync")
    assert text.index("## soak_centre") < text.index("## crash")  # as make soak runs them
    assert "| failed checks | 0 | 0 | yes |" in text
    assert "| green lights seen | 10004 | ≥ 10000 | yes |" in text
    assert "| errors (not 200, or no answer) | 3 | 0 | **no** |" in text
    assert "**Failed: errors.**" in text
