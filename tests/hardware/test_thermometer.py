"""The MLX90614 driver through the fake SMBus, byte for byte, and the simulated thermometer."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from smbus2 import i2c_msg

from gate_agent.core.sensor import SensorSample
from gate_agent.core.temperature import SkinModel
from gate_agent.errors import DeviceError
from gate_agent.hardware.fake_smbus import FakeSMBus, Message
from gate_agent.hardware.thermometer import (
    MLX90614,
    SimulatedThermometer,
    Thermometer,
    celsius_from_raw,
    pec,
    raw_from_celsius,
)


def bitwise_crc8(data: bytes) -> int:
    """CRC-8 over x^8+x^2+x+1, written bit by bit, independent of the driver's table."""
    crc = 0
    for byte in data:
        for bit in range(7, -1, -1):
            feedback = ((crc >> 7) ^ (byte >> bit)) & 1
            crc = (crc << 1) & 0xFF
            if feedback:
                crc ^= 0x07
    return crc


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def bus() -> FakeSMBus:
    return FakeSMBus(object_celsius=36.0, ambient_celsius=24.0)


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def sensor(bus: FakeSMBus, pauses: list[float]) -> MLX90614:
    return MLX90614(bus, sleep=pauses.append, monotonic_ns=Clock())


# PEC ---------------------------------------------------------------------------------------


def test_datasheet_vector_pec() -> None:
    frame = bytes.fromhex("B407B5D23A")
    assert pec(frame) == 0x30
    assert bitwise_crc8(frame) == 0x30


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"", 0x00),
        (b"\x01", 0x07),  # one bit through the polynomial, by hand
        (b"\x80", 0x89),  # 0x80 -> 0x07 after a shift, then 7 more: 0x89
        (b"123456789", 0xF4),  # the catalogue check value of CRC-8/SMBUS
        (bytes.fromhex("B406B5"), None),
        (bytes.fromhex("B407B5FFFF"), None),
        (bytes(range(256)), None),
    ],
)
def test_table_pec_matches_bitwise(frame: bytes, expected: int | None) -> None:
    assert pec(frame) == bitwise_crc8(frame)
    if expected is not None:
        assert pec(frame) == expected


# Reading through the fake bus ----------------------------------------------------------------


def test_datasheet_vector_reads_28_01(bus: FakeSMBus, sensor: MLX90614) -> None:
    bus.ram[0x07] = 0x3AD2
    assert sensor.read_register(0x07) == 28.01
    write, read = bus.transactions[-1]
    assert write == Message(0x5A, read=False, data=b"\x07")
    assert read == Message(0x5A, read=True, data=bytes.fromhex("D23A30"))


def test_read_sends_ambient_then_object_as_write_then_read_of_three(
    bus: FakeSMBus, sensor: MLX90614
) -> None:
    sample = sensor.read()
    assert sample == SensorSample(36.01, 24.01, 1_000_000_000)
    assert [(w.data, len(r.data)) for w, r in bus.transactions] == [(b"\x06", 3), (b"\x07", 3)]
    assert all(not w.read and r.read for w, r in bus.transactions)
    assert sensor.errors_total == 0


def test_negative_temperatures_encode_and_decode(bus: FakeSMBus, sensor: MLX90614) -> None:
    # A Beijing winter gate: −10 °C air, a cold coat sleeve in front.
    bus.set_ambient(-10.0)
    bus.set_object(-3.5)
    sample = sensor.read()
    assert sample.ambient_celsius == pytest.approx(-10.0, abs=0.011)
    assert sample.object_celsius == pytest.approx(-3.5, abs=0.011)
    assert celsius_from_raw(raw_from_celsius(-40.0)) == pytest.approx(-40.0, abs=0.011)
    assert celsius_from_raw(0x3AD2) == 28.01
    with pytest.raises(ValueError, match="15-bit"):
        raw_from_celsius(-300.0)


def test_configurable_address_goes_into_the_frame_and_the_pec() -> None:
    bus = FakeSMBus(0x5B, object_celsius=30.0)
    sensor = MLX90614(bus, 0x5B, sleep=lambda _: None)
    assert sensor.read_register(0x07) == pytest.approx(30.0, abs=0.011)
    _, read = bus.transactions[-1]
    low, high, code = read.data
    assert code == bitwise_crc8(bytes((0x5B << 1, 0x07, 0x5B << 1 | 1, low, high)))


