"""Errors of the central side, drawn once.

SyncError
 ├── StoreError                    the central database could not be used
 ├── IssuerKeyError  (LookupError) no usable issuer key, or a key file that is wrong
 ├── NotFound        (LookupError) a pass, key or gate the admin named does not exist
 ├── Conflict        (ValueError)  what the admin asked for already exists
 ├── KeyInUse        (ValueError)  retiring the last active issuer key (without --force)
 ├── WrongPlace      (ValueError)  a gate enrolling with another place than the centre's
 ├── CardRefused     (ValueError)  no card for this pass (revoked, expired...) or no CJK font
 ├── RosterRefused   (ValueError)  a residents file with bad rows (each named by row, column)
 ├── VisitorRefused  (ValueError)  a visitor request or pass refused (unknown host, too long...)
 └── BackupRefused   (ValueError)  a backup not made, not sound, or not restored (a code says why)
"""


class SyncError(Exception):
    """Base of every error the central side raises on purpose."""


class StoreError(SyncError):
    """The central database could not be opened or used."""


class IssuerKeyError(SyncError, LookupError):
    """No usable issuer key, or a key file that is missing or unsafe."""


class NotFound(SyncError, LookupError):
    """The named pass, key or gate does not exist."""


class Conflict(SyncError, ValueError):
    """What the admin asked to create already exists."""


class KeyInUse(SyncError, ValueError):
    """Retiring this key would leave no active issuer key to sign passes with."""


class WrongPlace(SyncError, ValueError):
    """A gate reports a compound or community other than the one the centre holds for it."""


class CardRefused(SyncError, ValueError):
    """A pass card cannot be made; ``code`` is stable, for scripts and tests."""

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code


class RosterRefused(SyncError, ValueError):
    """A residents file that cannot be imported; ``code`` is stable, the text names rows."""

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})" if "\n" not in detail else f"({code}) {detail}")
        self.code = code


class VisitorRefused(SyncError, ValueError):
    """A visitor request, approval or pass refused; ``code`` is stable (see docs)."""

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code
        self.detail = detail


class BackupRefused(SyncError, ValueError):
    """A backup that cannot be made, checked or restored; ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        """A refusal with its stable code."""
        super().__init__(f"{detail} ({code})")
        self.code = code
        self.detail = detail
