"""The chain hash in the pure core: the gate's ledger and the centre compute the same."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from gate_agent.core import chain
from gate_agent.ledger import Ledger, records
from gate_agent.ledger.wire import wire_entries
from tests.ledger.helpers import draft


def test_the_explicit_v1_columns_are_the_ledgers_derived_ones() -> None:
    assert records.ENTRY_COLUMNS == chain.ENTRY_COLUMNS
    assert set(chain.ENTRY_COLUMNS) >= chain.UNHASHED_COLUMNS
    assert records.UNHASHED_COLUMNS is chain.UNHASHED_COLUMNS
    assert records.row_hash is chain.row_hash


def test_genesis_and_digest_are_the_documented_hashes() -> None:
    stream = "0b9c6c1e-8a57-4d43-9e3a-1c1f7a7c0d55"
    expected = hashlib.sha256(b"gate-station/ledger/v1/" + stream.encode()).hexdigest()
    assert chain.genesis_hash(stream) == expected
    salt = bytes(range(16))
    assert (
        chain.personal_digest(salt, '{"a":"b"}') == hashlib.sha256(salt + b'{"a":"b"}').hexdigest()
    )


def test_canonical_json_is_sorted_compact_and_unescaped() -> None:
    assert chain.canonical_json({"b": 1, "a": "张"}) == '{"a":"张","b":1}'.encode()


def test_wire_entries_rehash_to_the_ledgers_hashes(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite3", gate_id="gate-a") as ledger:
        stored = [
            ledger.append(replace(draft(n), personal={"name": "李四"} if n == 1 else None))
            for n in range(3)
        ]
        wire = wire_entries(ledger)
    assert [entry["seq"] for entry in wire] == [1, 2, 3]
    assert set(wire[0]) == set(chain.ENTRY_COLUMNS)
    for entry, kept in zip(wire, stored, strict=True):
        assert chain.row_hash(entry) == entry["hash"] == kept.hash
    assert wire[0]["prev_hash"] == chain.genesis_hash(stored[0].stream_id)
    salt = bytes.fromhex(wire[1]["personal_salt"])
    assert chain.personal_digest(salt, wire[1]["personal"]) == wire[1]["personal_digest"]


def test_a_changed_column_changes_the_hash() -> None:
    row: dict[str, object] = {column: None for column in chain.ENTRY_COLUMNS}
    row.update(seq=1, clock_synced=1, alert=0, temperature_raw="[34.1]")
    same = dict(row, clock_synced=True, alert=False, temperature_raw=[34.1], personal="x")
    assert chain.row_hash(row) == chain.row_hash(same)
    assert chain.row_hash(row) != chain.row_hash(dict(row, seq=2))
