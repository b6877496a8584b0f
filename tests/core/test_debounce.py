"""Tests of the debouncer: one scan per showing of a pass, with time passed in."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_agent.core.debounce import DEFAULT_WINDOW_NS, Debouncer

S = 1_000_000_000
WINDOW = 3 * S


def test_first_sighting_is_a_scan_and_repeats_are_not() -> None:
    d = Debouncer(WINDOW)
    assert d.admit("GP1:A", 0) is True
    assert d.admit("GP1:A", 1 * S) is False
    assert d.admit("GP1:A", 2 * S) is False


def test_default_window_is_three_seconds() -> None:
    assert Debouncer().window_ns == DEFAULT_WINDOW_NS == WINDOW


def test_a_pass_held_up_for_ten_seconds_is_one_scan() -> None:
    d = Debouncer(WINDOW)
    frames = range(0, 10 * S, S // 10)  # ten frames a second for ten seconds
    assert [d.admit("GP1:A", t) for t in frames].count(True) == 1


def test_window_counts_from_the_last_sighting_not_the_first() -> None:
    d = Debouncer(WINDOW)
    assert d.admit("GP1:A", 0)
    assert not d.admit("GP1:A", 2 * S)
    # 4 s after the first sighting but 2 s after the last: still the same showing.
    assert not d.admit("GP1:A", 4 * S)
    # Out of view for a whole window: a new scan.
    assert d.admit("GP1:A", 7 * S)


def test_exactly_one_window_of_absence_counts_again() -> None:
    d = Debouncer(WINDOW)
    assert d.admit("GP1:A", 0)
    assert not d.admit("GP1:A", WINDOW - 1)
    assert d.admit("GP1:A", 2 * WINDOW - 1)


def test_texts_are_tracked_independently() -> None:
    d = Debouncer(WINDOW)
    assert d.admit("GP1:A", 0)
    assert d.admit("GP1:B", S)
    assert not d.admit("GP1:A", S)
    assert not d.admit("GP1:B", 2 * S)


def test_old_entries_are_forgotten() -> None:
    d = Debouncer(WINDOW)
    for i in range(100):
        d.admit(f"GP1:{i}", 0)
    assert len(d) == 100
    d.admit("GP1:later", WINDOW)
    assert len(d) == 1
    assert "tracking=1" in repr(d)


def test_time_going_backwards_is_refused() -> None:
    d = Debouncer(WINDOW)
    d.admit("GP1:A", 5 * S)
    with pytest.raises(ValueError, match="backwards"):
        d.admit("GP1:B", 4 * S)
    # The same instant again is fine: several codes come from one frame.
    assert d.admit("GP1:B", 5 * S)


@pytest.mark.parametrize("window", [0, -1, 1.5, True, "3"])
def test_bad_window_is_refused(window: Any) -> None:
    with pytest.raises(ValueError, match="window_ns"):
        Debouncer(window)


# --- properties ----------------------------------------------------------------------------

TEXTS = st.sampled_from(["GP1:A", "GP1:B", "GP1:C", "GP1:D"])
STEPS = st.lists(st.tuples(TEXTS, st.integers(0, 2 * WINDOW)), max_size=60)


def model(steps: list[tuple[str, int]], window: int) -> list[bool]:
    """The definition, without pruning: a scan unless the text was seen less than a window ago."""
    last: dict[str, int] = {}
    now, out = 0, []
    for text, dt in steps:
        now += dt
        out.append(text not in last or now - last[text] >= window)
        last[text] = now
    return out


@settings(max_examples=300)
@given(steps=STEPS, window=st.integers(1, 3 * WINDOW))
def test_matches_the_definition(steps: list[tuple[str, int]], window: int) -> None:
    d = Debouncer(window)
    now, got = 0, []
    for text, dt in steps:
        now += dt
        got.append(d.admit(text, now))
    assert got == model(steps, window)


@given(steps=STEPS)
def test_memory_holds_only_texts_seen_within_the_window(steps: list[tuple[str, int]]) -> None:
    d = Debouncer(WINDOW)
    now, seen = 0, []
    for text, dt in steps:
        now += dt
        d.admit(text, now)
        seen.append((text, now))
        recent = {t for t, at in seen if now - at < WINDOW}
        assert len(d) == len(recent)


@given(gaps=st.lists(st.integers(0, WINDOW - 1), max_size=50), start=st.integers(0, 10**12))
def test_a_pass_kept_in_view_is_one_scan(gaps: list[int], start: int) -> None:
    d = Debouncer(WINDOW)
    now = start
    results = [d.admit("GP1:A", now)]
    for gap in gaps:
        now += gap
        results.append(d.admit("GP1:A", now))
    assert results == [True] + [False] * len(gaps)


@given(steps=STEPS)
def test_other_texts_do_not_change_a_texts_scans(steps: list[tuple[str, int]]) -> None:
    # Feed everything to one debouncer, and only GP1:A's sightings (at the same times)
    # to another: GP1:A's answers must be the same.
    both, alone = Debouncer(WINDOW), Debouncer(WINDOW)
    now = 0
    for text, dt in steps:
        now += dt
        answer = both.admit(text, now)
        if text == "GP1:A":
            assert alone.admit(text, now) == answer