def test_wrong_address_is_a_bus_error() -> None:
    sensor = MLX90614(FakeSMBus(0x5A), 0x5B, attempts=1, sleep=lambda _: None)
    with pytest.raises(DeviceError, match="0x5b") as caught:
        sensor.read()
    assert caught.value.errno == errno.EREMOTEIO


def test_fake_answers_real_i2c_msgs_byte_for_byte(bus: FakeSMBus) -> None:
    bus.ram[0x07] = 0x3AD2
    write, read = i2c_msg.write(0x5A, [0x07]), i2c_msg.read(0x5A, 4)
    bus.i2c_rdwr(write, read)
    assert bytes(read) == bytes.fromhex("D23A30FF")  # an idle line after the PEC
    with pytest.raises(OSError, match="write then a read"):
        bus.i2c_rdwr(read)


# Bad reads and retries ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, 2])
def test_retries_recover_from_corrupt_reads(
    bus: FakeSMBus, sensor: MLX90614, pauses: list[float], bad: int
) -> None:
    bus.corrupt_next(bad)
    assert sensor.read_register(0x07) == pytest.approx(36.0, abs=0.011)
    assert sensor.errors_total == bad
    assert pauses == [0.005] * bad
    assert len(bus.transactions) == bad + 1
    assert sensor.last_problem is not None
    assert sensor.last_problem.startswith("bad PEC")


def test_gives_up_after_the_attempts_naming_pec_register_and_address(
    bus: FakeSMBus, sensor: MLX90614, pauses: list[float]
) -> None:
    bus.corrupt_next(3)
    with pytest.raises(DeviceError) as caught:
        sensor.read_register(0x07)
    message = str(caught.value)
    expected = bitwise_crc8(
        bytes((0xB4, 0x07, 0xB5, *raw_from_celsius(36.0).to_bytes(2, "little")))
    )
    assert f"bad PEC: got {expected ^ 0xFF:#04x}, expected {expected:#04x}" in message
    assert "register 0x07 (object)" in message
    assert "0x5a" in message
    assert "after 3 attempts" in message
    assert caught.value.errno is None
    assert sensor.errors_total == 3
    assert len(pauses) == 2  # no pause after the last attempt


def test_attempts_are_configurable(bus: FakeSMBus) -> None:
    sensor = MLX90614(bus, attempts=5, sleep=lambda _: None)
    bus.corrupt_next(4)
    assert sensor.read_register(0x06) == pytest.approx(24.0, abs=0.011)
    with pytest.raises(ValueError, match="attempts"):
        MLX90614(bus, attempts=0)
    with pytest.raises(ValueError, match="0x80"):
        MLX90614(bus, 0x80)


def test_error_flag_is_a_bad_read(bus: FakeSMBus, sensor: MLX90614) -> None:
    bus.error_flag_next(1)
    assert sensor.read_register(0x07) == pytest.approx(36.0, abs=0.011)
    assert sensor.last_problem is not None
    assert "error flag" in sensor.last_problem
    bus.error_flag_next(3)
    with pytest.raises(DeviceError, match="error flag"):
        sensor.read_register(0x07)
    # The PEC of a flagged word was right: only the flag made it bad.
    _, read = bus.transactions[-1]
    low, high, code = read.data
    assert high & 0x80
    assert code == bitwise_crc8(bytes((0xB4, 0x07, 0xB5, low, high)))


def test_implausible_object_is_a_bad_read(bus: FakeSMBus, sensor: MLX90614) -> None:
    bus.set_object(381.0)
    with pytest.raises(DeviceError, match=r"implausible 381\.01 °C"):
        sensor.read()
    bus.set_object(-75.0)
    with pytest.raises(DeviceError, match="implausible"):
        sensor.read_register(0x07)
    bus.set_object(-69.0)
    assert sensor.read_register(0x07) == pytest.approx(-69.0, abs=0.011)


def test_os_error_is_retried_then_translated(bus: FakeSMBus, sensor: MLX90614) -> None:
    bus.fail_next(2, errno.EIO)
    assert sensor.read_register(0x07) == pytest.approx(36.0, abs=0.011)
    bus.fail_next(3, errno.EIO)
    with pytest.raises(DeviceError, match=r"bus error errno 5 \(EIO") as caught:
        sensor.read_register(0x06)
    assert caught.value.errno == errno.EIO
    assert isinstance(caught.value.__cause__, OSError)
    assert not isinstance(caught.value.__cause__, DeviceError)


