"""The scan loop: frame → decode → verify → temperature → decide → commit → signal → event.

One thread per camera lane reads the newest frame, decodes it and hands each new
pass text to a single worker; the worker is the only writer of ledger entries
(button presses, and later the console, come through the same queue). A green
light follows the commit: when the ledger cannot be written, the gate stays
locked and the guard is told. A bad frame, a missing camera or a failing sensor
becomes a state the guard sees, never a stopped loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gate_agent import desk
from gate_agent.assess import Assessor, Evaluation
from gate_agent.clock import Clock
from gate_agent.config import GateConfig
from gate_agent.core.debounce import Debouncer
from gate_agent.core.passes import VerifiedPass
from gate_agent.core.reasons import Direction, GateMode, Outcome, Reason
from gate_agent.core.temperature import (
    MeasureSettings,
    SkinModel,
    TemperatureReading,
    TemperatureRefusal,
    measure,
)
from gate_agent.errors import ImageError, LedgerError, LedgerFull
from gate_agent.events import EventBus, GateEvent
from gate_agent.hardware.camera import FrameSource, SourceHealth
from gate_agent.hardware.decoder import Decoder
from gate_agent.hardware.signals import Signals
from gate_agent.ledger import EntryDraft, Ledger, StoredEntry
from gate_agent.manual import ConsoleRequest
from gate_agent.records import (
    EntryExtra,
    decision_event,
    entry_draft,
    manual_release_draft,
    manual_release_event,
)
from gate_agent.sampler import SensorState, ThermometerSampler

log = logging.getLogger(__name__)
_NS = 1_000_000_000
_RECENT_SCANS = 200  # scans a handheld reading can still be attached to
_LANE_PAUSE_S = 0.2  # after a lane's frame failed unforeseen, before it reads again


@dataclass(frozen=True)
class Lane:
    """A camera and the direction people pass it in."""

    name: str
    direction: Direction
    source: FrameSource


@dataclass(frozen=True)
class ScanRequest:
    """A pass text seen by a lane (or typed in), waiting for the worker."""

    text: str
    direction: Direction
    lane: str
    seen_ns: int  # when the frame holding it was grabbed


@dataclass(frozen=True)
class ReleaseRequest:
    """The guard pressed the release button."""

    at: datetime
    guard: str


@dataclass(frozen=True)
class ScanResult:
    """What the worker did with a scan: the evaluation, the entry, how long it took."""

    evaluation: Evaluation
    entry: StoredEntry | None  # None when the ledger could not be written
    latency_ms: float  # frame grabbed → decision, the temperature window excluded
    event: GateEvent  # what the console was told


@dataclass
class StationStats:
    """Counts for the console, `doctor` and the metrics."""

    scans: int = 0
    bad_frames: int = 0
    ledger_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Decisions by (outcome, reason code): what the gate refused, and why.
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: True from a ledger failure until the next entry is written: the gate cannot record.
    ledger_failing: bool = False


@dataclass(frozen=True)
class StationSettings:
    """The scan loop's knobs, from gate.toml."""

    debounce_seconds: float = 3.0
    open_seconds: float = 5.0
    temperature_wait_seconds: float = 1.0
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    skin_model: SkinModel = field(default_factory=SkinModel)


