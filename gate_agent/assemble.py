"""Building a gate from its config: real devices on a Pi, simulated ones in the demo and tests.

``open_gate`` is the one place that picks adapters; everything it opens it also
closes, the relay locked first. A device that is absent at start (a camera not
plugged in, a thermometer not answering) starts as a fault the guard sees and
is retried; only a gate with no way to signal at all refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from gate_agent.clock import Clock, SystemClock
from gate_agent.config import CameraSection, GateConfig, SignalsSection, ThermometerSection
from gate_agent.core.sensor import SensorSample
from gate_agent.core.temperature import SkinModel
from gate_agent.errors import DeviceError
from gate_agent.events import EventBus
from gate_agent.hardware.camera import FrameSource
from gate_agent.hardware.camera_factory import CameraSpec, open_source
from gate_agent.hardware.decoder import QrDecoder
from gate_agent.hardware.signals import GpioSignals, Signals, SignalSettings, mock_signals
from gate_agent.hardware.simulated import SimulatedCamera
from gate_agent.hardware.thermometer import MLX90614, SimulatedThermometer, Thermometer
from gate_agent.housekeeping import Housekeeper
from gate_agent.ledger import Ledger
from gate_agent.sampler import ThermometerSampler
from gate_agent.station import Lane, Station, StationSettings
from gate_agent.uplink import UplinkSettings, Uploader
from gate_agent.uplink_http import load_token, token_path

log = logging.getLogger(__name__)


@dataclass
class Gate:
    """A running gate's parts, for the CLI, the demo and the tests to drive and inspect."""

    config: GateConfig
    station: Station
    ledger: Ledger
    events: EventBus
    signals: Signals
    sampler: ThermometerSampler | None
    thermometer: Thermometer | None
    cameras: dict[str, FrameSource] = field(default_factory=dict)
    uploader: Uploader | None = None
    housekeeper: Housekeeper | None = None

    def simulated_camera(self, lane: str) -> SimulatedCamera:
        """The simulated camera of a lane (demo and tests)."""
        camera = self.cameras[lane]
        if not isinstance(camera, SimulatedCamera):
            raise TypeError(f"lane {lane} has no simulated camera")
        return camera

    def simulated_thermometer(self) -> SimulatedThermometer:
        """The simulated thermometer (demo and tests)."""
        if not isinstance(self.thermometer, SimulatedThermometer):
            raise TypeError("this gate has no simulated thermometer")
        return self.thermometer


@contextmanager
def open_gate(
    config: GateConfig,
    *,
    clock: Clock | None = None,
    events: EventBus | None = None,
    start: bool = True,
) -> Iterator[Gate]:
    """Open every part of the gate, run it (unless ``start`` is False), close it all after."""
    clock = clock or SystemClock()
    events = events or EventBus()
    with ExitStack() as stack:
        ledger = stack.enter_context(Ledger.open(config.ledger_path, gate_id=config.gate.id))
        cameras = {c.lane: stack.enter_context(open_camera(c)) for c in config.cameras}
        thermometer = make_thermometer(config.thermometer, clock)
        sampler = None
        if thermometer is not None:
            sampler = ThermometerSampler(
                thermometer, clock=clock, sample_hz=config.thermometer.sample_hz
            )
            stack.callback(sampler.close)
        signals = make_signals(config.signals)
        stack.callback(signals.close)  # last in, first out: the lock is shut before all else
        station = Station(
            config,
            ledger,
            lanes=[Lane(c.lane, c.direction, cameras[c.lane]) for c in config.cameras],
            decoder=QrDecoder(),
            signals=signals,
            sampler=sampler,
            clock=clock,
            events=events,
            settings=station_settings(config),
        )
        if sampler is not None:
            sampler.on_change = station.on_sensor_change
        uploader = make_uploader(config, ledger, clock)
        gate = Gate(
            config, station, ledger, events, signals, sampler, thermometer, cameras, uploader
        )
        if uploader is not None:
            stack.callback(uploader.close)
            station.on_commit = uploader.wake
        gate.housekeeper = Housekeeper(ledger, config, clock)
        station.on_disk_full = gate.housekeeper.free_reserve
        if start:
            gate.housekeeper.start()
            stack.callback(gate.housekeeper.stop)
            if uploader is not None:
                uploader.start()
            if sampler is not None:
                sampler.start()
            station.start()
            stack.callback(station.stop)
        yield gate


