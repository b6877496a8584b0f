"""The uploader against a fake centre answering from a plain function (no sockets)."""

from __future__ import annotations

import base64
import gzip
import json
import random
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate_agent.clock import FakeClock
from gate_agent.ledger import Ledger
from gate_agent.ledger.wire import wire_entry
from gate_agent.uplink import Step, UplinkSettings, Uploader
from gate_agent.uplink_http import (
    UplinkError,
    enrol,
    full_jitter,
    load_token,
    retry_after_seconds,
    save_token,
    token_path,
)
from sync.protocol import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Ack, Batch, StreamConflict

from .ledger.helpers import draft

GATE = "gate-a"
TOKEN = "secret-token"
BASE = "http://centre.test"

Reply = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeCentre:
    """The centre's ingest: stored entries per stream, cumulative acks, 409 on gaps."""

    token: str = TOKEN
    max_entries_accepted: int | None = None  # more entries than this answer 413
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sent: list[tuple[int, int, int]] = field(default_factory=list)  # first, count, body bytes
    script: list[Reply] = field(default_factory=list)  # replies before the normal ones
    lose_reply_of: set[int] = field(default_factory=set)  # first_seqs whose reply is lost
    gate: threading.Event | None = None  # when set, the first request waits for it

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the centre would."""
        if self.gate is not None:
            gate, self.gate = self.gate, None
            assert gate.wait(10)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"error": "unauthorized"})
        assert request.headers["Content-Encoding"] == "gzip"
        parts = request.url.path.split("/")
        assert parts[:5] == ["", "v1", "gates", GATE, "streams"] and parts[6:] == ["batches"]
        body = request.content
        batch = Batch.model_validate_json(gzip.decompress(body))
        self.sent.append((batch.first_seq, len(batch.entries), len(body)))
        if self.script:
            return self.script.pop(0)(request)
        if self.max_entries_accepted is not None and len(batch.entries) > self.max_entries_accepted:
            return httpx.Response(413)
        response = self._ingest(parts[5], batch)
        if batch.first_seq in self.lose_reply_of:
            self.lose_reply_of.discard(batch.first_seq)
            raise httpx.ReadTimeout("reply lost", request=request)
        return response

    def _ingest(self, stream: str, batch: Batch) -> httpx.Response:
        stored = self.streams.setdefault(stream, [])
        if batch.first_seq > len(stored) + 1:
            conflict = StreamConflict(error="gap", cursor=len(stored))
            return httpx.Response(409, content=conflict.model_dump_json())
        for entry in batch.entries:
            seq = entry["seq"]
            if seq <= len(stored):
                if stored[seq - 1] != entry:
                    bad = StreamConflict(error="content_conflict", cursor=len(stored), seq=seq)
                    return httpx.Response(409, content=bad.model_dump_json())
            else:
                stored.append(entry)
        ack = Ack(
            stored_through=len(stored), server_time=T_SERVER, list_versions={"revocations": 4}
        )
        return httpx.Response(200, content=ack.model_dump_json())


T_SERVER = FakeClock().now()


def _rows(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger._store.read() as db:
        return [wire_entry(row) for row in db.query("SELECT * FROM entries ORDER BY seq")]


def _stored(centre: FakeCentre, ledger: Ledger) -> list[dict[str, Any]]:
    return centre.streams.get(ledger.stream_id, [])


def _fill(ledger: Ledger, count: int) -> None:
    start = ledger.last_seq()
    for n in range(start, start + count):
        ledger.append(draft(n))


@pytest.fixture(scope="module")
def big_ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger of 640 entries, the first 100 with incompressible notes (~3 KiB each)."""
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    noise = random.Random(7)  # noqa: S311 - test data, not secrets
    with Ledger.open(path, gate_id=GATE) as ledger:
        for n in range(640):
            note = base64.b64encode(noise.randbytes(3000)).decode() if n < 100 else None
            ledger.append(draft(n, note=note, personal={"name": "张三"}))
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """An empty ledger for the gate."""
    with Ledger.open(tmp_path / "ledger.sqlite3", gate_id=GATE) as opened:
        yield opened


@pytest.fixture
def centre() -> FakeCentre:
    """A fresh fake centre."""
    return FakeCentre()


