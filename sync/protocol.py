"""Wire models both ends share: the lists' items, batches of entries, acknowledgements.

``ListsBundle`` is every list as a full snapshot with a version, as the centre
builds it; what travels to a gate is the signed document of ``sync.lists`` made
from it. A gate applies every list in one transaction and never one at a lower or
equal version than it holds, so a stale copy (an old USB stick, a replayed
download) changes nothing. The directory lists the people passes in force, for a
guard to look up someone who has no phone or card.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

LIST_NAMES = ("keys", "revocations", "isolations", "directory")

_PASS_ID = r"^[0-9A-Z]{6,16}$"
_IDENT = r"[0-9A-Za-z][0-9A-Za-z_-]{0,23}"
# The pass format's rules (gate_agent/core/passes.py), restated for the wire.
_SCOPE = rf"^(?:(?:community|compound):{_IDENT}|gates:{_IDENT}(?:,{_IDENT})*)$"
_UNIT = r"^(?:[0-9A-Za-z]{1,6}(?:-[0-9A-Za-z]{1,6}){0,2})?$"
_QUOTA = r"^[1-9][0-9]?/[1-9][0-9]?$"
_MAX_NAME_CHARS = 16


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

    pass_id: Annotated[str, Field(pattern=_PASS_ID)]
    revoked_at: AwareDatetime
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class IsolationItem(_Wire):
    """A household in home isolation for a period."""

    household_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> IsolationItem:
        if self.end <= self.start:
            raise ValueError("isolation end must be after its start")
        return self


class DirectoryItem(_Wire):
    """A people pass in force, as the guard looks it up: masked name and unit, no signature."""

    pass_id: Annotated[str, Field(pattern=_PASS_ID)]
    kind: Literal["resident", "tenant", "visitor", "worker", "delivery"]
    household_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    scope: Annotated[str, Field(pattern=_SCOPE)]
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    display_name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME_CHARS)]
    unit: Annotated[str, Field(pattern=_UNIT)] = ""
    exit_quota: Annotated[str, Field(pattern=_QUOTA)] | None = None

    @field_validator("display_name")
    @classmethod
    def _masked(cls, value: str) -> str:
        if "*" not in value:
            raise ValueError("display_name must be masked (contain '*')")
        if "|" in value or not value.isprintable():
            raise ValueError("display_name has a control character or '|'")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DirectoryItem:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class AlertItem(_Wire):
    """An isolated household's refused exit (or a visit to it) at a gate of the compound."""

    gate_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    stream_id: Annotated[str, Field(min_length=36, max_length=36)]
    seq: Annotated[int, Field(ge=1)]
    at: AwareDatetime  # when it happened, by the gate's clock (the centre's correction if any)
    reason: Literal["quarantined_exit", "host_in_isolation"]
    household_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    unit: Annotated[str, Field(max_length=40)] = ""
    display_name: Annotated[str, Field(max_length=_MAX_NAME_CHARS)] = ""  # masked, or ""
    pass_id: Annotated[str, Field(pattern=_PASS_ID)] | None = None

    @field_validator("display_name")
    @classmethod
    def _masked(cls, value: str) -> str:
        if value and ("*" not in value or not value.isprintable()):
            raise ValueError("display_name must be masked (contain '*') and printable")
        return value


class PassageItem(_Wire):
    """An allowed passage at another gate of the compound that this gate's rules count."""

    gate_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    stream_id: Annotated[str, Field(min_length=36, max_length=36)]
    seq: Annotated[int, Field(ge=1)]
    pass_id: Annotated[str, Field(pattern=_PASS_ID)]
    household_id: Annotated[str, Field(pattern=rf"^{_IDENT}$")]
    kind: Literal["resident", "tenant", "visitor"]
    direction: Literal["in", "out"]
    at: AwareDatetime


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


class DirectoryList(_Wire):
    """The people passes in force at a version."""

    version: Annotated[int, Field(ge=1)]
    items: tuple[DirectoryItem, ...]


_Snapshot = KeyList | RevocationList | IsolationList | DirectoryList


class ListsBundle(_Wire):
    """Every list the centre sends a gate; a list left out is left as the gate has it."""

    format: Literal["gate-station-lists/1"] = "gate-station-lists/1"
    issued_at: AwareDatetime
    keys: KeyList | None = None
    revocations: RevocationList | None = None
    isolations: IsolationList | None = None
    directory: DirectoryList | None = None

    def snapshots(self) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        """The lists as (version, items) in JSON-ready primitives, for the gate's store."""
        out: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        for name in LIST_NAMES:
            snapshot: _Snapshot | None = getattr(self, name)
            if snapshot is not None:
                items = [item.model_dump(mode="json") for item in snapshot.items]
                out[name] = (snapshot.version, items)
        return out


# -- Uplink: entries from a gate's ledger stream to the centre ----------------------------

MAX_BATCH_ENTRIES = 500
MAX_BATCH_BYTES = 256 * 1024  # gzip-compressed request body


class Batch(_Wire):
    """A contiguous run of one stream's entries, as the gate's ledger holds them.

    ``entries`` are the ledger rows (every column, ``personal`` as its canonical
    JSON text and ``personal_salt`` as hex), checked one by one by the server so a
    malformed entry is stored flagged instead of blocking the stream.
    """

    first_seq: Annotated[int, Field(ge=1)]
    entries: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH_ENTRIES)]
    sent_at: AwareDatetime  # the gate's wall clock when it sent, for the clock offset
    sent_monotonic_ns: Annotated[int, Field(ge=0)]
    boot_id: str
    clock_synced: bool
    backlog: Annotated[int, Field(ge=0)]  # entries the gate holds that the centre has not acked
    list_versions: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _contiguous(self) -> Batch:
        seqs = [entry.get("seq") for entry in self.entries]
        expected = list(range(self.first_seq, self.first_seq + len(self.entries)))
        if seqs != expected:
            raise ValueError(f"entries must be numbered {self.first_seq}.. contiguously")
        return self


class Ack(_Wire):
    """Every entry of the stream through ``stored_through`` is stored at the centre."""

    stored_through: Annotated[int, Field(ge=0)]
    flagged: tuple[int, ...] = ()  # sequence numbers stored but marked malformed
    server_time: AwareDatetime
    list_versions: dict[str, int] = Field(default_factory=dict)


class StreamConflict(_Wire):
    """409: a gap before the batch, or different content for a stored sequence number."""

    error: Literal["gap", "content_conflict"]
    cursor: Annotated[int, Field(ge=0)]  # the server's stored_through for the stream
    seq: int | None = None  # the first conflicting sequence number
