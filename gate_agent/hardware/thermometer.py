"""The IR thermometer port, our MLX90614 driver on smbus2, and a simulated thermometer with verbs.

Wiring assumed (the firmware config comes later): an MLX90614 on the Pi's I2C bus 1
(GPIO2 = SDA, GPIO3 = SCL, 3.3 V), at its factory address 0x5A, in SMBus mode (not PWM),
with the bus clock at 100 kHz or lower: the sensor is an SMBus device, and the Pi's
I2C controller mishandles clock stretching, which corrupts reads now and then. So every
read carries a PEC that we check, and a bad read is retried a bounded number of times.

A read is one combined transaction with a repeated start:
``[S] addr+W, command, [Sr] addr+R, low, high, PEC [P]``; the RAM registers are 0x06
(ambient) and 0x07 (object 1), °C = raw × 0.02 − 273.15, bit 15 set means an error.
"""

from __future__ import annotations

import errno as errno_codes
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from ctypes import string_at
from types import TracebackType
from typing import Protocol, Self

from smbus2 import SMBus, i2c_msg

from gate_agent.core.sensor import SensorSample
from gate_agent.core.temperature import SkinModel
from gate_agent.errors import DeviceError

__all__ = [
    "AMBIENT_RANGE_CELSIUS",
    "DEFAULT_ADDRESS",
    "ERROR_FLAG",
    "MLX90614",
    "OBJECT_RANGE_CELSIUS",
    "REGISTER_AMBIENT",
    "REGISTER_OBJECT",
    "I2cBus",
    "SimulatedThermometer",
    "Thermometer",
    "celsius_from_raw",
    "pec",
    "raw_from_celsius",
]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x5A
REGISTER_AMBIENT = 0x06
REGISTER_OBJECT = 0x07
ERROR_FLAG = 0x8000
#: The datasheet's measurement ranges; a reading outside them is a bad read, not a temperature.
OBJECT_RANGE_CELSIUS = (-70.0, 380.0)
AMBIENT_RANGE_CELSIUS = (-40.0, 125.0)
_REGISTERS = {
    REGISTER_AMBIENT: ("ambient", AMBIENT_RANGE_CELSIUS),
    REGISTER_OBJECT: ("object", OBJECT_RANGE_CELSIUS),
}
_KELVIN_OFFSET = 273.15
_KELVIN_PER_LSB = 0.02


def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) if crc & 0x80 else crc << 1
        table.append(crc & 0xFF)
    return tuple(table)


_CRC8 = _crc8_table()


def pec(data: Iterable[int]) -> int:
    """SMBus packet error code: CRC-8, polynomial x^8+x^2+x+1 (0x07), initial value 0."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ (byte & 0xFF)]
    return crc


def celsius_from_raw(raw: int) -> float:
    """Degrees Celsius from a 15-bit RAM temperature word (0.02 K per step), to 0.01 °C."""
    return round(raw * _KELVIN_PER_LSB - _KELVIN_OFFSET, 2)


def raw_from_celsius(celsius: float) -> int:
    """The RAM word nearest ``celsius``; whole degrees fall halfway and round up (+0.01 °C)."""
    # Round the float noise off first so the halves go up every time, not by luck.
    raw = math.floor(round((celsius + _KELVIN_OFFSET) / _KELVIN_PER_LSB, 6) + 0.5)
    if not 0 <= raw < ERROR_FLAG:
        raise ValueError(f"{celsius} °C does not fit the sensor's 15-bit temperature word")
    return raw


class Thermometer(Protocol):
    """The port the station reads temperatures through."""

    def read(self) -> SensorSample:
        """One object + ambient reading; raises ``DeviceError`` when the sensor cannot answer."""
        ...

    def close(self) -> None:
        """Release the device."""
        ...


class I2cBus(Protocol):
    """What the driver needs of a bus: combined transactions (``smbus2.SMBus`` or a fake)."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run the messages as one transaction with repeated starts."""
        ...

    def close(self) -> None:
        """Release the bus."""
        ...


