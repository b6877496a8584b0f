"""The gate's configuration: one strict, typed tree loaded once from gate.toml."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gate_agent.core.camera_names import split_source
from gate_agent.core.policy import GateIdentity, PolicySettings
from gate_agent.core.reasons import Direction, GateMode
from gate_agent.core.temperature import MeasureSettings
from gate_agent.errors import ConfigError

#: Where `gate-agent` looks when neither --config nor GATE_AGENT_CONFIG says otherwise.
DEFAULT_CONFIG_PATH = Path("/etc/gate-agent/gate.toml")

_Ident = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,23}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateSection(_Strict):
    """Who and where this gate is."""

    id: _Ident = Field(description="This gate's id, as the central server knows it")
    compound_id: _Ident = Field(description="The compound (小区) the gate belongs to")
    community_id: _Ident = Field(description="The community (社区) the compound belongs to")
    name: str = Field("", max_length=40, description="A name guards know, e.g. 北门")
    timezone: str = Field("Asia/Shanghai", description='Where "today" starts for the counts')
    lists_max_age_hours: float = Field(
        24, gt=0, le=24 * 30, description="Warn when the centre's lists are older than this"
    )
    data_dir: Path = Field(
        Path("/var/lib/gate-agent"),
        description="Where the ledger lives; relative paths are taken from the config file",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def identity(self) -> GateIdentity:
        """The identity the decision core checks scopes against."""
        return GateIdentity(self.id, self.compound_id, self.community_id)


class PolicySection(_Strict):
    """Screening thresholds and windows; the centre's gate settings override the mode."""

    mode: GateMode = Field(GateMode.SCREENING, description="Mode until the centre sends one")
    fever_celsius: float = Field(37.3, ge=36.5, le=39.0)
    min_plausible_celsius: float = Field(34.0, ge=30.0, le=36.0)
    recheck_window_minutes: float = Field(15, gt=0, le=120)
    passback_window_hours: float = Field(12, ge=0, le=72)
    screen_exits: bool = False

    def settings(self) -> PolicySettings:
        """The decision core's settings."""
        return PolicySettings(
            fever_celsius=self.fever_celsius,
            min_plausible_celsius=self.min_plausible_celsius,
            recheck_window=timedelta(minutes=self.recheck_window_minutes),
            passback_window=timedelta(hours=self.passback_window_hours),
            screen_exits=self.screen_exits,
        )


class CameraSection(_Strict):
    """One camera lane: where its frames come from and which way people pass it."""

    source: str = Field(
        description="v4l2:0, rpicam:, rtsp://…, http://…, file:PATH, folder:PATH or sim:"
    )
    direction: Direction = Direction.IN
    name: str = Field("", max_length=20, description="Shown to guards; default: the direction")
    width: int = Field(1280, ge=160, le=4096)
    height: int = Field(720, ge=120, le=3072)
    fps: float = Field(15.0, gt=0, le=60)
    loop: bool = Field(False, description="file and folder sources: start again at the end")
    interval_seconds: float = Field(1.0, ge=0, le=60, description="folder: time per image")
    realtime: bool = Field(True, description="file: pace frames at the file's own rate")
    open_timeout_seconds: float = Field(5.0, gt=0, le=60, description="IP camera: connecting")
    read_timeout_seconds: float = Field(5.0, gt=0, le=60, description="IP camera: a frame")
    command: tuple[str, ...] = Field((), description="rpicam: replaces the rpicam-vid command")

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        split_source(source)  # a mistyped camera is refused with the rest of the file
        return source

    @property
    def lane(self) -> str:
        """The lane's name."""
        return self.name or self.direction.value


class ScannerSection(_Strict):
    """Turning frames into scans."""

    debounce_seconds: float = Field(
        3.0, ge=0.5, le=60, description="The same pass seen again within this is one scan"
    )


class ThermometerSection(_Strict):
    """The IR thermometer and how its samples become a body temperature."""

    kind: Literal["mlx90614", "simulated", "none"] = "mlx90614"
    i2c_bus: int = Field(1, ge=0, le=20)
    i2c_address: int = Field(0x5A, ge=0x03, le=0x77)
    read_attempts: int = Field(3, ge=1, le=10)
    sample_hz: float = Field(10.0, gt=0, le=50)
    wait_seconds: float = Field(1.0, ge=0, le=3, description="Wait for a forehead this long")
    warmup_seconds: float = Field(60.0, ge=0, le=900)
    ambient_min_celsius: float = Field(10.0, ge=-30, le=30)
    ambient_max_celsius: float = Field(32.0, ge=15, le=45)
    presence_delta_celsius: float = Field(1.0, ge=0.2, le=10)
    skin_model_k: float = Field(0.10, ge=0, lt=0.5, description="Calibrated on site")

    def measure_settings(self) -> MeasureSettings:
        """The measurement core's settings."""
        return MeasureSettings(
            presence_delta_celsius=self.presence_delta_celsius,
            warmup_ns=int(self.warmup_seconds * 1e9),
            ambient_range_celsius=(self.ambient_min_celsius, self.ambient_max_celsius),
        )


