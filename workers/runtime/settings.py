"""Where a process finds its config, broker and database: command-line options, then the environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cascade.router.config import CascadeConfig, load_config
from cascade.router.errors import ConfigError
from cascade.workers.backends import check_config

ENV_CONFIG = "CASCADE_CONFIG"
ENV_BROKER = "CASCADE_BROKER_URL"
ENV_DATABASE = "CASCADE_DATABASE_URL"
ENV_VISIBILITY = "CASCADE_VISIBILITY_TIMEOUT_S"
ENV_SWEEP = "CASCADE_SWEEP_INTERVAL_S"
ENV_REDRIVE_AFTER = "CASCADE_REDRIVE_AFTER_S"
ENV_REMOTE_CONTROL = "CASCADE_REMOTE_CONTROL"  # 1: workers answer Celery's remote control (inspect, shutdown)
ENV_STALL = "CASCADE_STALL_AFTER_S"  # an idle worker whose queue holds messages this long exits, to be restarted
ENV_HEARTBEAT = "CASCADE_HEARTBEAT_FILE"  # a file a worker touches while it lives (container health checks)

# A message a worker holds this long without acking (it died) goes back to its queue. It must be
# longer than the longest a worker holds one: its tier's slowest pass times the passes in a message
# (ids per message / max_batch), plus draining. A 16-question pass of the 1.5B on two CPU cores
# takes ~40 s; an 8B on a GPU well under a second. Raise it for slow CPU tiers and big chunks.
DEFAULT_VISIBILITY_S = 300
DEFAULT_SWEEP_S = 30  # how often one worker looks for jobs whose messages were lost (0: never)


def builtin_path(name: str) -> Path:
    """A file shipped inside the package (built-in configs, probes, sample questions)."""
    return Path(str(resources.files("cascade.workers") / "data" / name))


BUILTIN_CONFIGS = ("qwen", "tiny")
DEFAULT_CONFIG = "qwen"


def names_builtin(chosen: str | Path | None) -> bool:
    """Whether `chosen` (a --config value; None: the default) picks a built-in cascade by name."""
    chosen = str(chosen or DEFAULT_CONFIG)
    return chosen in BUILTIN_CONFIGS and not Path(chosen).exists()


def config_path(chosen: str | Path | None) -> Path:
    """A config file, or one of the built-in cascades by name: `qwen` (the default: packaged
    Qwen2.5-Coder 0.5B -> 1.5B with trained probes) or `tiny` (random weights, no downloads)."""
    if names_builtin(chosen):
        return builtin_path(f"{chosen or DEFAULT_CONFIG}.toml")
    return Path(str(chosen))


def read_config(path: str | Path | None = None) -> CascadeConfig:
    """The cascade config from `path`, CASCADE_CONFIG, or the built-in default; backends checked."""
    return check_config(load_config(config_path(path or os.environ.get(ENV_CONFIG))))


@dataclass(frozen=True)
class Settings:
    config: CascadeConfig
    broker_url: str | None
    database_url: str | None
    visibility_timeout_s: int = DEFAULT_VISIBILITY_S
    sweep_interval_s: float = DEFAULT_SWEEP_S
    redrive_after_s: float = DEFAULT_VISIBILITY_S  # a job queued this long with no message left is re-sent
    # Off by default: anyone who can write to the broker could otherwise stop workers or read their state.
    remote_control: bool = False
    heartbeat_file: str | None = None
    stall_after_s: float = 120.0  # 0: never

    def require_broker(self) -> str:
        if not self.broker_url:
            raise ConfigError(
                f"no broker configured: pass --broker-url or set {ENV_BROKER} (e.g. redis://localhost:6379/0)"
            )
        return self.broker_url

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigError(
                f"no database configured: pass --database-url or set {ENV_DATABASE} "
                "(e.g. postgresql://localhost/cascade)"
            )
        return self.database_url


def resolve(
    config: str | Path | CascadeConfig | None = None,
    *,
    broker_url: str | None = None,
    database_url: str | None = None,
) -> Settings:
    cfg = config if isinstance(config, CascadeConfig) else read_config(config)
    visibility = _seconds(ENV_VISIBILITY, DEFAULT_VISIBILITY_S, minimum=1)
    return Settings(
        config=cfg,
        broker_url=broker_url or os.environ.get(ENV_BROKER) or None,
        database_url=database_url or os.environ.get(ENV_DATABASE) or None,
        visibility_timeout_s=int(visibility),
        sweep_interval_s=_seconds(ENV_SWEEP, DEFAULT_SWEEP_S, minimum=0),
        # By default as long as the visibility timeout: by then a dead worker's message is back.
        redrive_after_s=_seconds(ENV_REDRIVE_AFTER, visibility, minimum=0),
        remote_control=os.environ.get(ENV_REMOTE_CONTROL, "").strip().lower() in ("1", "true", "yes"),
        heartbeat_file=os.environ.get(ENV_HEARTBEAT) or None,
        stall_after_s=_seconds(ENV_STALL, 120.0, minimum=0),
    )


def _seconds(variable: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{variable}: expected a number of seconds >= {minimum:g}, got {raw!r}")
    return value
