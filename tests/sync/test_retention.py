"""The centre's retention purge: SQLite and PostgreSQL alike, the chain checks after it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gate_agent.ledger import Ledger
from sync import ledgers, retention, visitors
from sync.cli import main
from sync.cli_serve import retention_days
from sync.issuer import Issuer
from sync.protocol import Ack
from sync.server.auth import secret_hash
from sync.store.central import IssuerStore
from sync.store.checks import entry_problems
from sync.store.streams import StreamStore
from tests.ledger.helpers import draft as entry_draft
from tests.sync.stream_helpers import (
    GATE,
    NOW,
    STORES,
    batch,
    ledger_entries,
    open_central,
    open_streams,
    store_dsn,
)
from tests.sync.test_visitors_store import draft as visit
from tests.sync.test_visitors_store import setup

OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


@dataclass
class Centre:
    """Both stores of one centre, with a gate's stream uploaded."""

    issuer: Issuer
    streams: StreamStore
    stream_id: str
    sent: list[dict[str, Any]]

    @property
    def store(self) -> IssuerStore:
        return self.issuer.store


def registrations(path: Path) -> str:
    """A gate ledger: a visitor registration 40 days ago, one 2 days ago, a scan between."""
    with Ledger.open(path, gate_id=GATE) as ledger:
        for n, (at, name) in enumerate([(OLD, "孙悟空"), (OLD, None), (RECENT, "猪八戒")]):
            personal = None if name is None else {"name": name, "phone": "13900000000"}
            ledger.append(
                entry_draft(
                    n, wall_time=at + timedelta(minutes=n), personal=personal,
                    manual_identity="visitor" if personal else None,
                    pass_id=None if personal else "pass-1",
                )
            )  # fmt: skip
        return ledger.stream_id


@pytest.fixture(params=STORES)
def centre(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Centre]:
    dsn = store_dsn(request)
    store = open_central(tmp_path, dsn)
    streams = open_streams(tmp_path, dsn)
    try:
        issuer = Issuer(tmp_path, store)
        setup(issuer)
        streams.add_enrol_code(GATE, secret_hash("code"), NOW + timedelta(hours=1))
        assert streams.enrol(GATE, secret_hash("code"), secret_hash("token"), NOW)
        path = tmp_path / "gate" / "ledger.sqlite3"
        stream_id = registrations(path)
        sent = ledger_entries(path)
        reply = streams.ingest(GATE, stream_id, batch(sent), now=NOW, list_versions={})
        assert isinstance(reply, Ack) and reply.stored_through == 3
        yield Centre(issuer, streams, stream_id, sent)
    finally:
        streams.close()
        store.close()


def stored(centre: Centre) -> list[dict[str, Any]]:
    return [record.content for record in centre.streams.entries_after(0, 100)]


def test_old_personal_data_goes_and_the_chain_still_checks(centre: Centre) -> None:
    streams, store = centre.streams, centre.store
    dry = retention.purge(streams, store, now=NOW, days=28, by="test", dry_run=True)
    assert (dry.entries, dry.visitor_requests, dry.dry_run) == (1, 0, True)
    assert stored(centre) == centre.sent  # a dry run changes nothing
    done = retention.purge(streams, store, now=NOW, days=28, by="管理员甲")
    assert done.entries == 1
    after = stored(centre)
    assert (after[0]["personal"], after[0]["personal_salt"]) == (None, None)
    assert after[0]["personal_digest"] == centre.sent[0]["personal_digest"]
    assert after[1] == centre.sent[1]  # no personal data: untouched
    assert after[2] == centre.sent[2]  # younger than the period: kept
    # The centre's own checks take every stored entry as sound, in chain order.
    prev = centre.sent[0]["prev_hash"]
    for content in after:
        problems = entry_problems(content, gate_id=GATE, stream_id=centre.stream_id, prev_hash=prev)
        assert problems == []
        prev = content["hash"]
    # The gate, not yet purged itself, sends the same entries again: a harmless repeat.
    again = streams.ingest(GATE, centre.stream_id, batch(centre.sent), now=NOW, list_versions={})
    assert isinstance(again, Ack) and again.stored_through == 3
    assert stored(centre)[0]["personal"] is None
    rows = list(ledgers.ledger_table("visitors", streams, store).rows)
    by_time = sorted(rows, key=lambda row: row["time"])
    assert [row["name"] for row in by_time] == [None, "猪八戒"]
    assert ledgers.PURGED in by_time[0]["note"]
    audit = store.audit_rows(10)
    assert [(a.action, a.by) for a in audit][:1] == [("retention.purge", "管理员甲")]
    # Nothing left to purge: no second audit row.
    assert retention.purge(streams, store, now=NOW, days=28, by="test").entries == 0
    assert len(store.audit_rows(10)) == len(audit)


