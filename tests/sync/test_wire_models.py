"""The uplink's wire models refuse what the protocol does not allow."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sync.protocol import MAX_BATCH_ENTRIES, Ack, Batch, StreamConflict

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def batch(first: int, seqs: list[int]) -> Batch:
    return Batch(
        first_seq=first,
        entries=[{"seq": s} for s in seqs],
        sent_at=NOW,
        sent_monotonic_ns=1,
        boot_id="b",
        clock_synced=True,
        backlog=len(seqs),
    )


def test_a_batch_is_a_contiguous_run() -> None:
    assert batch(5, [5, 6, 7]).first_seq == 5
    for seqs in ([5, 7], [6, 5], [4, 5]):
        with pytest.raises(ValidationError, match="contiguously"):
            batch(5, seqs)


def test_a_batch_holds_at_most_500_entries_and_at_least_one() -> None:
    batch(1, list(range(1, MAX_BATCH_ENTRIES + 1)))
    with pytest.raises(ValidationError):
        batch(1, list(range(1, MAX_BATCH_ENTRIES + 2)))
    with pytest.raises(ValidationError):
        batch(1, [])


def test_replies_round_trip() -> None:
    ack = Ack(stored_through=9, server_time=NOW, list_versions={"keys": 2})
    assert Ack.model_validate_json(ack.model_dump_json()) == ack
    conflict = StreamConflict(error="gap", cursor=3)
    assert StreamConflict.model_validate_json(conflict.model_dump_json()) == conflict
    with pytest.raises(ValidationError):
        StreamConflict.model_validate({"error": "bad", "cursor": 3})
