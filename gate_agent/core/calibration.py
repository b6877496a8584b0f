"""Fitting the skin-to-body model's ``k`` to readings taken beside a clinical thermometer.

The model (``temperature.SkinModel``) says skin = body − k·(body − ambient), so with
a clinical reading ``c`` standing for the body, every pair gives one equation
``c − skin = k·(c − ambient)``: a line through the origin. Least squares gives
``k = Σxy / Σx²`` with ``x = c − ambient`` and ``y = c − skin``, in closed form.

A fit is refused, with a stable code, when it cannot be trusted: too few people,
a pair in which the sensor saw no one (skin not warmer than the air), a clinical
reading that is not a body temperature, or a ``k`` the gate's config would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gate_agent.core.temperature import MANUAL_RANGE_CELSIUS, SkinModel

#: Fewer people than this do not average out how foreheads differ.
MIN_PAIRS = 5
#: The config's range for ``skin_model_k`` (``[thermometer] skin_model_k``): 0 ≤ k < 0.5.
K_RANGE = (0.0, 0.5)
#: Below this Σ(clinical − ambient)² the pairs say nothing about k (body and air alike).
_MIN_SPREAD = 1.0


class CalibrationCode(StrEnum):
    """Why a calibration was refused."""

    TOO_FEW_PAIRS = "too_few_pairs"
    NO_PERSON_SEEN = "no_person_seen"  # a pair's skin reading is not warmer than the air
    BAD_CLINICAL = "bad_clinical"  # a clinical reading outside 30-45 °C
    DEGENERATE = "degenerate"  # the pairs cannot tell k (body at air temperature)
    K_OUT_OF_RANGE = "k_out_of_range"  # the fitted k is outside [0, 0.5)


@dataclass(frozen=True)
class CalibrationPair:
    """One person: the sensor's skin and ambient readings, and the clinical thermometer's."""

    skin_celsius: float
    ambient_celsius: float
    clinical_celsius: float


@dataclass(frozen=True)
class Calibration:
    """A fitted ``k``, with how well the model then matches the clinical readings."""

    k: float
    pairs: int
    #: Each pair's error: the model's body estimate minus the clinical reading, in °C.
    errors_celsius: tuple[float, ...]

    @property
    def mean_error_celsius(self) -> float:
        """The mean signed error (a bias: the model reads high when positive)."""
        return sum(self.errors_celsius) / len(self.errors_celsius)

    @property
    def max_abs_error_celsius(self) -> float:
        """The largest error either way."""
        return max(abs(e) for e in self.errors_celsius)

    @property
    def rms_error_celsius(self) -> float:
        """The root-mean-square error."""
        return math.sqrt(sum(e * e for e in self.errors_celsius) / len(self.errors_celsius))


@dataclass(frozen=True)
class CalibrationRefusal:
    """Why no ``k`` is suggested: a code, a detail for the technician, the fit if one was made."""

    code: CalibrationCode
    detail: str
    k: float | None = None


def fit_skin_model(pairs: Sequence[CalibrationPair]) -> Calibration | CalibrationRefusal:
    """The least-squares ``k`` for these pairs, or why none can be suggested."""
    if len(pairs) < MIN_PAIRS:
        return CalibrationRefusal(
            CalibrationCode.TOO_FEW_PAIRS,
            f"{len(pairs)} people measured; at least {MIN_PAIRS} are needed",
        )
    low, high = MANUAL_RANGE_CELSIUS
    for number, pair in enumerate(pairs, start=1):
        if not low <= pair.clinical_celsius <= high:
            return CalibrationRefusal(
                CalibrationCode.BAD_CLINICAL,
                f"person {number}: clinical {pair.clinical_celsius} °C is not a body"
                f" temperature ({low:g}-{high:g} °C)",
            )
        if pair.skin_celsius <= pair.ambient_celsius:
            return CalibrationRefusal(
                CalibrationCode.NO_PERSON_SEEN,
                f"person {number}: skin {pair.skin_celsius} °C is not warmer than the air"
                f" ({pair.ambient_celsius} °C): the sensor saw no one",
            )
    xs = [p.clinical_celsius - p.ambient_celsius for p in pairs]
    ys = [p.clinical_celsius - p.skin_celsius for p in pairs]
    sxx = sum(x * x for x in xs)
    if sxx < _MIN_SPREAD:
        return CalibrationRefusal(
            CalibrationCode.DEGENERATE,
            "the clinical readings are at the air's temperature: they cannot tell k",
        )
    k = sum(x * y for x, y in zip(xs, ys, strict=True)) / sxx
    k_low, k_high = K_RANGE
    if not k_low <= k < k_high:
        return CalibrationRefusal(
            CalibrationCode.K_OUT_OF_RANGE,
            f"the fit gives k = {k:.3f}, outside the config's range [{k_low:g}, {k_high:g}):"
            " check the sensor's aim and distance, and the clinical readings",
            k=k,
        )
    model = SkinModel(k=k)
    errors = tuple(
        model.body(p.skin_celsius, p.ambient_celsius) - p.clinical_celsius for p in pairs
    )
    return Calibration(k=k, pairs=len(pairs), errors_celsius=errors)
