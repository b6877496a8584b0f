"""The centre imports an entry bundle from a USB stick, under the upload's exactly-once rules.

The bundle is verified whole first (format, the gate's signature, the chain within
it), then ingested through ``StreamStore.ingest`` in batches of at most 500, exactly
as uploads are: a repeat stores nothing twice, a gap before the bundle stops the
import and nothing after it is stored, and the gate's next network sync finds the
centre's cursor already past what the bundle carried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sync.bundle import BundleError, EntryBundle, read, verify
from sync.protocol import MAX_BATCH_ENTRIES, Ack, Batch
from sync.store.streams import StreamStore

logger = logging.getLogger(__name__)

#: (entries done, entries in the bundle)
Progress = Callable[[int, int], None]


class ImportStopped(BundleError):
    """The store refused part of a bundle: ``gap`` or ``content_conflict``.

    ``stored_new`` entries were stored before the refusal (whole batches only).
    """

    def __init__(self, code: str, detail: str, stored_new: int) -> None:
        """A refusal after ``stored_new`` entries were stored."""
        super().__init__(code, detail)
        self.stored_new = stored_new


@dataclass(frozen=True)
class ImportSummary:
    """What one import did."""

    gate_id: str
    stream_id: str
    first_seq: int
    last_seq: int
    stored_new: int  # entries the centre did not hold before
    repeats: int  # entries it already held (the same content)
    flagged: tuple[int, ...]  # new entries stored but marked malformed
    stored_through: int  # the centre's cursor for the stream afterwards
    clock_corrected: bool  # whether unsynced entries got a corrected time


def load(path: Path, store: StreamStore) -> EntryBundle:
    """Read and verify a bundle file against the store's token hash of its gate."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError("unreadable", f"{path}: cannot read: {exc.strerror or exc}") from exc
    bundle, document = read(raw)
    token_hash = store.token_hash(bundle.gate_id)
    if token_hash is None:
        raise BundleError(
            "not_enrolled",
            f"gate {bundle.gate_id!r} is not enrolled at this centre: its bundle cannot be"
            " verified",
        )
    verify(bundle, document, token_hash)
    return bundle


def ingest(
    bundle: EntryBundle,
    store: StreamStore,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> ImportSummary:
    """Ingest a verified bundle in batches; raises ``ImportStopped`` on a gap or conflict."""
    gate, stream = bundle.gate_id, bundle.stream_id.lower()
    total = len(bundle.entries)
    stored_new, flagged = 0, list[int]()
    through = store.stored_through(gate, stream)
    for start in range(0, total, MAX_BATCH_ENTRIES):
        chunk = bundle.entries[start : start + MAX_BATCH_ENTRIES]
        batch = Batch(
            first_seq=bundle.first_seq + start,
            entries=chunk,
            sent_at=bundle.exported_at,
            sent_monotonic_ns=bundle.exported_monotonic_ns,
            boot_id=bundle.boot_id,
            clock_synced=bundle.clock_synced,
            backlog=0,
        )
        # The export's wall time stands for its monotonic reading when the gate's clock
        # was synchronised then; otherwise nothing in the bundle says what time it was.
        reply = store.ingest(
            gate,
            stream,
            batch,
            now=now,
            list_versions={},
            reference_time=bundle.exported_at,
            correct_clock=bundle.clock_synced,
        )
        if not isinstance(reply, Ack):
            raise _stopped(bundle, reply.error, reply.cursor, reply.seq, stored_new)
        last = batch.first_seq + len(chunk) - 1
        stored_new += max(0, last - max(through, batch.first_seq - 1))
        through = reply.stored_through
        flagged.extend(reply.flagged)
        if progress is not None:
            progress(start + len(chunk), total)
    logger.info(
        "bundle of gate %s stream %s %d..%d: %d new", gate, stream,
        bundle.first_seq, bundle.last_seq, stored_new,
    )  # fmt: skip
    return ImportSummary(
        gate_id=gate,
        stream_id=stream,
        first_seq=bundle.first_seq,
        last_seq=bundle.last_seq,
        stored_new=stored_new,
        repeats=total - stored_new,
        flagged=tuple(flagged),
        stored_through=through,
        clock_corrected=bundle.clock_synced,
    )


def _stopped(
    bundle: EntryBundle, error: str, cursor: int, seq: int | None, stored_new: int
) -> ImportStopped:
    if error == "gap":
        return ImportStopped(
            "gap",
            f"the centre holds gate {bundle.gate_id}'s stream through {cursor} but this bundle"
            f" starts at {bundle.first_seq}: entry {cursor + 1} is missing. Import the earlier"
            f" bundle first, or export again on the gate with `gate-agent export-bundle"
            f" --from-seq {cursor + 1} PATH`",
            stored_new,
        )
    return ImportStopped(
        "content_conflict",
        f"the centre holds different content for entry {seq} of gate {bundle.gate_id}'s"
        " stream: nothing of that batch was stored",
        stored_new,
    )
