"""Errors of the gate agent, drawn once.

GateError
 ├── ConfigError            (ValueError)  a gate.toml that does not validate
 ├── ImageError             (ValueError)  a file that is not a readable image
 ├── DeviceError            (OSError)     a camera, sensor or GPIO device failing
 └── LedgerError
      ├── LedgerCorrupt                   integrity check or hash chain broken
      ├── LedgerFull                      the disk (or the file system) is full
      └── LedgerMismatch    (ValueError)  a ledger file that belongs to another gate

Refusals of a pass or an entry are not errors: they are coded return values
(``gate_agent.core.reasons.Reason``). Adapters translate library errors at the
edge with ``raise ... from exc`` so nothing above ``hardware/`` sees a ``cv2.error``.
"""


class GateError(Exception):
    """Base of every error the gate agent raises on purpose."""


class ConfigError(GateError, ValueError):
    """The configuration does not validate; the message names the key."""


class ImageError(GateError, ValueError):
    """A file could not be read as an image."""


class DeviceError(GateError, OSError):
    """A hardware device failed or is missing."""


class LedgerError(GateError):
    """The ledger could not be opened, written or read."""


class LedgerCorrupt(LedgerError):
    """The ledger's integrity check or hash chain failed."""


class LedgerFull(LedgerError):
    """A write failed because the disk is full (SQLITE_FULL); nothing of it was kept."""


class LedgerMismatch(LedgerError, ValueError):
    """The ledger file belongs to another gate."""