def make_uploader(config: GateConfig, ledger: Ledger, clock: Clock) -> Uploader | None:
    """The uploader, when sync is on and the gate has enrolled (it has a token)."""
    section = config.sync
    if not section.enabled:
        return None
    token = load_token(token_path(config.gate.data_dir))
    if token is None:
        log.warning("sync is on but the gate has not enrolled: gate-agent sync enrol --code …")
        return None
    settings = UplinkSettings(
        timeout_s=section.timeout_seconds,
        poll_s=section.poll_seconds,
        lists_poll_s=section.lists_poll_seconds,
        backoff_base_s=section.backoff_base_seconds,
        backoff_cap_s=section.backoff_cap_seconds,
        max_entries=section.batch_entries,
    )
    return Uploader(
        ledger,
        base_url=section.server_url,
        gate_id=config.gate.id,
        token=token,
        clock=clock,
        settings=settings,
    )


def station_settings(config: GateConfig) -> StationSettings:
    """The scan loop's settings from the config."""
    return StationSettings(
        debounce_seconds=config.scanner.debounce_seconds,
        open_seconds=config.signals.open_seconds,
        temperature_wait_seconds=config.thermometer.wait_seconds,
        measure=config.thermometer.measure_settings(),
        skin_model=SkinModel(k=config.thermometer.skin_model_k),
    )


def open_camera(section: CameraSection) -> FrameSource:
    """A lane's frame source."""
    spec = CameraSpec.parse(
        section.source,
        width=section.width,
        height=section.height,
        fps=section.fps,
        loop=section.loop,
        interval_s=section.interval_seconds,
        realtime=section.realtime,
        open_timeout_s=section.open_timeout_seconds,
        read_timeout_s=section.read_timeout_seconds,
        command=section.command,
    )
    return open_source(spec)


def make_thermometer(section: ThermometerSection, clock: Clock) -> Thermometer | None:
    """The configured thermometer, or None when the gate has none."""
    if section.kind == "none":
        return None
    if section.kind == "simulated":
        return SimulatedThermometer(
            ambient_celsius=20.0,
            noise_celsius=0.05,
            model=SkinModel(k=section.skin_model_k),
            monotonic_ns=clock.monotonic_ns,
        )

    def connect() -> MLX90614:
        return MLX90614.open(section.i2c_bus, section.i2c_address, attempts=section.read_attempts)

    return Reconnecting(connect)


class Reconnecting:
    """A thermometer opened on first use and reopened after it fails, so a gate starts
    without one and picks it up when it is plugged in or its bus appears."""

    def __init__(self, connect: Callable[[], MLX90614]) -> None:
        self._connect = connect
        self._device: MLX90614 | None = None

    def read(self) -> SensorSample:
        """A sample, opening the device first when needed."""
        if self._device is None:
            self._device = self._connect()
        try:
            return self._device.read()
        except DeviceError:
            self.close()
            raise

    def close(self) -> None:
        """Close the device if it is open."""
        device, self._device = self._device, None
        if device is not None:
            device.close()


def make_signals(section: SignalsSection) -> Signals:
    """GPIO signals, or the same signals on gpiozero's mock pins."""
    settings = SignalSettings(
        green=section.green_pin,
        red=section.red_pin,
        amber=section.amber_pin,
        buzzer=section.buzzer_pin,
        relay=section.relay_pin,
        button=section.button_pin,
        leds_active_high=section.leds_active_high,
        buzzer_active_high=section.buzzer_active_high,
        relay_active_high=section.relay_active_high,
        hold_seconds=section.hold_seconds,
    )
    if section.kind == "mock":
        return mock_signals(settings)
    try:
        return GpioSignals(settings)
    except DeviceError as exc:
        raise DeviceError(
            f'{exc}; to run without lights and relay set [signals] kind = "mock"'
        ) from exc
