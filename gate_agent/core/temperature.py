"""Body-temperature readings: what a sensor or a guard's handheld thermometer contributes.

The sampling filter and the skin-to-body model arrive with the live gate; the
reading type is fixed now because the ledger and the policy already speak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: A body temperature outside this range is a typing or sensor error, not a person.
MANUAL_RANGE_CELSIUS = (30.0, 45.0)


class TemperatureSource(StrEnum):
    """Where a reading came from."""

    SENSOR = "sensor"
    MANUAL = "manual"


@dataclass(frozen=True)
class TemperatureReading:
    """A body-temperature estimate with what it was made from."""

    estimate_celsius: float
    source: TemperatureSource
    raw_celsius: tuple[float, ...] = ()
    ambient_celsius: float | None = None
    model_version: str | None = None


def manual_reading(celsius: float) -> TemperatureReading:
    """A reading typed in from a handheld thermometer; refuses impossible values."""
    low, high = MANUAL_RANGE_CELSIUS
    if not low <= celsius <= high:
        raise ValueError(f"{celsius} °C is not a body temperature ({low}-{high} °C)")
    return TemperatureReading(round(celsius, 1), TemperatureSource.MANUAL, (celsius,))
