"""A fake SMBus holding an MLX90614's RAM that answers real ``smbus2.i2c_msg`` reads byte for byte.

It stands in for ``smbus2.SMBus`` at the port (``i2c_rdwr`` and ``close``), so the real driver
runs unchanged on it; its verbs put a person in front, corrupt reads, raise bus errors or pull
the sensor off the bus, and it records every transaction so tests can assert the exact bytes.
"""

from __future__ import annotations

import errno
from ctypes import memmove, string_at
from dataclasses import dataclass

from smbus2 import i2c_msg

from gate_agent.hardware.thermometer import (
    DEFAULT_ADDRESS,
    ERROR_FLAG,
    REGISTER_AMBIENT,
    REGISTER_OBJECT,
    pec,
    raw_from_celsius,
)

__all__ = ["FakeSMBus", "Message"]

_I2C_M_RD = 0x0001  # the read flag of struct i2c_msg (linux/i2c.h)


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a transaction as it crossed the bus: bytes written, or bytes answered."""

    address: int
    read: bool
    data: bytes


class FakeSMBus:
    """An I2C bus with one MLX90614 on it; RAM words are raw, as the sensor holds them."""

    def __init__(
        self,
        address: int = DEFAULT_ADDRESS,
        *,
        object_celsius: float = 25.0,
        ambient_celsius: float = 25.0,
    ) -> None:
        self.address = address
        self.ram: dict[int, int] = {
            REGISTER_AMBIENT: raw_from_celsius(ambient_celsius),
            REGISTER_OBJECT: raw_from_celsius(object_celsius),
        }
        #: Every ``i2c_rdwr`` call that reached the sensor, one tuple of messages each.
        self.transactions: list[tuple[Message, ...]] = []
        self.closed = False
        self._corrupt = 0
        self._error_flag = 0
        self._fail = 0
        self._fail_errno = errno.EIO
        self._unplugged_errno: int | None = None

    # Verbs -------------------------------------------------------------------------------

    def set_object(self, celsius: float) -> None:
        """What the sensor sees in front of it (register 0x07)."""
        self.ram[REGISTER_OBJECT] = raw_from_celsius(celsius)

    def set_ambient(self, celsius: float) -> None:
        """The sensor's own (air) temperature (register 0x06)."""
        self.ram[REGISTER_AMBIENT] = raw_from_celsius(celsius)

    def corrupt_next(self, n: int = 1) -> None:
        """The next ``n`` reads answer with a wrong PEC, as a clock-stretching glitch would."""
        self._corrupt += n

    def error_flag_next(self, n: int = 1) -> None:
        """The next ``n`` reads answer with bit 15 (the sensor's error flag) set, PEC correct."""
        self._error_flag += n

    def fail_next(self, n: int = 1, errno_code: int = errno.EIO) -> None:
        """The next ``n`` transactions raise ``OSError(errno_code)``, as a NACK or EIO does."""
        self._fail += n
        self._fail_errno = errno_code

    def unplug(self, errno_code: int = errno.EREMOTEIO) -> None:
        """Nobody answers at the address: every transaction raises until ``plug()``.

        The Pi's i2c-bcm2835 reports an address NACK as EREMOTEIO; other adapters say ENXIO.
        """
        self._unplugged_errno = errno_code

    def plug(self) -> None:
        """The sensor is back on the bus."""
        self._unplugged_errno = None

    # The port ----------------------------------------------------------------------------

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Answer a ``write(addr, [command])`` + ``read(addr, n)`` pair with low, high, PEC."""
        if self.closed:
            raise OSError(errno.EBADF, "fake I2C bus is closed")
        if len(i2c_msgs) != 2 or i2c_msgs[0].flags & _I2C_M_RD or not i2c_msgs[1].flags & _I2C_M_RD:
            raise OSError(errno.EINVAL, "expected a write then a read (repeated start)")
        write, read = i2c_msgs
        if self._unplugged_errno is not None or write.addr != self.address:
            code = self._unplugged_errno or errno.EREMOTEIO
            raise OSError(code, f"no answer at {write.addr:#04x}")
        if self._fail:
            self._fail -= 1
            raise OSError(self._fail_errno, "injected bus failure")
        command = string_at(write.buf, write.len)
        if len(command) != 1 or command[0] not in self.ram:
            raise OSError(errno.EREMOTEIO, f"no such RAM register {command.hex()}")
        answer = self._answer(command[0])
        # A read longer than the frame clocks out 0xFF, as an idle SDA line does.
        data = (answer + b"\xff" * read.len)[: read.len]
        memmove(read.buf, data, read.len)
        self.transactions.append(
            (Message(write.addr, False, command), Message(read.addr, True, data))
        )

    def _answer(self, command: int) -> bytes:
        word = self.ram[command]
        if self._error_flag:
            self._error_flag -= 1
            word |= ERROR_FLAG
        low, high = word & 0xFF, word >> 8
        code = pec((self.address << 1, command, self.address << 1 | 1, low, high))
        if self._corrupt:
            self._corrupt -= 1
            code ^= 0xFF
        return bytes((low, high, code))

    def close(self) -> None:
        """Later transactions raise ``OSError(EBADF)``."""
        self.closed = True