@dataclass
class Harness:
    """An uploader bound to the fake centre, recording the backoff delays it sleeps."""

    centre: FakeCentre
    clock: FakeClock = field(default_factory=FakeClock)
    delays: list[float] = field(default_factory=list)

    def uploader(self, ledger: Ledger, **settings: Any) -> Uploader:
        """An uploader that sleeps into ``delays`` and jitters at half the ceiling."""
        return Uploader(
            ledger,
            base_url=BASE,
            gate_id=GATE,
            token=TOKEN,
            clock=self.clock,
            transport=httpx.MockTransport(self.centre.handle),
            settings=UplinkSettings(**settings),
            sleep=self.delays.append,
            rand=lambda: 0.5,
        )


@pytest.fixture
def harness(centre: FakeCentre) -> Harness:
    """The uploader's surroundings."""
    return Harness(centre)


def test_everything_drains_once_in_bounded_batches(
    big_ledger_file: Path, tmp_path: Path, harness: Harness
) -> None:
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(big_ledger_file, path)
    with Ledger.open(path, gate_id=GATE) as ledger, harness.uploader(ledger) as up:
        assert up.status().backlog == 640
        assert up.drain() is Step.IDLE
        assert _stored(harness.centre, ledger) == _rows(ledger)
        sent = harness.centre.sent
        assert all(
            count <= MAX_BATCH_ENTRIES and size <= MAX_BATCH_BYTES for _, count, size in sent
        )
        assert sent[0][1] < 100  # the notes make the first batch full by bytes, not by count
        assert max(count for _, count, _ in sent) == MAX_BATCH_ENTRIES
        assert [first for first, _, _ in sent] == sorted({first for first, _, _ in sent})
        status = up.status()
        assert (status.backlog, status.acked_through, status.alarm) == (0, 640, None)
        assert status.last_success_at == harness.clock.now()
        assert ledger.sync.status().centre_list_versions == {"revocations": 4}
        assert harness.delays == []
        entry = _stored(harness.centre, ledger)[0]
        assert isinstance(entry["personal_salt"], str) and json.loads(entry["personal"])


def test_a_lost_reply_is_sent_again_without_duplicating(ledger: Ledger, harness: Harness) -> None:
    _fill(ledger, 20)
    harness.centre.lose_reply_of = {9}
    with harness.uploader(ledger, max_entries=8) as up:
        assert up.drain() is Step.IDLE
    firsts = [first for first, _, _ in harness.centre.sent]
    assert firsts == [1, 9, 9, 17]
    assert _stored(harness.centre, ledger) == _rows(ledger)
    assert harness.delays == [0.5]  # one retry, jittered within [0, base]


def test_413_halves_the_batch(ledger: Ledger, harness: Harness) -> None:
    _fill(ledger, 12)
    harness.centre.max_entries_accepted = 3
    with harness.uploader(ledger, max_entries=12) as up:
        assert up.drain() is Step.IDLE
    assert [count for _, count, _ in harness.centre.sent] == [12, 6, 3, 3, 3, 3]
    assert _stored(harness.centre, ledger) == _rows(ledger)


def test_413_for_one_entry_raises_the_alarm(ledger: Ledger, harness: Harness) -> None:
    _fill(ledger, 2)
    harness.centre.max_entries_accepted = 0
    with harness.uploader(ledger, max_entries=2) as up:
        assert up.drain() is Step.ALARM
        alarm = up.status().alarm
        assert alarm is not None and alarm[0] == "too_large"


def test_401_stops_uploads_with_an_alarm_until_cleared(ledger: Ledger, harness: Harness) -> None:
    _fill(ledger, 3)
    harness.centre.token = "another"
    with harness.uploader(ledger) as up:
        assert up.drain() is Step.ALARM
        assert up.drain() is Step.ALARM
        assert len(harness.centre.sent) == 0  # refused before reading; and never tried again
        status = up.status()
        assert status.alarm is not None and status.alarm[0] == "unauthorized"
        assert "enrol" in status.alarm[1]
        assert status.last_error is not None and status.backlog == 3
        harness.centre.token = TOKEN
        ledger.sync.clear_alarm()
        assert up.drain() is Step.IDLE
    assert _stored(harness.centre, ledger) == _rows(ledger)


