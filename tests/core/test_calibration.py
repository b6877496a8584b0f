"""Fitting the skin model's k: synthetic pairs from a known k come back to it."""

from __future__ import annotations

import random

import pytest

from gate_agent.core.calibration import (
    Calibration,
    CalibrationCode,
    CalibrationPair,
    CalibrationRefusal,
    fit_skin_model,
)
from gate_agent.core.temperature import SkinModel


def synthetic(k: float, count: int, *, noise: float, seed: int) -> list[CalibrationPair]:
    """People of known body temperature in varied air, as a sensor with this k shows them."""
    draws = random.Random(seed)  # noqa: S311 - test data
    model = SkinModel(k=k)
    pairs = []
    for _ in range(count):
        body = draws.uniform(36.0, 37.6)
        ambient = draws.uniform(12.0, 31.0)
        skin = model.skin(body, ambient) + draws.gauss(0.0, noise)
        # A clinical thermometer shows one decimal.
        pairs.append(CalibrationPair(round(skin, 2), round(ambient, 2), round(body, 1)))
    return pairs


@pytest.mark.parametrize("k", [0.02, 0.1, 0.18, 0.3, 0.45])
def test_a_known_k_is_recovered_from_noisy_pairs(k: float) -> None:
    result = fit_skin_model(synthetic(k, 12, noise=0.1, seed=int(k * 1000)))
    assert isinstance(result, Calibration)
    assert result.k == pytest.approx(k, abs=0.015)
    assert result.pairs == 12
    assert result.max_abs_error_celsius < 0.6
    assert abs(result.mean_error_celsius) < 0.15


def test_exact_pairs_give_k_exactly_and_no_error() -> None:
    model = SkinModel(k=0.23)
    pairs = [
        CalibrationPair(model.skin(body, air), air, body)
        for body, air in [(36.5, 15.0), (36.8, 20.0), (37.1, 25.0), (36.6, 30.0), (36.9, 12.0)]
    ]
    result = fit_skin_model(pairs)
    assert isinstance(result, Calibration)
    assert result.k == pytest.approx(0.23, abs=1e-9)
    assert result.max_abs_error_celsius == pytest.approx(0.0, abs=1e-9)
    assert result.rms_error_celsius == pytest.approx(0.0, abs=1e-9)


def test_the_errors_are_model_minus_clinical() -> None:
    pairs = synthetic(0.12, 8, noise=0.0, seed=1)
    result = fit_skin_model(pairs)
    assert isinstance(result, Calibration)
    model = SkinModel(k=result.k)
    expected = [model.body(p.skin_celsius, p.ambient_celsius) - p.clinical_celsius for p in pairs]
    assert list(result.errors_celsius) == pytest.approx(expected)


def refusal(pairs: list[CalibrationPair]) -> CalibrationRefusal:
    result = fit_skin_model(pairs)
    assert isinstance(result, CalibrationRefusal), result
    return result


def test_fewer_than_five_people_are_refused() -> None:
    assert refusal(synthetic(0.1, 4, noise=0.0, seed=2)).code is CalibrationCode.TOO_FEW_PAIRS
    assert refusal([]).code is CalibrationCode.TOO_FEW_PAIRS


def test_a_sensor_that_saw_only_air_is_refused() -> None:
    pairs = [CalibrationPair(21.0, 21.0, 36.6 + n / 10) for n in range(6)]
    refused = refusal(pairs)
    assert refused.code is CalibrationCode.NO_PERSON_SEEN
    assert "person 1" in refused.detail


def test_clinical_readings_at_the_air_temperature_are_degenerate() -> None:
    pairs = [CalibrationPair(36.9, 36.5, 36.5) for _ in range(6)]
    assert refusal(pairs).code is CalibrationCode.DEGENERATE


def test_a_clinical_reading_that_is_no_body_temperature_is_refused() -> None:
    pairs = synthetic(0.1, 6, noise=0.0, seed=3)
    pairs[4] = CalibrationPair(pairs[4].skin_celsius, pairs[4].ambient_celsius, 367.0)
    refused = refusal(pairs)
    assert refused.code is CalibrationCode.BAD_CLINICAL
    assert "person 5" in refused.detail


@pytest.mark.parametrize("k", [0.6, 0.8])
def test_a_k_outside_the_config_range_is_not_suggested(k: float) -> None:
    draws = random.Random(4)  # noqa: S311 - test data
    pairs = []
    for _ in range(6):
        body, air = draws.uniform(36.2, 37.2), draws.uniform(10.0, 20.0)
        pairs.append(CalibrationPair(body - k * (body - air), air, body))
    refused = refusal(pairs)
    assert refused.code is CalibrationCode.K_OUT_OF_RANGE
    assert refused.k == pytest.approx(k)


def test_skin_warmer_than_the_clinical_reading_gives_a_negative_k_refused() -> None:
    pairs = [CalibrationPair(37.5, 20.0 + n, 36.5) for n in range(6)]
    refused = refusal(pairs)
    assert refused.code is CalibrationCode.K_OUT_OF_RANGE
    assert refused.k is not None and refused.k < 0
