"""`cascade audit ...`: routing decisions and costs from the database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from cascade.router.errors import RouterError
from cascade.router.policy import Decision
from cascade.workers.cli.common import Context, emit_json, fail, settings_of


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"cannot read {value!r} as a time: use ISO 8601, e.g. 2026-11-28T09:00")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters(function):
    for option in reversed(
        [
            click.option("--batch", help="Only this batch (name or id)."),
            click.option("--since", help="Only from this time (ISO 8601, UTC unless it says otherwise)."),
            click.option("--until", help="Only before this time."),
            click.option("--tier", help="Only this tier's attempts (jobs: finished on this tier)."),
        ]
    ):
        function = option(function)
    return function


def _context(ctx: Context, batch, since, until, tier):
    from cascade.storage.batches import BatchError
    from cascade.workers.lab.reports import make_filter

    settings = settings_of(ctx)
    try:
        if tier is not None:
            settings.config.tier(tier)  # an unknown tier would match nothing: say so instead
        url = settings.require_database()
        return settings, url, make_filter(url, batch=batch, since=_when(since), until=_when(until), tier=tier)
    except (RouterError, BatchError) as exc:
        fail(str(exc))


@click.group()
def audit() -> None:
    """Audit routing decisions: summaries, job lists, a job's path, plots."""


@audit.command("summary")
@filters
@click.option("--reference-batch", help="A batch of the same rows answered by the largest tier alone: gives PD and exact reduced compute.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_summary(ctx, batch, since, until, tier, reference_batch, as_json):
    """Per tier: answered, escalated, escalation rate, P(T)/P(IK) quantiles; overall: accuracy, PD,
    tokens, FLOPs, USD, reduced compute, latency p50/p95/p99, failures.

    \b
    Example:
      cascade audit summary --batch mmlu-test --reference-batch mmlu-test-70b
    """
    from cascade.storage.batches import BatchError
    from cascade.workers.lab.reports import format_summary, summary

    settings, url, where = _context(ctx, batch, since, until, tier)
    try:
        report = summary(url, settings.config, where, reference_batch=reference_batch)
    except (ValueError, BatchError) as exc:
        fail(str(exc))
    emit_json(report) if as_json else click.echo(format_summary(report))


def _range(value: str | None) -> tuple[float | None, float | None]:
    if not value:
        return (None, None)
    low_text, _, high_text = value.partition(":")
    try:
        low, high = (float(low_text) if low_text else None, float(high_text) if high_text else None)
    except ValueError:
        fail(f"cannot read {value!r} as a range: use LOW:HIGH, e.g. 0.5:0.9 or :0.3")
    if any(v is not None and not 0.0 <= v <= 1.0 for v in (low, high)) or (low is not None and high is not None and low > high):
        fail(f"{value!r} is not a range of probabilities: use LOW:HIGH with 0 <= LOW <= HIGH <= 1, e.g. 0.5:0.9")
    return low, high


@audit.command("jobs")
@filters
@click.option("--decision", type=click.Choice([d.value for d in Decision]))
@click.option("--p-t", "p_t", metavar="LOW:HIGH", help="P(T) range, e.g. 0.8:0.95 or :0.5")
@click.option("--p-ik", "p_ik", metavar="LOW:HIGH", help="P(IK) range")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_jobs(ctx, batch, since, until, tier, decision, p_t, p_ik, limit, as_json):
    """Attempts matching the filters, newest first, with their job's final answer."""
    from cascade.storage import audit as queries
    from cascade.storage.engine import session_scope

    _, url, where = _context(ctx, batch, since, until, tier)
    with session_scope(url) as session:
        rows = queries.list_jobs(session, where, decision=decision, p_t_range=_range(p_t), p_ik_range=_range(p_ik), limit=limit)
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'job':<38}{'tier':<14}{'decision':<11}{'P(T)':>7}{'P(IK)':>7}  final")
    for r in rows:
        p_t_s = "-" if r["p_t"] is None else f"{r['p_t']:.3f}"
        p_ik_s = "-" if r["p_ik"] is None else f"{r['p_ik']:.3f}"
        final = f"{r['final_answer'] or '-'} by {r['final_tier'] or '-'}" + (f" (gold {r['gold']})" if r["gold"] else "")
        click.echo(f"{r['job_id']:<38}{r['tier']:<14}{r['decision']:<11}{p_t_s:>7}{p_ik_s:>7}  {final}")


@audit.command("show")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_show(click_ctx, job, as_json):
    """A job's full path through the tiers (same as `cascade status`)."""
    from cascade.workers.cli.cmd_jobs import status

    click_ctx.invoke(status, job=job, as_json=as_json)


@audit.command("plot")
@filters
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs and report.html.")
@click.option("--reference-batch", help="With --batch: also draw the cost-accuracy frontier of other thresholds.")
@click.pass_obj
def audit_plot(ctx, batch, since, until, tier, out_dir, reference_batch):
    """P(T)/P(IK) histograms split by correct/incorrect, share answered per tier over time, and
    (with a reference batch) the cost-accuracy frontier with the operating point; one HTML page."""
    from cascade.workers.lab.reports import frontier_points, plot

    settings, url, where = _context(ctx, batch, since, until, tier)
    points = None
    if reference_batch:
        if not batch:
            fail("--reference-batch needs --batch")
        points = frontier_points(url, settings.config, where.batch_id, reference_batch)
    written = plot(url, settings.config, where, Path(out_dir), replay_points=points, reference_batch=reference_batch)
    for path in written:
        click.echo(str(path))
