"""Wire models both ends share. Now: the lists bundle the centre sends down to gates.

A bundle carries each list as a full snapshot with a version. A gate applies
every list in one transaction and never one at a lower or equal version than it
holds, so a stale bundle (an old USB stick, a replayed download) changes nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

LIST_NAMES = ("keys", "revocations", "isolations")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyItem(_Wire):
    """An issuer public key: raw Ed25519 key in base64, and whether it is retired."""

    kid: Annotated[str, Field(pattern=r"^[A-Z2-7]{8}$")]
    public_key: str
    retired: bool = False

    @field_validator("public_key")
    @classmethod
    def _raw_32_bytes(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError("public_key must be base64") from exc
        if len(raw) != 32:
            raise ValueError("public_key must be 32 raw Ed25519 bytes")
        return value

    def raw(self) -> bytes:
        """The 32 raw public-key bytes."""
        return base64.b64decode(self.public_key)


class RevocationItem(_Wire):
    """A revoked pass."""

    pass_id: Annotated[str, Field(pattern=r"^[0-9A-Z]{6,16}$")]
    revoked_at: AwareDatetime
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class IsolationItem(_Wire):
    """A household in home isolation for a period."""

    household_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")]
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> IsolationItem:
        if self.end <= self.start:
            raise ValueError("isolation end must be after its start")
        return self


class KeyList(_Wire):
    """The issuer keys at a version."""

    version: Annotated[int, Field(ge=1)]
    items: tuple[KeyItem, ...]


class RevocationList(_Wire):
    """The revoked passes at a version."""

    version: Annotated[int, Field(ge=1)]
    items: tuple[RevocationItem, ...]


class IsolationList(_Wire):
    """The isolated households at a version."""

    version: Annotated[int, Field(ge=1)]
    items: tuple[IsolationItem, ...]


class ListsBundle(_Wire):
    """Every list the centre sends a gate; a list left out is left as the gate has it."""

    format: Literal["gate-station-lists/1"] = "gate-station-lists/1"
    issued_at: AwareDatetime
    keys: KeyList | None = None
    revocations: RevocationList | None = None
    isolations: IsolationList | None = None

    def snapshots(self) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        """The lists as (version, items) in JSON-ready primitives, for the gate's store."""
        out: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        for name in LIST_NAMES:
            snapshot: KeyList | RevocationList | IsolationList | None = getattr(self, name)
            if snapshot is not None:
                items = [item.model_dump(mode="json") for item in snapshot.items]
                out[name] = (snapshot.version, items)
        return out
