"""The report's proof sections: the soak, crash, chaos and fuzz runs against their limits.

Those runs (``make soak``, ``make fuzz``) prove promises rather than measure speed, so
they have no baseline: each becomes a table of what was checked, the figure the run
reached, the limit it had to keep, and whether it held, read from the fields each
harness writes (``bench/soak_gate.py``, ``bench/soak_centre.py``, ``bench/crash.py``,
``bench/chaos.py``, ``fuzz/run.py``). A run that failed says which limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The order proof runs appear in, as `make soak` then `make fuzz` run them.
PROOF_ORDER = ("soak_gate", "soak_centre", "crash", "crash_powerloss", "chaos", "fuzz")

Row = tuple[str, Any, str, bool | None]  # what, value, limit, held (None: reported only)


def _at_most(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value <= limit


def _soak_gate(r: dict[str, Any]) -> list[Row]:
    limits = r.get("limits", {})
    slices = r.get("latency_slices") or []
    p50s = ", ".join(str(s.get("p50_ms")) for s in slices)
    rss_limit = limits.get("rss_growth_mb_at_most", 5.0)
    ratio_limit = limits.get("latency_ratio_at_most", 1.5)
    return [
        ("people shown", r.get("people_shown"), "", None),
        ("people a minute", r.get("people_per_minute"), "", None),
        ("undecided", r.get("undecided"), "0", r.get("undecided") == 0),
        ("ledger entries = people (±1 at the stop)", r.get("ledger_entries"), "",
         r.get("entries_equal_people")),
        ("ledger chain intact", r.get("ledger_chain_ok"), "true", r.get("ledger_chain_ok")),
        ("RSS growth, MB (floor and peaks)", r.get("rss_growth_mb"), f"≤ {rss_limit}",
         _at_most(r.get("rss_growth_mb"), rss_limit)),
        ("of which SQLite (its caches fill as the ledger grows), MB",
         r.get("sqlite_memory_growth_mb"), "", None),
        ("RSS floor first → last window, MB",
         f"{r.get('rss_mb_first_window', {}).get('min')} → "
         f"{r.get('rss_mb_last_window', {}).get('min')}", "", None),
        ("open file descriptors, growth", r.get("fd_growth"), "≤ 0",
         _at_most(r.get("fd_growth"), 0)),
        ("threads first → last window",
         f"{r.get('threads_first_window')} → {r.get('threads_last_window')}", "", None),
        ("decision latency p50 per slice, ms", p50s, "", None),
        ("latency p50 last slice / first", r.get("latency_ratio_last_first"),
         f"≤ {ratio_limit}", _at_most(r.get("latency_ratio_last_first"), ratio_limit)),
        ("backlog drained to the centre", r.get("backlog_drained"), "true",
         r.get("backlog_drained")),
    ]  # fmt: skip


def _soak_centre(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("gates", r.get("gates"), "", None),
        ("seconds", r.get("seconds"), "", None),
        ("requests per second", r.get("requests_per_second"), "", None),
        ("entries per second", r.get("entries_per_second"), "", None),
        ("request latency p50 / p95 / p99, ms",
         f"{r.get('p50_ms')} / {r.get('p95_ms')} / {r.get('p99_ms')}", "", None),
    ]  # fmt: skip
    for kind, figures in sorted((r.get("by_kind") or {}).items()):
        rows.append(
            (f"{kind}: requests, p95 ms", f"{figures.get('requests')}, {figures.get('p95_ms')}",
             "", None)
        )  # fmt: skip
    rows += [
        ("errors (not 200, or no answer)", r.get("errors"), "0", r.get("errors") == 0),
        ("entries sent / stored", f"{r.get('entries_sent')} / {r.get('entries_stored')}", "",
         None),
        ("every entry stored exactly once", r.get("stored_exactly_once"), "true",
         r.get("stored_exactly_once")),
        ("server RSS growth, MB", r.get("server_rss_growth_mb"), "", None),
    ]  # fmt: skip
    return rows


def _crash(r: dict[str, Any]) -> list[Row]:
    failures = r.get("failures") or []
    return [
        ("green lights seen", r.get("greens"), f"≥ {r.get('entries_target')}",
         (r.get("greens") or 0) >= (r.get("entries_target") or 0)),
        ("SIGKILLs at random moments", r.get("kills"), "", None),
        ("power cut beneath SQLite at each kill", r.get("power_loss"), "", None),
        ("checks after the kills (integrity, chain, sequence, every green)",
         r.get("checks"), "", None),
        ("failed checks", len(failures), "0", not failures),
        ("entries in the ledger", r.get("entries_in_ledger"), "", None),
        ("seconds", r.get("seconds"), "", None),
    ]  # fmt: skip


def _chaos(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [("seed", r.get("seed"), "", None)]
    for run in r.get("runs") or []:
        store = run.get("store")
        rows += [
            (f"{store}: seconds, steps", f"{run.get('seconds')}, {run.get('steps')}", "", None),
            (f"{store}: entries, requests through the faulty proxy",
             f"{run.get('entries')}, {run.get('requests')}", "", None),
            (f"{store}: faults and crashes", _actions(run.get("actions") or {}), "", None),
            (f"{store}: invariant checks", run.get("checks"), "all held",
             r.get("invariants") == "held"),
        ]  # fmt: skip
    if r.get("postgres_skipped"):
        rows.append(("PostgreSQL", r["postgres_skipped"], "", None))
    return rows


def _actions(actions: dict[str, Any]) -> str:
    return ", ".join(f"{name} {count}" for name, count in actions.items())


def _fuzz(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for target in r.get("targets") or []:
        if "skipped" in target:
            rows.append((target.get("target", "?"), target["skipped"], "", None))
            continue
        crashes = target.get("crashes") or []
        rows.append(
            (f"{target.get('target')}: runs in {target.get('wall_seconds')} s, findings",
             f"{target.get('runs')}, {len(crashes)}", "0 findings", not crashes)
        )  # fmt: skip
    return rows


SECTIONS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "soak_gate": _soak_gate,
    "soak_centre": _soak_centre,
    "crash": _crash,
    "crash_powerloss": _crash,
    "chaos": _chaos,
    "fuzz": _fuzz,
}


def unread(name: str, report: dict[str, Any]) -> list[str]:
    """The checks a proof JSON left unreadable: a figure missing, or a limit undecided.

    Tests run each harness small and call this on its real output, so a field renamed in
    a harness cannot leave the report saying nothing.
    """
    return [
        what
        for what, value, limit, held in SECTIONS[name](report)
        if value is None or "None" in str(value) or (limit and held is None)
    ]


def _cell(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "–" if value is None or value == "" else str(value).replace("|", "\\|")


def section_head(name: str, report: dict[str, Any]) -> list[str]:
    """A section's title and where its figures come from, or why it was skipped."""
    env = report.get("environment", {})
    lines = [
        f"## {name}",
        "",
        f"`{report['_file']}`, {report.get('when', 'unknown time')}, "
        f"commit {env.get('git_commit', 'unknown')}.",
        "",
    ]
    if "skipped" in report:
        lines += [f"Skipped: {report['skipped']}", ""]
    return lines


def proof_section(name: str, report: dict[str, Any]) -> list[str]:
    """A proof run's table of checks, figures, limits and whether each held."""
    lines = section_head(name, report)
    if "skipped" in report:
        return lines
    lines += ["| what | figure | limit | held |", "|---|--:|---|---|"]
    for what, value, limit, held in SECTIONS[name](report):
        mark = "–" if held is None else ("yes" if held else "**no**")
        lines.append(f"| {what} | {_cell(value)} | {_cell(limit)} | {mark} |")
    failed = report.get("failed")
    if failed:
        lines += ["", f"**Failed: {', '.join(map(str, failed))}.**"]
    return [*lines, ""]