def test_finished_visitor_requests_lose_name_phone_and_plate(centre: Centre) -> None:
    issuer = centre.issuer
    window = {"start": OLD + timedelta(hours=1), "end": OLD + timedelta(hours=9)}
    ended = visitors.request(issuer, visit(**window), OLD)
    visitors.approve(issuer, ended.request_id, "社区李四", OLD)
    rejected = visitors.request(issuer, visit(name="钱多多", **window), OLD)
    visitors.reject(issuer, rejected.request_id, "住户未确认", "社区李四", OLD)
    pending = visitors.request(issuer, visit(name="周小", **window), OLD)  # never decided
    late = {"start": NOW + timedelta(hours=1), "end": NOW + timedelta(hours=9)}
    current = visitors.request(issuer, visit(name="吴大", **late), NOW)
    visitors.approve(issuer, current.request_id, "社区李四", NOW)
    done = retention.purge(centre.streams, issuer.store, now=NOW, days=28, by="test")
    assert done.visitor_requests == 2
    requests = {r.request_id: r for r in issuer.store.visitor_requests()}
    for purged in (ended, rejected):
        row = requests[purged.request_id]
        assert (row.name, row.phone, row.plate) == ("", "", "")
        assert row.state in ("approved", "rejected") and row.household_id == purged.household_id
    assert requests[pending.request_id].name == "周小"
    assert requests[current.request_id].name == "吴大"
    rows = list(ledgers.ledger_table("visitors", centre.streams, issuer.store).rows)
    passes = [row for row in rows if row["source"] == "访客证 pass"]
    assert [(row["name"], ledgers.PURGED in row["note"]) for row in passes] == [
        ("", True),
        ("吴大", False),
    ]
    again = retention.purge(centre.streams, issuer.store, now=NOW, days=28, by="test")
    assert again.visitor_requests == 0


def test_periods_out_of_range_are_refused(centre: Centre, monkeypatch: pytest.MonkeyPatch) -> None:
    for days in (0, -1, 3651):
        with pytest.raises(ValueError, match="retention days"):
            retention.purge(centre.streams, centre.store, now=NOW, days=days, by="t")
    monkeypatch.setenv(retention.ENV_DAYS, "7")
    assert retention_days(None, keep_allowed=True) == 7
    assert retention_days(3, keep_allowed=True) == 3
    monkeypatch.setenv(retention.ENV_DAYS, "0")
    assert retention_days(None, keep_allowed=True) == 0
    with pytest.raises(ValueError, match="between 1"):
        retention_days(None, keep_allowed=False)
    monkeypatch.setenv(retention.ENV_DAYS, "a week")
    with pytest.raises(ValueError, match=retention.ENV_DAYS):
        retention_days(None, keep_allowed=True)


def test_the_servers_purger_runs_at_start(centre: Centre) -> None:
    purger = retention.Purger(centre.streams, centre.store, days=28, clock=lambda: NOW)
    ran = threading.Event()
    original = purger.run_once

    def run_once() -> retention.CentrePurge | None:
        done = original()
        ran.set()
        return done

    purger.run_once = run_once  # type: ignore[method-assign]
    purger.start()
    try:
        assert ran.wait(30)
    finally:
        purger.stop()
    assert stored(centre)[0]["personal"] is None
    assert centre.store.audit_rows(1)[0].by == retention.SERVER


def test_gate_sync_purge_counts_then_blanks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "centre"
    with closing(open_streams(data, None)) as streams:
        streams.add_enrol_code(GATE, secret_hash("code"), NOW + timedelta(hours=1))
        assert streams.enrol(GATE, secret_hash("code"), secret_hash("token"), NOW)
        stream_id = registrations(tmp_path / "gate" / "ledger.sqlite3")
        sent = ledger_entries(tmp_path / "gate" / "ledger.sqlite3")
        streams.ingest(GATE, stream_id, batch(sent), now=NOW, list_versions={})
    # The entries are years old by the real clock: every registration goes.
    assert main(["--data-dir", str(data), "purge", "--dry-run", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["entries"], counts["visitor_requests"], counts["dry_run"]) == (2, 0, True)
    assert main(["--data-dir", str(data), "purge", "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert "blanked the personal data of 2 entries and 0 visitor requests older than 30" in out
    assert "孙悟空" not in out
    assert main(["--data-dir", str(data), "purge", "--days", "0"]) == 1
    assert "between 1" in capsys.readouterr().err
    with closing(open_streams(data, None)) as streams:
        assert all(r.content["personal"] is None for r in streams.entries_after(0, 10))