def test_network_errors_and_5xx_back_off_honouring_retry_after(
    ledger: Ledger, harness: Harness
) -> None:
    _fill(ledger, 2)
    later = format_datetime(harness.clock.now() + timedelta(seconds=200), usegmt=True)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    harness.centre.script = [
        refuse,
        lambda _: httpx.Response(503),
        lambda _: httpx.Response(500),
        lambda _: httpx.Response(503, headers={"Retry-After": "120"}),
        lambda _: httpx.Response(503, headers={"Retry-After": later}),
        lambda _: httpx.Response(502),
    ]
    with harness.uploader(ledger, backoff_base_s=1.0, backoff_cap_s=20.0) as up:
        assert up.drain() is Step.IDLE
    # rand 0.5 of min(cap, base·2^n): 0.5, 1, 2; Retry-After 120 s; the date 200 s ahead;
    # then 0.5 of the cap.
    assert harness.delays == [0.5, 1.0, 2.0, 120.0, 200.0, 10.0]
    assert _stored(harness.centre, ledger) == _rows(ledger)
    assert ledger.sync.status().last_error_code is None  # cleared by the success


def test_full_jitter_stays_within_its_ceiling() -> None:
    draws = random.Random(3)  # noqa: S311 - test draws, not secrets
    for attempt in range(30):
        delay = full_jitter(attempt, base_s=1.0, cap_s=300.0, rand=draws.random)
        assert 0.0 <= delay <= min(300.0, 2.0**attempt)
    assert full_jitter(40, base_s=1.0, cap_s=300.0, rand=lambda: 1.0) == 300.0


def test_retry_after_reads_seconds_and_dates() -> None:
    now = FakeClock().now()
    assert retry_after_seconds("17", now) == 17.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_a_cursor_gone_back_is_followed_and_entries_sent_again(
    ledger: Ledger, harness: Harness
) -> None:
    _fill(ledger, 10)
    with harness.uploader(ledger, max_entries=50) as up:
        assert up.drain() is Step.IDLE
        del harness.centre.streams[ledger.stream_id][4:]  # the centre restored an old backup
        _fill(ledger, 3)
        assert up.drain() is Step.IDLE
    assert [first for first, _, _ in harness.centre.sent] == [1, 11, 5]
    assert _stored(harness.centre, ledger) == _rows(ledger)


def test_different_content_at_a_stored_number_raises_the_alarm(
    ledger: Ledger, harness: Harness
) -> None:
    _fill(ledger, 4)
    other = {**_rows(ledger)[0], "reason": "forged"}
    harness.centre.streams[ledger.stream_id] = [other]
    with harness.uploader(ledger) as up:
        assert up.drain() is Step.ALARM
        status = up.status()
    assert status.alarm is not None and status.alarm[0] == "content_conflict"
    assert status.acked_through == 0


def test_a_restart_resumes_from_the_stored_cursor(tmp_path: Path, harness: Harness) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path, gate_id=GATE) as ledger, harness.uploader(ledger) as up:
        _fill(ledger, 6)
        assert up.drain() is Step.IDLE
    with Ledger.open(path, gate_id=GATE) as ledger, harness.uploader(ledger) as up:
        assert up.status().acked_through == 6
        _fill(ledger, 4)
        assert up.drain() is Step.IDLE
        assert _stored(harness.centre, ledger) == _rows(ledger)
    assert [first for first, _, _ in harness.centre.sent] == [1, 7]


def test_scanning_goes_on_while_an_upload_is_in_flight(ledger: Ledger, harness: Harness) -> None:
    _fill(ledger, 5)
    release = threading.Event()
    harness.centre.gate = release
    with harness.uploader(ledger, poll_s=0.01) as up:
        up.start()
        # The first request is held at the centre; the station keeps appending meanwhile.
        _fill(ledger, 15)
        release.set()
        done = threading.Event()
        for _ in range(1000):
            if up.status().backlog == 0:
                done.set()
                break
            up.wake()
            done.wait(0.01)
        assert done.is_set()
        assert up.status().running
        up.stop()
        assert not up.status().running
    assert _stored(harness.centre, ledger) == _rows(ledger)


