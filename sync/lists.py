"""The downlink: the centre's lists, signed by the centre key, as a gate receives them.

A document carries, for each list that is newer than what the gate holds, either a
full snapshot or a delta from the gate's version (upserted items and removed keys).
The centre signs the document with its own Ed25519 key (not an issuer key: passes and
lists are different promises, and a leaked pass key must not rewrite revocations).
A gate pins the centre's public key when it enrols and refuses any document that key
did not sign, that was made for another gate, or that is malformed; it applies the
lists of one document in one transaction and never one at a version lower than or
equal to the one it holds. See docs/sync-protocol.md, "Downlink".

The signature covers the canonical JSON (sorted keys, no spaces, UTF-8) of the
``payload`` object exactly as parsed from the wire, before any model validation, so
both ends agree byte for byte without depending on how a datetime is re-serialized.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from gate_agent.core.passes import key_id
from sync.protocol import (
    AlertItem,
    DirectoryItem,
    IsolationItem,
    KeyItem,
    PassageItem,
    RevocationItem,
)

FORMAT = "gate-station-lists/2"
_DOMAIN = b"gate-station-lists/2\n"

#: Every list of the downlink the issuer store versions, in the order a gate applies them.
DOWNLINK_LISTS = ("keys", "revocations", "isolations", "settings", "directory")
#: Lists derived from the stored entries of the gate's compound (sync/compound_lists.py):
#: version = the highest ingest id among the items; always a snapshot; sent only to a
#: gate that names them in ``have`` (an older gate would refuse a list it does not know).
COMPOUND_LISTS = ("alerts", "passages")
#: Lists the centre may send as deltas (large, keyed by pass id); the rest are small.
DELTA_LISTS = ("revocations", "directory")

#: The gate settings the centre may set, with what each value must be.
SETTING_KEYS = (
    "mode",
    "fever_celsius",
    "recheck_window_minutes",
    "passback_window_hours",
    "screen_exits",
    "exit_quota",
)
#: Settings only a gate that knows the compound lists understands (see ``COMPOUND_LISTS``).
COMPOUND_SETTING_KEYS = ("exit_quota",)
MODES = ("open", "screening", "lockdown")
_QUOTA = re.compile(r"[1-9][0-9]?/[1-9][0-9]?")


class ListsRefused(ValueError):
    """A lists document the gate must not apply; ``code`` is stable, for alarms and tests.

    Codes: ``lists_malformed``, ``lists_unknown_key``, ``lists_bad_signature``,
    ``lists_wrong_gate``.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingItem(_Wire):
    """One gate setting from the centre."""

    key: Literal[
        "mode",
        "fever_celsius",
        "recheck_window_minutes",
        "passback_window_hours",
        "screen_exits",
        "exit_quota",
    ]
    value: str | float | bool

    @model_validator(mode="after")
    def _value_fits_key(self) -> SettingItem:
        check_setting(self.key, self.value)
        return self