class MLX90614:
    """Melexis MLX90614 over SMBus: PEC-checked reads, bounded retries, errors counted.

    Each register is tried at most ``attempts`` times (a wrong PEC, the error flag, a bus
    error or an implausible value each cost one), pausing ``retry_pause_seconds`` through the
    injected ``sleep`` in between. The driver owns the bus it is given and closes it.
    """

    def __init__(
        self,
        bus: I2cBus,
        address: int = DEFAULT_ADDRESS,
        *,
        attempts: int = 3,
        retry_pause_seconds: float = 0.005,
        sleep: Callable[[float], None] = time.sleep,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address {address:#04x} is outside 0x03-0x77")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.address = address
        self.attempts = attempts
        self._bus: I2cBus | None = bus
        self._pause = retry_pause_seconds
        self._sleep = sleep
        self._monotonic_ns = monotonic_ns
        #: Every failed read, including those a retry recovered from (for metrics).
        self.errors_total = 0
        #: The last problem seen, e.g. "bad PEC: got 0xcf, expected 0x30".
        self.last_problem: str | None = None

    @classmethod
    def open(
        cls,
        bus_number: int = 1,
        address: int = DEFAULT_ADDRESS,
        *,
        attempts: int = 3,
        retry_pause_seconds: float = 0.005,
        sleep: Callable[[float], None] = time.sleep,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> Self:
        """Open ``/dev/i2c-<bus_number>`` with smbus2 and drive the sensor at ``address``."""
        try:
            bus = SMBus(bus_number)
        except OSError as exc:
            raise DeviceError(
                exc.errno,
                f"I2C bus {bus_number} (/dev/i2c-{bus_number}) cannot be opened for the "
                f"MLX90614 at {address:#04x}: {exc.strerror or exc}; is I2C enabled "
                "(dtparam=i2c_arm=on) and may this user open it (group i2c)?",
            ) from exc
        try:
            return cls(
                bus,
                address,
                attempts=attempts,
                retry_pause_seconds=retry_pause_seconds,
                sleep=sleep,
                monotonic_ns=monotonic_ns,
            )
        except BaseException:
            bus.close()
            raise

    def read(self) -> SensorSample:
        """Ambient then object temperature, each PEC-checked and retried on a bad read."""
        ambient = self.read_register(REGISTER_AMBIENT)
        obj = self.read_register(REGISTER_OBJECT)
        return SensorSample(obj, ambient, self._monotonic_ns())

    def read_register(self, command: int) -> float:
        """One RAM temperature register in °C; raises ``DeviceError`` after ``attempts`` tries."""
        name, (low, high) = _REGISTERS[command]
        if self._bus is None:
            raise DeviceError(f"MLX90614 at {self.address:#04x} is closed")
        cause: OSError | None = None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self._sleep(self._pause)
            cause = None
            try:
                word = self._read_word(self._bus, command)
            except OSError as exc:
                cause = exc
                problem = _describe_bus_error(exc)
            except _BadRead as exc:
                problem = str(exc)
            else:
                celsius = celsius_from_raw(word)
                if low <= celsius <= high:
                    return celsius
                problem = f"implausible {celsius} °C (sensor range {low}…{high} °C)"
            self.errors_total += 1
            self.last_problem = problem
            log.debug(
                "MLX90614 %#04x register %#04x (%s) attempt %d/%d: %s",
                self.address, command, name, attempt, self.attempts, problem,
            )  # fmt: skip
        message = (
            f"MLX90614 at {self.address:#04x}: register {command:#04x} ({name}) unreadable "
            f"after {self.attempts} attempts: {self.last_problem}"
        )
        log.warning("%s", message)
        if cause is not None:
            # Keep the bus's errno so a caller can tell an absent sensor from a noisy one.
            raise DeviceError(cause.errno, message) from cause
        raise DeviceError(message)

    def _read_word(self, bus: I2cBus, command: int) -> int:
        write = i2c_msg.write(self.address, [command])
        read = i2c_msg.read(self.address, 3)
        bus.i2c_rdwr(write, read)
        low, high, got = string_at(read.buf, read.len)
        frame = (self.address << 1, command, (self.address << 1) | 1, low, high)
        expected = pec(frame)
        if got != expected:
            raise _BadRead(f"bad PEC: got {got:#04x}, expected {expected:#04x}")
        word = low | high << 8
        if word & ERROR_FLAG:
            raise _BadRead(f"error flag set by the sensor (word {word:#06x})")
        return word

    def close(self) -> None:
        """Close the bus; reads afterwards raise ``DeviceError``."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _describe_bus_error(exc: OSError) -> str:
    if exc.errno is None:
        return f"bus error: {exc}"
    code = errno_codes.errorcode.get(exc.errno, "?")
    return f"bus error errno {exc.errno} ({code}: {os.strerror(exc.errno)})"


class _BadRead(Exception):
    """A transaction that completed but carried a wrong PEC or the sensor's error flag."""


class SimulatedThermometer:
    """A thermometer you can ``set(37.9)``: for the demo and the tests, same port as the sensor."""

    def __init__(
        self,
        *,
        ambient_celsius: float = 25.0,
        noise_celsius: float = 0.0,
        seed: int = 0,
        model: SkinModel | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.ambient_celsius = ambient_celsius
        self.noise_celsius = noise_celsius
        # The same skin model the station inverts, so a simulated person reads true.
        self.model = model or SkinModel()
        self._random = random.Random(seed)  # noqa: S311 - simulated noise, not secrets
        self._monotonic_ns = monotonic_ns
        self._body: float | None = None
        self._object: float | None = None
        self._failures = 0
        self._unplugged = False
        self._closed = False
        self.reads_total = 0
        self.errors_total = 0

    def set(self, body_celsius: float) -> None:
        """A person with this body temperature stands in front; reads show their skin."""
        self._body, self._object = body_celsius, None

    def set_object(self, celsius: float) -> None:
        """Read exactly this object temperature (plus noise), bypassing the skin model."""
        low, high = OBJECT_RANGE_CELSIUS
        if not low <= celsius <= high:
            raise ValueError(f"{celsius} °C is outside the sensor's range {low}…{high} °C")
        self._body, self._object = None, celsius

    def clear(self) -> None:
        """Nobody in front: the sensor sees the background, at ambient temperature."""
        self._body = self._object = None

    def set_ambient(self, celsius: float) -> None:
        """Change the air temperature (a person's skin follows it through the model)."""
        self.ambient_celsius = celsius

    def fail(self, n: int = 1) -> None:
        """The next ``n`` reads raise ``DeviceError`` as a sensor out of retries would."""
        self._failures += n

    def unplug(self) -> None:
        """Every read fails until ``plug()``."""
        self._unplugged = True

    def plug(self) -> None:
        """Reads work again."""
        self._unplugged = False

    @property
    def object_celsius(self) -> float:
        """The noiseless object temperature the next read is centred on."""
        if self._object is not None:
            return self._object
        if self._body is not None:
            return self.model.skin(self._body, self.ambient_celsius)
        return self.ambient_celsius

    def read(self) -> SensorSample:
        """One sample: the object with the seeded noise, and the ambient, to 0.01 °C."""
        if self._closed:
            raise DeviceError("simulated thermometer is closed")
        self.reads_total += 1
        problem = None
        if self._unplugged:
            problem = "unplugged"
        elif self._failures:
            self._failures -= 1
            problem = "failing on request"
        if problem is not None:
            self.errors_total += 1
            raise DeviceError(errno_codes.EREMOTEIO, f"simulated thermometer {problem}")
        # Noise on the object only: the ambient reading is the sensor die's, and steady.
        noise = self._random.gauss(0.0, self.noise_celsius) if self.noise_celsius else 0.0
        obj = round(self.object_celsius + noise, 2)
        return SensorSample(obj, round(self.ambient_celsius, 2), self._monotonic_ns())

    def close(self) -> None:
        """Reads afterwards raise ``DeviceError``."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
