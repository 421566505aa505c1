"""A cascade that needs no servers: SQLite in a temporary folder, Celery's in-memory broker and an
in-process worker on the same task and tier queues as production. Used when no broker/database
is configured (the demo, evaluations); with them configured, it uses those and your workers."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

from cascade.storage.migrate import upgrade
from cascade.workers.client import Cascade
from cascade.workers.runtime.app import create_app
from cascade.workers.runtime.scoring import scorer_for
from cascade.workers.runtime.settings import Settings

EMBEDDED_BROKER = "memory://localhost/"


@contextmanager
def running_cascade(settings: Settings, *, echo: Callable[[str], None] = lambda _m: None, prefix: str = "cascade-") -> Iterator[Cascade]:
    """A client on a migrated database, with in-process workers when no broker is configured."""
    with ExitStack() as stack:
        embedded = settings.broker_url is None
        database_url = settings.database_url
        if database_url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))
            database_url = f"sqlite:///{folder}/cascade.sqlite"
        settings = replace(settings, broker_url=settings.broker_url or EMBEDDED_BROKER, database_url=database_url)
        upgrade(database_url)
        app = create_app(settings)
        if embedded:
            for tier in settings.config.tiers:
                echo(f"loading tier {tier.name} ({tier.model}) ...")
                scorer_for(settings.config, tier.name)
            from celery.contrib.testing.worker import start_worker

            stack.enter_context(
                start_worker(app, pool="solo", queues=settings.config.queues, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30.0)
            )
        yield Cascade(settings=settings, app=app)