class Station:
    """Runs a gate: lanes, the worker, and everything they touch."""

    def __init__(
        self,
        config: GateConfig,
        ledger: Ledger,
        *,
        lanes: Sequence[Lane],
        decoder: Decoder,
        signals: Signals,
        sampler: ThermometerSampler | None,
        clock: Clock,
        events: EventBus,
        settings: StationSettings,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.lanes = tuple(lanes)
        self.decoder = decoder
        self.signals = signals
        self.sampler = sampler
        self.clock = clock
        self.events = events
        self.settings = settings
        self.assessor = Assessor(config, ledger, clock)
        self.stats = StationStats()
        self._requests: queue.Queue[ScanRequest | ReleaseRequest | ConsoleRequest] = queue.Queue(
            maxsize=64
        )
        self._recent: OrderedDict[int, ScanRequest] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Monotonic time of each thread's latest turn (the watchdog's evidence of life).
        self._beats: dict[str, int] = {}
        self._health: dict[str, SourceHealth] = {}
        signals.on_manual_release = self._on_button
        #: Called after each entry is committed (the uploader's wake-up).
        self.on_commit: Callable[[], None] | None = None
        #: Called when the disk is full: frees the reserve (True) so the write is retried.
        self.on_disk_full: Callable[[], bool] | None = None
        #: Called with the seconds each frame took to decode (the metrics' histogram).
        self.on_decoded: Callable[[float], None] | None = None
        #: Called with each scan's result once decided (the metrics' latency histogram).
        self.on_scanned: Callable[[ScanResult], None] | None = None

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and one thread per lane."""
        self.signals.lock()
        self._spawn("worker", self._work)
        for lane in self.lanes:
            self._spawn(f"lane-{lane.name}", self._watch, lane)

    def stop(self) -> None:
        """Stop every thread and leave the gate locked."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.signals.lock()

    @property
    def running(self) -> bool:
        """Whether the threads are up."""
        return bool(self._threads) and not self._stop.is_set()

    def submit(
        self, request: ScanRequest | ReleaseRequest | ConsoleRequest, timeout: float = 1.0
    ) -> None:
        """Queue work for the worker (the lanes, the button, the console)."""
        self._requests.put(request, timeout=timeout)

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        self._beat(name)
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _beat(self, name: str) -> None:
        self._beats[name] = self.clock.monotonic_ns()

    def stalled(self, max_age_s: float) -> list[str]:
        """What keeps the scan loop from being healthy: threads dead or not turned for
        ``max_age_s``. Empty while every thread turns; the watchdog pings only then."""
        if not self.running:
            return ["the scan loop is not running"]
        now = self.clock.monotonic_ns()
        problems = []
        for thread in list(self._threads):
            age_s = (now - self._beats.get(thread.name, now)) / _NS
            if not thread.is_alive():
                problems.append(f"{thread.name} thread ended")
            elif age_s > max_age_s:
                problems.append(f"{thread.name} stuck for {age_s:.0f} s")
        return problems

    # -- lanes -----------------------------------------------------------------------------

    def _watch(self, lane: Lane) -> None:
        debouncer = Debouncer(int(self.settings.debounce_seconds * _NS))
        beat = f"lane-{lane.name}"
        while not self._stop.is_set():
            # A lane whose camera is unplugged still turns (read times out): a fault the
            # guard sees, not a hang. One stuck in a driver or the decoder stops beating.
            self._beat(beat)
            try:
                self._look(lane, debouncer)
            except Exception:
                # Nothing a camera driver or a native decoder raises ends the lane: the
                # frame is counted bad, the camera's state shows on the console, and the
                # lane turns on after a pause (a source failing at once is no busy loop).
                self.stats.bad_frames += 1
                log.exception("lane %s: a frame could not be taken", lane.name)
                self._stop.wait(_LANE_PAUSE_S)

    def _look(self, lane: Lane, debouncer: Debouncer) -> None:
        """Read one frame of ``lane``, decode it and offer each new code to the worker."""
        frame = lane.source.read(timeout_s=0.2)
        self._note_health(lane)
        if frame is None:
            return
        started = self.clock.monotonic_ns()
        try:
            codes = self.decoder.decode(frame.gray)
        except (ImageError, ValueError) as exc:
            # One bad frame never stops the loop.
            self.stats.bad_frames += 1
            log.warning("lane %s: frame %d not decodable: %s", lane.name, frame.seq, exc)
            return
        if self.on_decoded is not None:
            self.on_decoded((self.clock.monotonic_ns() - started) / _NS)
        for code in codes:
            if debouncer.admit(code.text, frame.captured_ns):
                self._offer(ScanRequest(code.text, lane.direction, lane.name, frame.captured_ns))

    def _offer(self, request: ScanRequest) -> None:
        try:
            self._requests.put_nowait(request)
        except queue.Full:
            log.error("scan queue full; dropping a scan at lane %s", request.lane)

    def _note_health(self, lane: Lane) -> None:
        health = lane.source.health()
        old = self._health.get(lane.name)
        if old is None or (old.ok, old.state) != (health.ok, health.state):
            self._health[lane.name] = health
            self._device_event(f"camera:{lane.name}", health.ok, health.state, health.detail)

    def _device_event(self, device: str, ok: bool, state: str, detail: str) -> None:
        data = {"device": device, "ok": ok, "state": state, "detail": detail}
        self.events.publish(GateEvent("device", self.clock.now(), data))

    def on_sensor_change(self, state: SensorState) -> None:
        """Sampler callback: tell the guard when the thermometer fails or recovers."""
        self._device_event("thermometer", state.ok, state.state, state.detail)

    def _on_button(self, at: datetime) -> None:
        try:
            self._requests.put_nowait(ReleaseRequest(at, "release-button"))
        except queue.Full:
            log.error("scan queue full; the release button press was not recorded")

    # -- the worker: the only writer ---------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            self._beat("worker")
            try:
                request = self._requests.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if isinstance(request, ScanRequest):
                    self.process(request)
                elif isinstance(request, ReleaseRequest):
                    self.release(request)
                else:
                    desk.handle(self, request)
            except Exception:
                # The loop outlives any one request; the gate stays locked for this one.
                log.exception("request failed")

    def process(self, request: ScanRequest) -> ScanResult | None:
        """Verify, screen, decide, commit, then signal and tell the console.

        None when the ledger could not be read or written: the gate stays locked.
        """
        self.stats.scans += 1
        try:
            result = self._process(request)
        except (LedgerError, OSError) as exc:
            self.ledger_failed(exc)
            return None
        if self.on_scanned is not None:
            self.on_scanned(result)
        return result

    def _process(self, request: ScanRequest) -> ScanResult:
        evaluation = self.assessor.evaluate(
            request.text, request.direction, temperature=None, now=self.clock.now()
        )
        measuring_ns = 0
        if evaluation.decision.reason is Reason.TEMPERATURE_MISSING and self.sampler:
            started = self.clock.monotonic_ns()
            temperature = self._measure(self.sampler)
            measuring_ns = self.clock.monotonic_ns() - started
            evaluation = self.assessor.evaluate(
                request.text, request.direction, temperature=temperature, now=self.clock.now()
            )
        latency_ms = (self.clock.monotonic_ns() - request.seen_ns - measuring_ns) / 1e6
        result = self.record(evaluation, lane=request.lane, latency_ms=latency_ms)
        if result.entry is not None and isinstance(evaluation.scan, VerifiedPass):
            self._remember(result.entry.seq, request)
        return result

    def record(
        self,
        evaluation: Evaluation,
        *,
        lane: str,
        latency_ms: float = 0.0,
        extra: EntryExtra | None = None,
    ) -> ScanResult:
        """Commit a decision, then (only if it is on disk) signal it, then tell the console."""
        draft = entry_draft(evaluation, self.clock, lane=lane, extra=extra)
        entry = self._commit(draft)
        decision = evaluation.decision
        self.stats.outcomes[decision.outcome.value] += 1
        self.stats.decisions[decision.outcome.value, decision.reason.value] += 1
        if entry is not None:
            self.signals.show(decision.outcome, alert=decision.alert)
            if decision.outcome is Outcome.ALLOW:
                self.signals.release(self.settings.open_seconds)
        event = decision_event(evaluation, entry, lane, latency_ms, self.clock.now(), extra=extra)
        self.events.publish(event)
        return ScanResult(evaluation, entry, latency_ms, event)

    def publish_mode(self, mode: GateMode, by: str) -> None:
        """Tell the console the gate's mode changed."""
        data = {"mode": mode.value, "by": by}
        self.events.publish(GateEvent("mode", self.clock.now(), data))

    def scanned_text(self, seq: int) -> ScanRequest | None:
        """The scan behind a recent entry, so a guard can attach a handheld reading to it."""
        with self._recent_lock:
            return self._recent.get(seq)

    def _remember(self, seq: int, request: ScanRequest) -> None:
        with self._recent_lock:
            self._recent[seq] = request
            while len(self._recent) > _RECENT_SCANS:
                self._recent.popitem(last=False)

    def release(self, request: ReleaseRequest) -> StoredEntry | None:
        """A guard's manual release: recorded first, then the gate opens."""
        entry = self._commit(manual_release_draft(request.at, request.guard, self.clock))
        if entry is not None:
            self.signals.show(Outcome.ALLOW)
            self.signals.release(self.settings.open_seconds)
            self.events.publish(manual_release_event(entry, self.clock.now()))
        return entry

    def _commit(self, draft: EntryDraft) -> StoredEntry | None:
        try:
            entry = self._append(draft)
        except (LedgerError, OSError) as exc:
            self.ledger_failed(exc)
            return None
        self.stats.ledger_failing = False
        if self.on_commit is not None:
            self.on_commit()
        return entry

    def _append(self, draft: EntryDraft) -> StoredEntry:
        try:
            return self.ledger.append(draft)
        except LedgerFull:
            # The failed write left nothing behind (rolled back): free the reserve and
            # write once more, so the gate keeps recording while the guard is warned.
            if self.on_disk_full is None or not self.on_disk_full():
                raise
            log.warning("disk full: the reserve was freed; writing the entry again")
            return self.ledger.append(draft)

    def ledger_failed(self, exc: Exception) -> None:
        """The ledger could not be used: keep the gate locked, alert, tell the console."""
        self.stats.ledger_errors += 1
        self.stats.ledger_failing = True
        log.error("ledger failed, the gate stays locked: %s", exc)
        self.signals.show(Outcome.DENY, alert=True)
        self._device_event("ledger", False, "failed", str(exc))

    def _measure(self, sampler: ThermometerSampler) -> TemperatureReading | TemperatureRefusal:
        """A reading from the samples already taken, waiting up to the set time for more."""
        settings = self.settings
        deadline = self.clock.monotonic_ns() + int(settings.temperature_wait_seconds * _NS)
        window_s = settings.measure.window_ns / _NS
        while True:
            state = sampler.state()
            if not state.ok or sampler.started_ns is None:
                return TemperatureRefusal(Reason.SENSOR_FAULT, state.detail)
            result = measure(
                sampler.recent(window_s),
                sensor_started_ns=sampler.started_ns,
                model=settings.skin_model,
                settings=settings.measure,
            )
            waiting = (
                isinstance(result, TemperatureRefusal)
                and result.reason is Reason.NO_PERSON_AT_SENSOR
                and self.clock.monotonic_ns() < deadline
            )
            if not waiting or not sampler.wait(0.05):
                return result

    def health(self) -> dict[str, SourceHealth]:
        """The last known health of each lane's camera."""
        return dict(self._health)
