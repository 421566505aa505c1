"""Where a process finds its config, broker and database: command-line options, then the environment."""

from __future__ import annotations

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
    visibility_timeout_s: int = 3600

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
    raw_timeout = os.environ.get(ENV_VISIBILITY, "3600")
    try:
        visibility = int(raw_timeout)
    except ValueError:
        raise ConfigError(f"{ENV_VISIBILITY}: expected whole seconds, got {raw_timeout!r}") from None
    return Settings(
        config=cfg,
        broker_url=broker_url or os.environ.get(ENV_BROKER) or None,
        database_url=database_url or os.environ.get(ENV_DATABASE) or None,
        visibility_timeout_s=visibility,
    )
