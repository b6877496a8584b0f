"""Body temperature from sensor samples, and readings typed in from a handheld."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_agent.core.reasons import Reason
from gate_agent.core.sensor import SensorSample
from gate_agent.core.temperature import (
    MeasureSettings,
    SkinModel,
    TemperatureReading,
    TemperatureRefusal,
    TemperatureSource,
    manual_reading,
    measure,
)

S = 1_000_000_000
MODEL = SkinModel()
SETTINGS = MeasureSettings()
STARTED = 0
T0 = 120 * S  # two minutes after the sensor started: warmed up


def person(body: float, ambient: float, at_ns: int, model: SkinModel = MODEL) -> SensorSample:
    return SensorSample(model.skin(body, ambient), ambient, at_ns)


def nobody(ambient: float, at_ns: int) -> SensorSample:
    return SensorSample(ambient + 0.3, ambient, at_ns)


def take(samples: list[SensorSample], **changes: object) -> TemperatureReading | TemperatureRefusal:
    settings = MeasureSettings(**changes) if changes else SETTINGS  # type: ignore[arg-type]
    return measure(samples, sensor_started_ns=STARTED, model=MODEL, settings=settings)


@pytest.mark.parametrize("ambient", [10.0, 18.0, 25.0, 32.0])
@pytest.mark.parametrize("body", [36.2, 37.3, 38.5])
def test_the_model_recovers_body_temperature_in_any_operating_air(
    body: float, ambient: float
) -> None:
    samples = [person(body, ambient, T0 + i * S // 10) for i in range(8)]
    reading = take(samples)
    assert isinstance(reading, TemperatureReading)
    assert reading.estimate_celsius == pytest.approx(body, abs=0.01)
    assert reading.source is TemperatureSource.SENSOR
    assert reading.ambient_celsius == ambient
    assert reading.model_version == "skin-ambient-v1/k=0.100"
    assert len(reading.raw_celsius) == 8


def test_the_median_ignores_a_wild_sample() -> None:
    samples = [person(36.6, 22.0, T0 + i * S // 10) for i in range(7)]
    samples[3] = SensorSample(80.0, 22.0, samples[3].monotonic_ns)  # a hot cup in view
    reading = take(samples)
    assert isinstance(reading, TemperatureReading)
    assert reading.estimate_celsius == pytest.approx(36.6, abs=0.01)


def test_only_the_last_second_counts() -> None:
    old = [person(39.0, 22.0, T0 + i * S // 10) for i in range(10)]
    new = [person(36.6, 22.0, T0 + 3 * S + i * S // 10) for i in range(4)]
    reading = take(old + new)
    assert isinstance(reading, TemperatureReading)
    assert reading.estimate_celsius == pytest.approx(36.6, abs=0.01)
    assert len(reading.raw_celsius) == 4


def test_the_previous_person_in_the_queue_is_not_counted() -> None:
    previous = [person(36.4, 22.0, T0 + i * S // 10) for i in range(4)]
    gap = [nobody(22.0, T0 + 4 * S // 10)]
    current = [person(38.4, 22.0, T0 + 5 * S // 10 + i * S // 10) for i in range(3)]
    reading = take(previous + gap + current)
    assert isinstance(reading, TemperatureReading)
    assert reading.estimate_celsius == pytest.approx(38.4, abs=0.01)
    assert take(previous + gap + current[:2]) == TemperatureRefusal(
        Reason.NO_PERSON_AT_SENSOR, "2 of 3 samples saw a person"
    )


def test_samples_without_a_person_do_not_count() -> None:
    samples = [nobody(22.0, T0 + i * S // 10) for i in range(6)]
    samples += [person(36.6, 22.0, T0 + 7 * S // 10 + i * S // 20) for i in range(2)]
    refusal = take(samples)
    assert refusal == TemperatureRefusal(Reason.NO_PERSON_AT_SENSOR, "2 of 3 samples saw a person")
    assert take([]) == TemperatureRefusal(Reason.NO_PERSON_AT_SENSOR, "no samples")


def test_a_warming_sensor_refuses_to_screen() -> None:
    samples = [person(36.6, 22.0, 10 * S + i * S // 10) for i in range(5)]
    refusal = take(samples)
    assert isinstance(refusal, TemperatureRefusal)
    assert refusal.reason is Reason.SENSOR_WARMING_UP
    assert refusal.detail == "50 s to go"


@pytest.mark.parametrize("ambient", [-8.0, 9.9, 32.1])
def test_air_outside_the_operating_range_refuses_to_screen(ambient: float) -> None:
    samples = [person(36.6, ambient, T0 + i * S // 10) for i in range(5)]
    refusal = take(samples)
    assert isinstance(refusal, TemperatureRefusal)
    assert refusal.reason is Reason.AMBIENT_OUT_OF_RANGE
    assert "screening works from 10 to 32 °C" in refusal.detail


def test_the_operating_range_is_a_setting() -> None:
    samples = [person(36.6, -8.0, T0 + i * S // 10) for i in range(5)]
    reading = take(samples, ambient_range_celsius=(-15.0, 32.0))
    assert isinstance(reading, TemperatureReading)


@pytest.mark.parametrize(
    "changes",
    [{"window_ns": 2 * S}, {"window_ns": 0}, {"min_samples": 0}, {"ambient_range_celsius": (5, 5)}],
)
def test_settings_are_checked(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MeasureSettings(**changes)  # type: ignore[arg-type]


@given(st.floats(30.0, 43.0), st.floats(10.0, 40.0), st.floats(0.0, 0.45, exclude_max=True))
def test_skin_and_body_invert_each_other(body: float, ambient: float, k: float) -> None:
    model = SkinModel(k=k)
    assert model.body(model.skin(body, ambient), ambient) == pytest.approx(body, abs=1e-9)


def test_model_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        SkinModel(k=0.6)


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
