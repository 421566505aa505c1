"""`cascade worker` and `cascade redrive`: serving one tier's queue, and resending stranded jobs."""

from __future__ import annotations

import sys

import click

from cascade.workers.backends import BackendError
from cascade.workers.cli.common import EXIT_FAILED, EXIT_UNAVAILABLE, Context, emit_json, fail, settings_of


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
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    sys.exit(run_worker(settings, tier, pool=pool, concurrency=concurrency, loglevel=loglevel, hostname=hostname))


@click.command()
@click.option("--older-than", type=float, default=300.0, show_default=True, help="Seconds a queued job has not moved.")
@click.option("--dry-run", is_flag=True, help="Only count what would be re-enqueued.")
@click.option("--include-waiting", is_flag=True, help="Also re-send jobs on tiers whose queue still holds messages they may be behind.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def redrive(ctx: Context, older_than: float, dry_run: bool, include_waiting: bool, as_json: bool) -> None:
    """Re-enqueue jobs that are queued in the database but whose messages are gone (e.g. the broker
    restarted empty). Workers do this by themselves every CASCADE_SWEEP_INTERVAL_S; this is the
    same sweep, now, with your age limit.

    A job on a tier whose queue still holds messages may simply be waiting behind them: it is
    counted as waiting and left alone unless --include-waiting. Safe to run at any time: a job
    that is enqueued twice is still answered once.
    """
    from cascade.workers.runtime.app import create_app
    from cascade.workers.runtime.sweeper import sweep

    if older_than < 0:
        fail("--older-than must be >= 0 seconds")
    settings = settings_of(ctx)
    report = sweep(create_app(settings), settings, older_than_s=older_than, dry_run=dry_run, include_waiting=include_waiting)
    if as_json:
        emit_json([t.as_dict() for t in report])
        return
    verb = "would re-enqueue" if dry_run else "re-enqueued"
    for t in report:
        depth = "unknown" if t.queue_depth is None else str(t.queue_depth)
        if t.waiting and not include_waiting:
            note = f"{t.stranded} queued, left alone: {depth} message(s) still in the queue (--include-waiting re-sends them)"
        else:
            note = f"{verb} {t.stranded if dry_run else t.resent} of {t.stranded}"
        click.echo(f"{t.tier:<16} {note}")


@click.command()
@click.option("--heartbeat-max-age", type=click.FloatRange(min=1), help="Also require the worker heartbeat file (CASCADE_HEARTBEAT_FILE) to be at most this many seconds old.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def health(ctx: Context, heartbeat_max_age: float | None, as_json: bool) -> None:
    """Check that the database and the broker answer (and, in a worker's container, that the worker's
    heartbeat is fresh). Exit 0 when all is well, 5 when something is down: a container health check."""
    from cascade.workers.runtime.app import create_app
    from cascade.workers.runtime.health import check_broker, check_database, check_heartbeat

    settings = settings_of(ctx)
    checks = [check_database(settings), check_broker(create_app(settings))]
    if heartbeat_max_age is not None:
        if not settings.heartbeat_file:
            fail("--heartbeat-max-age needs CASCADE_HEARTBEAT_FILE, the file the worker touches")
        checks.append(check_heartbeat(settings.heartbeat_file, heartbeat_max_age))
    if as_json:
        emit_json([vars(c) for c in checks])
    else:
        for c in checks:
            click.echo(f"{c.name:<10} {'ok' if c.ok else 'DOWN':<5} {c.detail}")
    if not all(c.ok for c in checks):
        sys.exit(EXIT_UNAVAILABLE)
