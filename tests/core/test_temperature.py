"""Readings typed in from a handheld thermometer."""

import pytest

from gate_agent.core.temperature import TemperatureSource, manual_reading


@pytest.mark.parametrize(("typed", "kept"), [(36.64, 36.6), (37.25, 37.2), (30.0, 30.0)])
def test_a_manual_reading_keeps_one_decimal_and_the_raw_value(typed: float, kept: float) -> None:
    reading = manual_reading(typed)
    assert reading.estimate_celsius == kept
    assert reading.raw_celsius == (typed,)
    assert reading.source is TemperatureSource.MANUAL


@pytest.mark.parametrize("typed", [3.66, 29.9, 45.1, 366.0, float("nan")])
def test_an_impossible_reading_is_refused(typed: float) -> None:
    with pytest.raises(ValueError, match="not a body temperature"):
        manual_reading(typed)