class SignalsSection(_Strict):
    """Lights, buzzer, relay and release button (BCM pin numbers)."""

    kind: Literal["gpio", "mock"] = "gpio"
    green_pin: int = Field(17, ge=0, le=27)
    red_pin: int = Field(27, ge=0, le=27)
    amber_pin: int | None = Field(None, ge=0, le=27)
    buzzer_pin: int = Field(22, ge=0, le=27)
    relay_pin: int = Field(23, ge=0, le=27)
    button_pin: int | None = Field(24, ge=0, le=27)
    leds_active_high: bool = True
    buzzer_active_high: bool = True
    relay_active_high: bool = Field(True, description="False for active-low relay boards")
    hold_seconds: float = Field(3.0, gt=0, le=30, description="How long a result stays lit")
    open_seconds: float = Field(5.0, gt=0, le=60, description="How long the lock stays open")


class ConsoleSection(_Strict):
    """The guard console served by the gate on its local network."""

    enabled: bool = True
    host: str = Field("0.0.0.0", description="Listen address; 127.0.0.1 for this Pi only")  # noqa: S104
    port: int = Field(8080, ge=1, le=65535)
    admin_token_file: Path | None = Field(
        None, description="A file holding the admin token (mode 0600); none: no admin sign-in"
    )
    session_hours: float = Field(12.0, gt=0, le=24, description="A sign-in lasts a shift")
    metrics_token_file: Path | None = Field(
        None,
        description="A file holding a token /metrics then asks for (Authorization: Bearer);"
        " none: /metrics is open to the gate's LAN like /healthz",
    )


class SyncSection(_Strict):
    """Uploading entries to the central sync server; the gate enrols first (sync enrol)."""

    enabled: bool = False
    server_url: str = Field(
        "", pattern=r"^(https?://[^\s]+)?$", description="e.g. http://10.1.1.5:8600"
    )
    timeout_seconds: float = Field(30.0, gt=0, le=300)
    poll_seconds: float = Field(5.0, gt=0, le=300, description="How often a quiet gate looks")
    lists_poll_seconds: float = Field(
        60.0, gt=0, le=3600, description="How often the gate asks the centre for newer lists"
    )
    backoff_base_seconds: float = Field(1.0, gt=0, le=60)
    backoff_cap_seconds: float = Field(300.0, gt=0, le=3600)
    batch_entries: int = Field(
        500, ge=1, le=500, description="Entries per batch at most (the centre takes up to 500)"
    )

    @model_validator(mode="after")
    def _url_when_enabled(self) -> SyncSection:
        if self.enabled and not self.server_url:
            raise ValueError("sync.server_url is needed when sync is enabled")
        return self


class RetentionSection(_Strict):
    """How long personal data stays on the gate, and the free space it keeps watch over."""

    days: int = Field(
        28, ge=1, le=3650, description="Purge personal data of entries older than this"
    )
    warn_free_mb: int = Field(
        200, ge=1, le=1_000_000, description="Warn the guard below this much free space"
    )
    reserve_mb: int = Field(
        32, ge=0, le=1024, description="Space held back for entries when the disk fills; 0: none"
    )


class GateConfig(_Strict):
    """The whole gate.toml."""

    gate: GateSection
    policy: PolicySection = PolicySection()
    cameras: tuple[CameraSection, ...] = ()
    scanner: ScannerSection = ScannerSection()
    thermometer: ThermometerSection = ThermometerSection()
    signals: SignalsSection = SignalsSection()
    console: ConsoleSection = ConsoleSection()
    sync: SyncSection = SyncSection()
    retention: RetentionSection = RetentionSection()

    @model_validator(mode="after")
    def _distinct_lanes(self) -> GateConfig:
        names = [c.lane for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera lanes need distinct names, got {names}")
        if self.thermometer.ambient_min_celsius >= self.thermometer.ambient_max_celsius:
            raise ValueError("thermometer.ambient_min_celsius must be below ambient_max_celsius")
        return self

    @property
    def ledger_path(self) -> Path:
        """The ledger's SQLite file."""
        return self.gate.data_dir / "ledger.sqlite3"


def config_path(explicit: str | None) -> Path:
    """The config file to read: --config, then GATE_AGENT_CONFIG, then the default."""
    return Path(explicit or os.environ.get("GATE_AGENT_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: Path) -> GateConfig:
    """Read and validate gate.toml; every problem is a ConfigError naming the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        config = GateConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    base = path.parent.resolve()
    data_dir = config.gate.data_dir
    if not data_dir.is_absolute():
        gate = config.gate.model_copy(update={"data_dir": base / data_dir})
        config = config.model_copy(update={"gate": gate})
    for key in ("admin_token_file", "metrics_token_file"):
        token = getattr(config.console, key)
        if token is not None and not token.is_absolute():
            console = config.console.model_copy(update={key: base / token})
            config = config.model_copy(update={"console": console})
    return config
