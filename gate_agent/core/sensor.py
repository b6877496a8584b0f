"""One raw reading of the IR thermometer, as the hardware delivers it to the temperature model."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SensorSample"]


@dataclass(frozen=True, slots=True)
class SensorSample:
    """Object (skin) and ambient temperature read together, stamped with the monotonic clock.

    ``object_celsius`` is what the sensor sees in its field of view: the skin of the person in
    front, or the background when nobody is there. It is not a body temperature; turning it
    into one is the job of ``gate_agent.core.temperature``.
    """

    object_celsius: float
    ambient_celsius: float
    monotonic_ns: int