def check_setting(key: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a valid value of gate setting ``key``."""
    if key not in SETTING_KEYS:
        raise ValueError(f"unknown gate setting {key!r}; settings are {', '.join(SETTING_KEYS)}")
    if key == "mode":
        if value not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
        return
    if key == "screen_exits":
        if not isinstance(value, bool):
            raise ValueError("screen_exits must be true or false")
        return
    if key == "exit_quota":
        if not isinstance(value, str) or _QUOTA.fullmatch(value) is None:
            raise ValueError(f"exit_quota must be EXITS/DAYS, each 1-99 (e.g. 1/2), got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    ranges = {
        "fever_celsius": (35.0, 42.0),
        "recheck_window_minutes": (1.0, 240.0),
        "passback_window_hours": (0.0, 72.0),
    }
    low, high = ranges[key]
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low:g} and {high:g}, got {value!r}")


_ITEM_MODELS: dict[str, type[_Wire] | type[BaseModel]] = {
    "keys": KeyItem,
    "revocations": RevocationItem,
    "isolations": IsolationItem,
    "settings": SettingItem,
    "directory": DirectoryItem,
    "alerts": AlertItem,
    "passages": PassageItem,
}
#: The field naming an item within its list, for deltas.
ITEM_KEY = {"revocations": "pass_id", "directory": "pass_id"}


class ListUpdate(_Wire):
    """One list: a snapshot of every item, or a delta from ``base_version``."""

    name: Literal[
        "keys", "revocations", "isolations", "settings", "directory", "alerts", "passages"
    ]
    kind: Literal["snapshot", "delta"]
    version: Annotated[int, Field(ge=1)]
    base_version: Annotated[int, Field(ge=1)] | None = None
    items: tuple[dict[str, Any], ...] = ()  # every item (snapshot) or the upserted ones (delta)
    removed: tuple[str, ...] = ()  # delta only: keys of items to drop

    @model_validator(mode="after")
    def _consistent(self) -> ListUpdate:
        model = _ITEM_MODELS[self.name]
        for index, item in enumerate(self.items):
            try:
                model.model_validate(item)
            except ValidationError as exc:
                raise ValueError(f"{self.name}[{index}]: {exc}") from exc
        if self.kind == "snapshot":
            if self.base_version is not None or self.removed:
                raise ValueError(f"{self.name}: a snapshot has no base_version nor removed keys")
            return self
        if self.name not in DELTA_LISTS:
            raise ValueError(f"{self.name} is sent whole, never as a delta")
        if self.base_version is None or self.base_version >= self.version:
            raise ValueError(f"{self.name}: a delta needs a base_version below its version")
        keys = [item[ITEM_KEY[self.name]] for item in self.items]
        if len(set(keys)) != len(keys) or set(keys) & set(self.removed):
            raise ValueError(f"{self.name}: a delta names an item twice")
        return self


class ListsPayload(_Wire):
    """What the centre signs: the lists for one gate (or for any, in an export file)."""

    format: Literal["gate-station-lists/2"] = "gate-station-lists/2"
    gate_id: str | None  # None: an export for whichever gate imports it
    issued_at: AwareDatetime
    lists: tuple[ListUpdate, ...]

    @model_validator(mode="after")
    def _each_list_once(self) -> ListsPayload:
        names = [update.name for update in self.lists]
        if len(set(names)) != len(names):
            raise ValueError("a list appears twice")
        return self


def canonical(value: object) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign_lists(payload: ListsPayload, kid: str, private: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed document for ``payload``, as JSON primitives."""
    body = payload.model_dump(mode="json")
    signature = private.sign(_DOMAIN + canonical(body))
    return {
        "format": FORMAT,
        "payload": body,
        "kid": kid,
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def verify_lists(
    document: bytes | Mapping[str, Any],
    trusted: Mapping[str, bytes],
    *,
    gate_id: str | None,
) -> ListsPayload:
    """Check a signed document against the pinned centre keys (kid -> raw public key).

    ``gate_id`` is the gate applying it: a document made for another gate is refused;
    one made for any gate (an export file) is accepted. Raises ``ListsRefused``.
    """
    raw = _parse(document)
    kid, signature, body = raw.get("kid"), raw.get("signature"), raw.get("payload")
    if raw.get("format") != FORMAT or not isinstance(kid, str) or not isinstance(body, dict):
        raise ListsRefused("lists_malformed", f"not a {FORMAT} document")
    public = trusted.get(kid)
    if public is None:
        raise ListsRefused("lists_unknown_key", f"signed by centre key {kid}, not the pinned one")
    try:
        sig = base64.b64decode(str(signature), validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(sig, _DOMAIN + canonical(body))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise ListsRefused("lists_bad_signature", "the signature does not match") from exc
    try:
        payload = ListsPayload.model_validate(body)
    except ValidationError as exc:
        raise ListsRefused("lists_malformed", str(exc)) from exc
    if payload.gate_id is not None and payload.gate_id != gate_id:
        raise ListsRefused("lists_wrong_gate", f"made for gate {payload.gate_id}, not {gate_id}")
    return payload


def centre_key_id(public: bytes) -> str:
    """The id of a centre key, derived from its raw public bytes like an issuer key's."""
    return key_id(Ed25519PublicKey.from_public_bytes(public))


def _parse(document: bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        # Round-trip through JSON so the signed bytes are those a wire copy would give.
        try:
            document = canonical(dict(document))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ListsRefused("lists_malformed", f"not JSON: {exc}") from exc
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError) as exc:
        # RecursionError: arrays or objects nested deeper than the parser recurses.
        raise ListsRefused("lists_malformed", f"not JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ListsRefused("lists_malformed", "not a JSON object")
    return parsed
