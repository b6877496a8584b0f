"""The lists coming down to a gate: revocations, isolations, keys, settings and more.

Part of the uploader's thread (``gate_agent.uplink``): when an acknowledgement names a
list version newer than the gate's, and every ``lists_poll_s`` otherwise, it asks the
centre for what is newer than the versions it holds, checks the centre key's signature
(``sync.lists.verify_lists``) and applies the lists in one transaction. A refused
document changes nothing and is recorded as the last error; uploads go on. A delta from
a version the gate no longer holds (a lists file was imported meanwhile) is asked for
again as whole snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import httpx

from gate_agent.clock import Clock
from gate_agent.ledger import Ledger
from gate_agent.ledger.state import ListChange
from gate_agent.uplink_http import lists_path
from sync.lists import ListsPayload, ListsRefused, verify_lists

logger = logging.getLogger("gate_agent.uplink")


class ListsDownlink:
    """Asks the centre for newer lists and applies them to the ledger's state."""

    def __init__(
        self,
        ledger: Ledger,
        client: httpx.Client,
        *,
        gate_id: str,
        token: str,
        clock: Clock,
        poll_s: float,
        alarm: Callable[[str, str], object],
    ) -> None:
        """``alarm(code, text)`` stops uploads (the centre refused the gate's token)."""
        self._ledger = ledger
        self._client = client
        self._gate_id = gate_id
        self._token = token
        self._clock = clock
        self._poll_s = poll_s
        self._alarm = alarm
        self._checked_ns: int | None = None

    def held_versions(self) -> dict[str, int]:
        """The version of every list the gate holds, as the centre is asked with."""
        state = self._ledger.state
        return {
            **state.list_versions(),
            "directory": state.directory_status().version,
            # Naming these asks the centre for them (and the settings only they explain).
            **state.compound_versions(),
        }

    def due(self) -> bool:
        """Whether to ask for lists now: the centre said it has newer, or it is time."""
        if self._checked_ns is None:
            return True
        held = self.held_versions()
        centre = self._ledger.sync.status().centre_list_versions
        if any(version > held.get(name, 0) for name, version in centre.items()):
            return True
        waited_s = (self._clock.monotonic_ns() - self._checked_ns) / 1e9
        return waited_s >= self._poll_s

    def refresh(self) -> list[str] | None:
        """Fetch, verify and apply the lists newer than the gate's; the names applied.

        None when nothing could be applied: no centre key pinned, the centre out of
        reach or refusing, or a document that failed its checks (the last error says
        which; nothing was changed).
        """
        state = self._ledger.state
        trusted = state.centre_keys()
        self._checked_ns = self._clock.monotonic_ns()
        if not trusted:
            self._ledger.sync.record_error(
                "no_centre_key", "no centre key is pinned: enrol the gate", self._clock.now()
            )
            return None
        payload = self._fetch_lists(self.held_versions(), trusted)
        if payload is None:
            return None
        changes = [
            ListChange(u.name, u.version, u.items, u.base_version, u.removed) for u in payload.lists
        ]
        try:
            applied = state.apply_changes(changes)
        except ValueError as exc:
            # A delta from a version the gate no longer holds (a lists file was imported
            # meanwhile): ask for every list whole.
            logger.warning("uplink: lists did not apply (%s); asking for snapshots", exc)
            payload = self._fetch_lists(dict.fromkeys(self.held_versions(), 0), trusted)
            if payload is None:
                return None
            changes = [ListChange(u.name, u.version, u.items) for u in payload.lists]
            try:
                applied = state.apply_changes(changes)
            except ValueError as again:
                self._ledger.sync.record_error("lists_rejected", str(again), self._clock.now())
                return None
        self._ledger.sync.record_lists_check(self._clock.now())
        return applied

    def _fetch_lists(
        self, held: Mapping[str, int], trusted: Mapping[str, bytes]
    ) -> ListsPayload | None:
        try:
            response = self._client.get(
                lists_path(self._gate_id, held),
                headers={"Authorization": f"Bearer {self._token}"},
            )
        except httpx.TransportError as exc:
            self._ledger.sync.record_error(
                "network", f"lists: {type(exc).__name__}: {exc}", self._clock.now()
            )
            return None
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            self._alarm(
                "unauthorized" if response.status_code == 401 else "forbidden",
                f"the centre refused the gate's token (HTTP {response.status_code}):"
                " enrol the gate again",
            )
            return None
        if response.status_code != httpx.codes.OK:
            self._ledger.sync.record_error(
                f"http_{response.status_code}",
                f"lists: HTTP {response.status_code}: {response.text[:200]}",
                self._clock.now(),
            )
            return None
        try:
            return verify_lists(response.content, trusted, gate_id=self._gate_id)
        except ListsRefused as exc:
            logger.error("uplink: lists refused: %s", exc)
            self._ledger.sync.record_error(exc.code, exc.detail, self._clock.now())
            return None