def test_unplug_and_plug(bus: FakeSMBus, sensor: MLX90614) -> None:
    bus.unplug()
    for _ in range(2):
        with pytest.raises(DeviceError, match="EREMOTEIO") as caught:
            sensor.read()
        assert caught.value.errno == errno.EREMOTEIO
    assert sensor.errors_total == 6
    assert bus.transactions == []
    bus.unplug(errno.ENXIO)
    with pytest.raises(DeviceError, match="ENXIO"):
        sensor.read()
    bus.plug()
    assert sensor.read().object_celsius == pytest.approx(36.0, abs=0.011)


# Resources ----------------------------------------------------------------------------------


def test_close_closes_the_bus_and_later_reads_fail(bus: FakeSMBus) -> None:
    with MLX90614(bus, sleep=lambda _: None) as sensor:
        sensor.read()
    assert bus.closed
    with pytest.raises(DeviceError, match="closed"):
        sensor.read()
    sensor.close()  # twice is harmless
    with pytest.raises(OSError, match="closed"):
        bus.i2c_rdwr(i2c_msg.write(0x5A, [7]), i2c_msg.read(0x5A, 3))


def test_open_a_missing_bus_is_a_device_error() -> None:
    number = 97
    assert not Path(f"/dev/i2c-{number}").exists()
    with pytest.raises(DeviceError, match=r"I2C bus 97 \(/dev/i2c-97\).*0x5a") as caught:
        MLX90614.open(number)
    assert caught.value.errno == errno.ENOENT
    assert isinstance(caught.value.__cause__, FileNotFoundError)


# The simulated thermometer -------------------------------------------------------------------


def test_skin_model_formula_and_its_inverse() -> None:
    assert SkinModel().skin(37.0, 25.0) == pytest.approx(35.8)
    assert SkinModel().skin(37.0, -10.0) == pytest.approx(32.3)
    assert SkinModel().skin(37.0, 37.0) == pytest.approx(37.0)
    skin = SkinModel(k=0.15).skin(38.4, 5.0)
    assert (skin - 0.15 * 5.0) / (1 - 0.15) == pytest.approx(38.4)


def test_simulator_verbs() -> None:
    clock = Clock()
    sim = SimulatedThermometer(ambient_celsius=20.0, monotonic_ns=clock)
    port: Thermometer = sim
    assert port.read() == SensorSample(20.0, 20.0, 1_000_000_000)  # nobody: the background
    sim.set(37.9)
    clock.ns += 5
    assert sim.read() == SensorSample(round(37.9 - 0.1 * 17.9, 2), 20.0, 1_000_000_005)
    sim.set_ambient(-10.0)  # the skin follows the cold air
    assert sim.read().object_celsius == pytest.approx(SkinModel().skin(37.9, -10.0), abs=0.005)
    sim.set_object(33.3)
    assert sim.read().object_celsius == 33.3
    with pytest.raises(ValueError, match="range"):
        sim.set_object(400.0)
    sim.clear()
    assert sim.read().object_celsius == -10.0


def test_simulator_failures() -> None:
    sim = SimulatedThermometer()
    sim.fail(2)
    for _ in range(2):
        with pytest.raises(DeviceError):
            sim.read()
    sim.read()
    sim.unplug()
    for _ in range(3):
        with pytest.raises(DeviceError, match="unplugged"):
            sim.read()
    sim.plug()
    sim.read()
    assert (sim.reads_total, sim.errors_total) == (7, 5)
    with sim:
        pass
    with pytest.raises(DeviceError, match="closed"):
        sim.read()


def test_simulator_noise_is_small_and_deterministic() -> None:
    def readings(seed: int) -> list[float]:
        sim = SimulatedThermometer(noise_celsius=0.2, seed=seed, monotonic_ns=Clock())
        sim.set(37.0)
        return [sim.read().object_celsius for _ in range(50)]

    first = readings(7)
    assert first == readings(7)
    assert first != readings(8)
    assert len(set(first)) > 10
    assert all(abs(value - 35.8) < 1.0 for value in first)
    median = sorted(first)[len(first) // 2]
    assert median == pytest.approx(35.8, abs=0.1)
