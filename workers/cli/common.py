"""What every command shares: the context object, exit codes, failing with one line, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from cascade.router.errors import RouterError
from cascade.workers.runtime.settings import Settings, resolve

EXIT_USAGE = 2  # bad configuration or arguments
EXIT_FAILED = 3  # the work ran and failed (job failed, model did not load)
EXIT_TIMEOUT = 4


class Context:
    """The global options (--config, --broker-url, --database-url); settings resolved on first use."""

    def __init__(self, config: str | None, broker_url: str | None, database_url: str | None):
        self.config_path = config
        self.broker_url = broker_url
        self.database_url = database_url
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve(self.config_path, broker_url=self.broker_url, database_url=self.database_url)
        return self._settings


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: Context) -> Settings:
    """The command's settings, or a one-line error when the config cannot be read."""
    try:
        return ctx.settings
    except RouterError as exc:
        fail(str(exc))


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_unless(quiet: bool):
    """A message printer for progress notes on stderr, silent with --json/--quiet."""
    return (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