def test_enrolment_trades_a_code_for_a_token(tmp_path: Path) -> None:
    def centre(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/gates/enrol"
        body = json.loads(request.content)
        if body == {"gate_id": GATE, "code": "123-456"}:
            key = {"kid": "ABCDEFGH", "public_key": base64.b64encode(bytes(32)).decode()}
            return httpx.Response(200, json={"token": "t0k", "centre_key": key})
        if body["code"] == "no-key":
            return httpx.Response(200, json={"token": "t0k"})
        return httpx.Response(403, json={"error": "bad code"})

    transport = httpx.MockTransport(centre)
    enrolment = enrol(BASE, GATE, "123-456", transport=transport)
    assert (enrolment.token, enrolment.centre_kid) == ("t0k", "ABCDEFGH")
    assert enrolment.centre_public_key == bytes(32)
    token = enrolment.token
    with pytest.raises(UplinkError, match="centre key"):
        enrol(BASE, GATE, "no-key", transport=transport)
    with pytest.raises(UplinkError, match="403"):
        enrol(BASE, GATE, "wrong", transport=transport)
    path = token_path(tmp_path / "data")
    assert load_token(path) is None
    save_token(path, token)
    save_token(path, "t1k")  # replaced atomically
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(path) == "t1k"
    path.chmod(0o644)
    with pytest.raises(UplinkError, match="chmod 600"):
        load_token(path)


def test_a_new_ledger_has_an_empty_sync_state(ledger: Ledger) -> None:
    status = ledger.sync.status()
    assert (status.acked_through, status.backlog, status.alarm_code) == (0, 0, None)
    assert status.last_success_at is None and status.centre_list_versions == {}
    _fill(ledger, 3)
    ledger.sync.set_cursor(2)
    assert [row["seq"] for row in ledger.sync.unacked(10)] == [3]
    with pytest.raises(ValueError, match="cursor"):
        ledger.sync.set_cursor(-1)
    assert T_SERVER.tzinfo is UTC


def test_the_centres_checks_find_nothing_wrong_with_uploaded_entries(
    ledger: Ledger, harness: Harness
) -> None:
    checks = pytest.importorskip("sync.store.checks")
    for n in range(4):
        ledger.append(draft(n, personal={"name": "李四"} if n % 2 else None))
    with harness.uploader(ledger) as up:
        assert up.drain() is Step.IDLE
    prev = _rows(ledger)[0]["prev_hash"]
    for entry in _stored(harness.centre, ledger):
        assert (
            checks.entry_problems(entry, gate_id=GATE, stream_id=ledger.stream_id, prev_hash=prev)
            == []
        )
        prev = entry["hash"]


def test_the_next_batch_is_prepared_in_flight_but_sent_only_while_fresh(
    ledger: Ledger, harness: Harness
) -> None:
    for n in range(12):
        ledger.append(draft(n))
    stamps: list[tuple[int, int]] = []  # (first_seq, sent_monotonic_ns) as the centre saw them
    real = harness.centre.handle

    def seen(request: httpx.Request) -> httpx.Response:
        batch = Batch.model_validate_json(gzip.decompress(request.content))
        stamps.append((batch.first_seq, batch.sent_monotonic_ns))
        return real(request)

    harness.centre.handle = seen  # type: ignore[method-assign]
    with harness.uploader(ledger, max_entries=4) as up:
        assert up.step()[0] is Step.SENT  # 1..4; 5..8 is prepared meanwhile
        assert up._prefetch is not None
        up._prefetch[3].result(timeout=10)  # let the preparation finish before time moves
        harness.clock.advance(0.5)
        assert up.step()[0] is Step.SENT  # 5..8 as prepared: stamped before the advance
        harness.clock.advance(30.0)  # a long wait: 9..12, prepared 30 s ago, is stale
        assert up.step()[0] is Step.SENT
        assert up.step()[0] is Step.IDLE
    assert [first for first, _ in stamps] == [1, 5, 9]
    t0 = stamps[0][1]
    assert stamps[1][1] == t0  # prepared at once, while 1..4 was in flight
    assert stamps[2][1] == t0 + int(30.5e9)  # made again when sent
    assert [e["seq"] for e in _stored(harness.centre, ledger)] == list(range(1, 13))
