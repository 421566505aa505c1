"""`cascade worker` and `cascade redrive`: serving one tier's queue, and resending stranded jobs."""

from __future__ import annotations

import sys

import click

from cascade.router.errors import RouterError
from cascade.workers.backends import BackendError
from cascade.workers.cli.common import EXIT_FAILED, Context, fail, settings_of


@click.command()
@click.option("--tier", "tier_name", required=True, help="The tier this worker serves (its model is loaded once).")
@click.option("--pool", type=click.Choice(["solo", "threads"]), default="solo", show_default=True, help="solo: one process per GPU.")
@click.option("--concurrency", type=int, default=1, show_default=True, help="Threads, with --pool threads.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default: TIER@host).")
@click.pass_obj
def worker(ctx: Context, tier_name: str, pool: str, concurrency: int, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker bound to one tier's queue.

    The model is loaded before the worker starts, so a model that cannot load stops the worker
    with a message instead of failing jobs. Acks are late and prefetch is 1: a killed worker's
    message is redelivered, and redelivery never duplicates an attempt.
    """
    from cascade.workers.runtime.serve import load_tier, run_worker

    settings = settings_of(ctx)
    try:
        tier = load_tier(settings, tier_name, echo=lambda m: click.echo(m, err=True))
    except RouterError as exc:
        fail(str(exc))
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    sys.exit(run_worker(settings, tier, pool=pool, concurrency=concurrency, loglevel=loglevel, hostname=hostname))


@click.command()
@click.option("--older-than", type=float, default=300.0, show_default=True, help="Seconds a queued job has not moved.")
@click.option("--dry-run", is_flag=True, help="Only count what would be re-enqueued.")
@click.pass_obj
def redrive(ctx: Context, older_than: float, dry_run: bool) -> None:
    """Re-enqueue jobs that are queued in the database but stuck (e.g. the broker restarted empty).

    Safe to run at any time: a job that is enqueued twice is still answered once.
    """
    from cascade.workers.runtime.serve import redrive_stranded

    settings = settings_of(ctx)
    try:
        stuck = redrive_stranded(settings, older_than_s=older_than, dry_run=dry_run)
    except RouterError as exc:
        fail(str(exc))
    verb = "would re-enqueue" if dry_run else "re-enqueued"
    total = sum(len(v) for v in stuck.values())
    detail = ", ".join(f"{t}: {len(v)}" for t, v in stuck.items()) or "none"
    click.echo(f"{verb} {total} job(s) ({detail})")
