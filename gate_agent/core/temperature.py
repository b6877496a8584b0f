"""Body temperature from an IR sensor's samples, or from a guard's handheld thermometer.

An IR thermometer sees skin, which is cooler than the body, and cooler still in
cold air. ``measure`` keeps the samples taken while a person is in front of the
sensor within the last second, takes their median, and turns skin into body
temperature with a versioned model. It refuses, with a reason, to screen while
the sensor warms up or when the air around it is outside its operating range:
a wrong number is worse than asking the guard to use the handheld.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gate_agent.core.reasons import Reason
from gate_agent.core.sensor import SensorSample

#: A body temperature outside this range is a typing or sensor error, not a person.
MANUAL_RANGE_CELSIUS = (30.0, 45.0)
_NS = 1_000_000_000


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


@dataclass(frozen=True)
class TemperatureRefusal:
    """Why no temperature could be taken: a reason code and a detail for the guard and logs."""

    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class SkinModel:
    """Skin to body temperature: skin = body − k·(body − ambient).

    So body = (skin − k·ambient) / (1 − k). Heat flows from the body through the
    skin to the air; the colder the air, the further skin falls below the body.
    ``k`` is calibrated on site against a clinical thermometer; the version and
    ``k`` go into every entry.
    """

    k: float = 0.10
    version: str = "skin-ambient-v1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.k < 0.5:
            raise ValueError(f"k must be in [0, 0.5), got {self.k}")

    @property
    def tag(self) -> str:
        """The version and parameter, as stored with each reading."""
        return f"{self.version}/k={self.k:.3f}"

    def body(self, skin_celsius: float, ambient_celsius: float) -> float:
        """The body temperature behind a skin reading in this air."""
        return (skin_celsius - self.k * ambient_celsius) / (1.0 - self.k)

    def skin(self, body_celsius: float, ambient_celsius: float) -> float:
        """The skin temperature a body shows in this air (the inverse, for simulation)."""
        return body_celsius - self.k * (body_celsius - ambient_celsius)


@dataclass(frozen=True)
class MeasureSettings:
    """How samples become a reading."""

    window_ns: int = _NS  # samples older than this (before the newest) are ignored
    min_samples: int = 3
    #: A sample counts as a person when the object is this much warmer than the air.
    presence_delta_celsius: float = 1.0
    warmup_ns: int = 60 * _NS  # the sensor's own temperature settles after power-on
    #: Below 10 °C skin is too cold to read reliably; above 32 °C skin and air are too close
    #: to tell a forehead from the background. Outside, the guard uses the handheld.
    ambient_range_celsius: tuple[float, float] = (10.0, 32.0)

    def __post_init__(self) -> None:
        if not 0 < self.window_ns <= _NS:
            raise ValueError("the sampling window is at most 1 s")
        if self.min_samples < 1:
            raise ValueError("min_samples must be at least 1")
        low, high = self.ambient_range_celsius
        if not low < high:
            raise ValueError("ambient range must be (low, high) with low < high")


def measure(
    samples: Sequence[SensorSample],
    *,
    sensor_started_ns: int,
    model: SkinModel,
    settings: MeasureSettings,
) -> TemperatureReading | TemperatureRefusal:
    """A body-temperature reading from the samples taken for one person, or why not."""
    if not samples:
        return TemperatureRefusal(Reason.NO_PERSON_AT_SENSOR, "no samples")
    newest = max(s.monotonic_ns for s in samples)
    if newest - sensor_started_ns < settings.warmup_ns:
        left = (settings.warmup_ns - (newest - sensor_started_ns)) / _NS
        return TemperatureRefusal(Reason.SENSOR_WARMING_UP, f"{left:.0f} s to go")
    recent = [s for s in samples if newest - s.monotonic_ns <= settings.window_ns]
    ambient = statistics.median(s.ambient_celsius for s in recent)
    low, high = settings.ambient_range_celsius
    if not low <= ambient <= high:
        return TemperatureRefusal(
            Reason.AMBIENT_OUT_OF_RANGE,
            f"air at the sensor is {ambient:.1f} °C, screening works from {low:g} to {high:g} °C",
        )
    present = _current_person(recent, settings.presence_delta_celsius)
    if len(present) < settings.min_samples:
        return TemperatureRefusal(
            Reason.NO_PERSON_AT_SENSOR,
            f"{len(present)} of {settings.min_samples} samples saw a person",
        )
    skin = statistics.median(s.object_celsius for s in present)
    return TemperatureReading(
        estimate_celsius=round(model.body(skin, ambient), 2),
        source=TemperatureSource.SENSOR,
        raw_celsius=tuple(round(s.object_celsius, 2) for s in present),
        ambient_celsius=round(ambient, 2),
        model_version=model.tag,
    )


def _current_person(samples: Sequence[SensorSample], delta: float) -> list[SensorSample]:
    """The latest unbroken run of samples that see a person.

    A sample that sees only the air means someone stepped away: what came before
    it belongs to the previous person in the queue, not to the one at the gate now.
    """
    run: list[SensorSample] = []
    for sample in sorted(samples, key=lambda s: s.monotonic_ns):
        if sample.object_celsius - sample.ambient_celsius >= delta:
            run.append(sample)
        else:
            run = []
    return run


def manual_reading(celsius: float) -> TemperatureReading:
    """A reading typed in from a handheld thermometer; refuses impossible values."""
    low, high = MANUAL_RANGE_CELSIUS
    if not low <= celsius <= high:
        raise ValueError(f"{celsius} °C is not a body temperature ({low}-{high} °C)")
    return TemperatureReading(round(celsius, 1), TemperatureSource.MANUAL, (celsius,))
