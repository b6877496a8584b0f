"""The benchmark report: every figure beside its baseline and the ratio, with plots.

Run as ``python -m bench.report --in bench/out --out bench/out/report.md`` (``make bench``
does, last). Reads every benchmark JSON in --in, and writes a Markdown report: the
machine the figures were measured on, then per benchmark a table of figure | value |
baseline | ratio | what the baseline is, taken from the ``vs_baseline`` rows each
benchmark writes (``bench.common.versus``). Beside the report go two PNG plots, drawn
with matplotlib's Agg backend and its own DejaVu fonts (nothing fetched): the
distribution of per-scan decision latency (``gate.json``) and the backlog drain curve
(``sync.json``). The report links them by relative path. The JSON of ``make soak`` and
``make fuzz`` (soak, crash, chaos, fuzz), when present, follow as proof runs: each
check against its limit (``bench/report_proof.py``).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from bench.common import git_commit
from bench.report_proof import PROOF_ORDER, SECTIONS, proof_section, section_head

LATENCY_PNG = "decision_latency.png"
DRAIN_PNG = "backlog_drain.png"
#: The order benchmarks appear in (others follow, by name), as `make bench` runs them.
ORDER = ("decode", "passes", "ledger", "gate", "bundle", "sync", "trace", "stats", "compound")


@dataclass(frozen=True)
class Plot:
    """A plot the report links, or why it could not be drawn."""

    title: str
    file: str
    missing: str | None = None


def load_reports(folder: Path) -> dict[str, dict[str, Any]]:
    """Every benchmark JSON in `folder` by benchmark name (files that are not one are left)."""
    reports: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("benchmark"), str):
            data["_file"] = path.name
            reports[data["benchmark"]] = data
    return dict(sorted(reports.items(), key=lambda item: _rank(item[0])))


def _rank(name: str) -> tuple[int, str]:
    if name in PROOF_ORDER:  # after every benchmark, as make soak and make fuzz run them
        return (len(ORDER) + 1 + PROOF_ORDER.index(name), name)
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


# -- plots ----------------------------------------------------------------------------------------


def latency_plot(gate: dict[str, Any] | None, out: Path) -> Plot:
    """Histogram and CDF of the per-scan frame-to-decision latency of the gate benchmark."""
    plot = Plot("Decision latency distribution (frame grabbed to decision, per scan)", out.name)
    values = (gate or {}).get("frame_to_decision_ms_each")
    if not values:
        return Plot(plot.title, plot.file, "gate.json has no frame_to_decision_ms_each")
    latencies = sorted(float(v) for v in values)
    figure = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    histogram.hist(latencies, bins=max(5, min(40, len(latencies) // 2)), color="#3b75af")
    histogram.set_xlabel("ms")
    histogram.set_ylabel("scans")
    histogram.set_title(f"{len(latencies)} scans")
    steps = [(i + 1) / len(latencies) for i in range(len(latencies))]
    cdf.step(latencies, steps, where="post", color="#3b75af", label="frame to decision")
    baseline = (gate or {}).get("zxingcpp_decode_ms", {}).get("median")
    for axes in (histogram, cdf):
        if isinstance(baseline, int | float):
            axes.axvline(baseline, color="#c44e52", linestyle="--", label="zxing-cpp decode alone")
        axes.grid(alpha=0.3)
    cdf.set_xlabel("ms")
    cdf.set_ylabel("share of scans at most")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("cumulative")
    cdf.legend(loc="lower right", fontsize="small")
    figure.suptitle("Gate: decision latency")
    _save(figure, out)
    return plot


def drain_plot(sync: dict[str, Any] | None, out: Path) -> Plot:
    """Entries left against seconds while a gate drains its backlog to the centre."""
    plot = Plot("Backlog drain curve (entries left vs time, gate to centre)", out.name)
    curves = (sync or {}).get("backlog_drain_curve")
    if not curves:
        return Plot(plot.title, plot.file, "sync.json has no backlog_drain_curve")
    figure = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    axes = figure.subplots()
    for store, curve in curves.items():
        axes.plot(curve["seconds"], curve["backlog"], marker=".", markersize=3, label=store)
    axes.set_xlabel("seconds since the uploader started")
    axes.set_ylabel("entries still to send")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(title="centre store")
    entries = (sync or {}).get("backlog_entries")
    figure.suptitle(f"Sync: a backlog of {entries:,} entries draining" if entries else "Sync")
    _save(figure, out)
    return plot


def _save(figure: Figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" stamp: the same figures give the same file on another matplotlib.
    # A Figure made without pyplot saves through Agg; no global backend state is touched.
    figure.savefig(out, format="png", metadata={"Software": None})


# -- Markdown -------------------------------------------------------------------------------------


def number(value: Any) -> str:
    """A figure as the report shows it: grouped thousands, else at most 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isfinite(value) and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def ratio(value: Any) -> str:
    """A ratio as ×, or — when there is none."""
    return "—" if value is None else f"{number(float(value))}×"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def machine_section(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Where the figures were measured, from the benchmarks' own environment records."""
    envs = [r.get("environment", {}) for r in reports.values()]
    first = envs[0] if envs else {}
    sqlite = first.get("sqlite") or next(
        (r["sqlite"] for r in reports.values() if isinstance(r.get("sqlite"), str)), "unknown"
    )
    whens = sorted(str(r["when"]) for r in reports.values() if r.get("when"))
    commits = sorted({str(e.get("git_commit", "unknown")) for e in envs}) or ["unknown"]
    span = f"{whens[0]} to {whens[-1]}" if whens else "unknown"
    rows = [
        ("CPU", first.get("cpu", "unknown")),
        ("Cores", first.get("cpu_count", "unknown")),
        ("Machine", f"{first.get('machine', '?')}, {first.get('platform', '?')}"),
        ("Python", f"{first.get('python', '?')} ({first.get('implementation', '?')})"),
        ("SQLite", sqlite),
        ("Benchmarks ran", span),
        ("Git commit", ", ".join(commits)),
    ]
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    if len({e.get("cpu") for e in envs}) > 1 or len(commits) > 1:
        lines += ["", "**The benchmarks did not all run on the same machine or commit.**"]
    return lines


def benchmark_section(name: str, report: dict[str, Any]) -> list[str]:
    """One benchmark's table: figure | value | baseline | ratio | what the baseline is."""
    lines = section_head(name, report)
    if "skipped" in report:
        return lines
    rows = report.get("vs_baseline")
    if not rows:
        return [*lines, "No figures beside a baseline in this JSON (`vs_baseline` missing).", ""]
    lines += [
        "| figure | value | baseline | ratio | what the baseline is |",
        "|---|--:|--:|--:|---|",
    ]
    for row in rows:
        unit = f" {row['unit']}" if row.get("unit") else ""
        value, base = number(row.get("value")), number(row.get("baseline_value"))
        lines.append(
            f"| {_cell(row['figure'])} | {value}{unit if row.get('value') is not None else ''} "
            f"| {base}{unit if row.get('baseline_value') is not None else ''} "
            f"| {ratio(row.get('ratio'))} | {_cell(row.get('baseline', ''))} |"
        )
    notes = [f"{key}: {report[key]}" for key in ("postgres_skipped",) if report.get(key)]
    return [*lines, "", *[f"Note — {n}" for n in notes], *([""] if notes else [])]


def render(reports: dict[str, dict[str, Any]], plots: list[Plot], generated: datetime) -> str:
    """The whole report as Markdown."""
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` (`python -m bench.report`) at "
        f"{generated.isoformat(timespec='seconds')} from the JSON in this folder; "
        f"report code at commit {git_commit()}. Every figure stands beside a baseline "
        "measured in the same run on the same machine; ratio = value / baseline. "
        "Absolute figures hold for this machine only; the ratios travel better.",
        "",
        *machine_section(reports),
        "",
        "## Plots",
        "",
    ]
    for plot in plots:
        if plot.missing:
            lines += [f"- {plot.title}: not drawn ({plot.missing}).", ""]
        else:
            lines += [f"### {plot.title}", "", f"![{plot.title}]({plot.file})", ""]
    if not reports:
        lines += ["No benchmark JSON found.", ""]
    proofs = {name: r for name, r in reports.items() if name in SECTIONS}
    for name, report in reports.items():
        if name not in proofs:
            lines += benchmark_section(name, report)
    if proofs:
        lines += [
            "# Proof runs",
            "",
            "`make soak` and `make fuzz`: what each run checked, the figure it reached, "
            "the limit it had to keep, and whether it held (no baseline: these prove "
            "promises, they do not measure speed).",
            "",
        ]
        for name, report in proofs.items():
            lines += proof_section(name, report)
    return "\n".join(lines).rstrip() + "\n"


def build(folder: Path, out: Path, now: datetime | None = None) -> list[Plot]:
    """Read the JSON in `folder`; write the report to `out` and its plots beside it."""
    reports = load_reports(folder)
    plots = [
        latency_plot(reports.get("gate"), out.parent / LATENCY_PNG),
        drain_plot(reports.get("sync"), out.parent / DRAIN_PNG),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(reports, plots, now or datetime.now(UTC)), encoding="utf-8")
    return plots


def main(argv: list[str] | None = None) -> int:
    """Write the report; say where, and which plot could not be drawn."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--in", dest="folder", type=Path, default=Path("bench/out"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/report.md"))
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"no such folder: {args.folder}")
    plots = build(args.folder, args.out)
    print(f"wrote {args.out}")
    for plot in plots:
        print(f"  {plot.file}: {plot.missing or 'drawn'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
