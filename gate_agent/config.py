"""The gate's configuration: one strict, typed tree loaded once from gate.toml."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate_agent.core.policy import GateIdentity, PolicySettings
from gate_agent.core.reasons import GateMode
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
    data_dir: Path = Field(
        Path("/var/lib/gate-agent"),
        description="Where the ledger lives; relative paths are taken from the config file",
    )

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


class GateConfig(_Strict):
    """The whole gate.toml."""

    gate: GateSection
    policy: PolicySection = PolicySection()

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
    data_dir = config.gate.data_dir
    if not data_dir.is_absolute():
        gate = config.gate.model_copy(update={"data_dir": path.parent.resolve() / data_dir})
        config = config.model_copy(update={"gate": gate})
    return config
