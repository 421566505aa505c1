"""Where a process finds its config, broker and database: command-line options, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from router.config import CascadeConfig, load_config
from router.errors import ConfigError
from workers.backends import known_backends

ENV_CONFIG = "CASCADE_CONFIG"
ENV_BROKER = "CASCADE_BROKER_URL"
ENV_DATABASE = "CASCADE_DATABASE_URL"
ENV_VISIBILITY = "CASCADE_VISIBILITY_TIMEOUT_S"


def builtin_path(name: str) -> Path:
    """A file shipped inside the package (built-in configs, probes, sample questions)."""
    return Path(str(resources.files("workers") / "data" / name))


BUILTIN_CONFIGS = ("qwen", "tiny")
DEFAULT_CONFIG = "qwen"


def config_path(chosen: str | Path | None) -> Path:
    """A config file, or one of the built-in cascades by name: `qwen` (the default: packaged
    Qwen2.5-Coder 0.5B -> 1.5B with trained probes) or `tiny` (random weights, no downloads)."""
    chosen = str(chosen or DEFAULT_CONFIG)
    if chosen in BUILTIN_CONFIGS and not Path(chosen).exists():
        return builtin_path(f"{chosen}.toml")
    return Path(chosen)


def read_config(path: str | Path | None = None) -> CascadeConfig:
    """The cascade config from `path`, CASCADE_CONFIG, or the built-in default; backends checked."""
    config = load_config(config_path(path or os.environ.get(ENV_CONFIG)))
    known = known_backends()
    for tier in config.tiers:
        if tier.backend not in known:
            raise ConfigError(
                f"tiers[{tier.index}] ({tier.name}).backend: unknown backend {tier.backend!r}; "
                f"choose one of {', '.join(known)}"
            )
    return config


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
