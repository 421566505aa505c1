"""What every command shares: the context object, exit codes, failing with one line, JSON output."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from cascade.router.errors import RouterError
from cascade.router.redact import redact
from cascade.workers.runtime.settings import ENV_BROKER, ENV_DATABASE, Settings, resolve

EXIT_USAGE = 2  # bad configuration or arguments
EXIT_FAILED = 3  # the work ran and failed (job failed, model did not load)
EXIT_TIMEOUT = 4
EXIT_UNAVAILABLE = 5  # the database or the broker cannot be reached
EXIT_DRIFT = 6  # `audit drift`: the live accuracy bound breaks the target


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


def describe_failure(exc: BaseException) -> tuple[str, int] | None:
    """One line naming the problem and the fix, and the exit code, for failures any command can meet
    (a service down, a file that cannot be read); None for anything else (a bug: let it show)."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import DBAPIError

    from cascade.storage.batches import BatchError
    from cascade.storage.engine import is_unmigrated, is_unreachable
    from cascade.storage.keys import ApiKeyError
    from cascade.storage.repository import ExternalIdConflict
    from cascade.workers.batch.datasets import DatasetError
    from cascade.workers.runtime.dispatch import BrokerUnavailable

    if isinstance(exc, DBAPIError) and is_unmigrated(exc):
        return "the database has no cascade tables yet: run `cascade db upgrade` first", EXIT_USAGE
    if isinstance(exc, DBAPIError) and is_unreachable(exc):
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"database unreachable ({redact(reason)}): start it, or fix --database-url / {ENV_DATABASE}", EXIT_UNAVAILABLE
    if isinstance(exc, BrokerUnavailable):
        return f"{exc}: start it, or fix --broker-url / {ENV_BROKER}", EXIT_UNAVAILABLE
    if isinstance(exc, (BrokerError, RedisConnectionError)):
        return f"broker unreachable ({redact(str(exc))}): start it, or fix --broker-url / {ENV_BROKER}", EXIT_UNAVAILABLE
    if isinstance(exc, (RouterError, BatchError, DatasetError, ExternalIdConflict, ApiKeyError)):
        return str(exc), EXIT_USAGE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}", EXIT_USAGE
    return None


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from an option (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"cannot read {value!r} as a time: use ISO 8601, e.g. 2026-11-28T09:00")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_unless(quiet: bool):
    """A message printer for progress notes on stderr, silent with --json/--quiet."""
    return (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
