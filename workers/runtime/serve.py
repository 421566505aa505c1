"""Running a tier: load its model before the Celery worker starts, with a sweeper, a heartbeat and a
watchdog beside it."""

from __future__ import annotations

import socket
from collections.abc import Callable

from celery.signals import worker_ready

from cascade.router.config import Tier
from cascade.workers.runtime.app import create_app
from cascade.workers.runtime.health import Heartbeat, Watchdog
from cascade.workers.runtime.scoring import scorer_for
from cascade.workers.runtime.settings import Settings
from cascade.workers.runtime.sweeper import Sweeper
from cascade.workers.runtime.tier_task import activity


def load_tier(settings: Settings, tier_name: str, *, echo: Callable[[str], None] = lambda _m: None) -> Tier:
    """Check the broker and database are configured and load the tier's model (and probe) once."""
    settings.require_broker()
    settings.require_database()
    tier = settings.config.tier(tier_name)
    echo(f"loading tier {tier.name}: {tier.model} ({tier.backend}) ...")
    scorer_for(settings.config, tier.name)
    return tier


def run_worker(settings: Settings, tier: Tier, *, pool: str, concurrency: int, loglevel: str, hostname: str | None) -> int:
    """A Celery worker consuming only `tier`'s queue; returns its exit code when it stops."""
    app = create_app(settings)
    worker = app.Worker(
        queues=[tier.queue],
        pool=pool,
        concurrency=concurrency if pool == "threads" else 1,
        loglevel=loglevel,
        hostname=hostname or f"{tier.name}@{socket.gethostname()}",
        prefetch_multiplier=1,
        without_mingle=True,
        without_gossip=True,
    )
    if settings.heartbeat_file:
        # From the moment the worker consumes: the file's existence means ready, its age means alive.
        worker_ready.connect(lambda **_: Heartbeat(settings.heartbeat_file).start(), weak=False)
    if settings.stall_after_s > 0:
        worker_ready.connect(lambda **_: Watchdog(app, settings, tier, activity).start(), weak=False)
    sweeper = Sweeper(app, settings) if settings.sweep_interval_s > 0 else None
    if sweeper is not None:
        sweeper.start()
    try:
        worker.start()
    finally:
        if sweeper is not None:
            sweeper.stop()
    return worker.exitcode or 0
