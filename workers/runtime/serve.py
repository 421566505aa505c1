"""Running a tier: load its model before the Celery worker starts, and resend stranded jobs."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

from cascade.router.config import Tier
from cascade.storage.engine import session_scope
from cascade.storage.repository import stranded_jobs
from cascade.workers.runtime.app import create_app
from cascade.workers.runtime.dispatch import send_jobs
from cascade.workers.runtime.scoring import scorer_for
from cascade.workers.runtime.settings import Settings


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
    worker.start()
    return worker.exitcode or 0


def redrive_stranded(settings: Settings, *, older_than_s: float, dry_run: bool = False) -> dict[str, list[uuid.UUID]]:
    """Jobs queued on this config's tiers that have not moved for `older_than_s`, by tier; resent unless dry_run."""
    with session_scope(settings.require_database()) as session:
        stuck = stranded_jobs(session, older_than_s=older_than_s, tiers=[t.name for t in settings.config.tiers])
    if not dry_run and stuck:
        app = create_app(settings)
        for tier_name, ids in stuck.items():
            send_jobs(app, settings.config.tier(tier_name), ids)
    return stuck
