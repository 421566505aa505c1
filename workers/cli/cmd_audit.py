"""`cascade audit ...`: routing decisions and costs from the database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cascade.router.policy import Decision
from cascade.workers.cli.common import EXIT_DRIFT, EXIT_FAILED, Context, emit_json, fail, parse_time, settings_of


def filters(function):
    for option in reversed(
        [
            click.option("--batch", help="Only this batch (name or id)."),
            click.option("--since", help="Only from this time (ISO 8601, UTC unless it says otherwise)."),
            click.option("--until", help="Only before this time."),
            click.option("--tier", help="Only this tier's attempts (jobs: finished on this tier)."),
            click.option("--key", "key_name", help="Only jobs submitted over HTTP with this API key (its name)."),
        ]
    ):
        function = option(function)
    return function


def _context(ctx: Context, batch, since, until, tier, key_name=None):
    from cascade.workers.lab.reports import make_filter

    settings = settings_of(ctx)
    if tier is not None:
        settings.config.tier(tier)  # an unknown tier would match nothing: say so instead
    url = settings.require_database()
    return settings, url, make_filter(url, batch=batch, since=parse_time(since), until=parse_time(until), tier=tier, key=key_name)


@click.group()
def audit() -> None:
    """Audit routing decisions: summaries, job lists, a job's path, plots."""


@audit.command("summary")
@filters
@click.option("--reference-batch", help="A batch of the same rows answered by the largest tier alone: gives PD and exact reduced compute.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_summary(ctx, batch, since, until, tier, key_name, reference_batch, as_json):
    """Per tier: answered, escalated, escalation rate, P(T)/P(IK) quantiles; overall: accuracy, PD,
    tokens, FLOPs, USD, reduced compute, latency p50/p95/p99, failures.

    \b
    Example:
      cascade audit summary --batch mmlu-test --reference-batch mmlu-test-70b
    """
    from cascade.storage.batches import BatchError
    from cascade.workers.lab.reports import format_summary, summary

    settings, url, where = _context(ctx, batch, since, until, tier, key_name)
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
def audit_jobs(ctx, batch, since, until, tier, key_name, decision, p_t, p_ik, limit, as_json):
    """Attempts matching the filters, newest first, with their job's final answer."""
    from cascade.storage import audit as queries
    from cascade.storage.engine import session_scope

    _, url, where = _context(ctx, batch, since, until, tier, key_name)
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
def audit_plot(ctx, batch, since, until, tier, key_name, out_dir, reference_batch):
    """P(T)/P(IK) histograms split by correct/incorrect, share answered per tier over time, and
    (with a reference batch) the cost-accuracy frontier with the operating point; one HTML page."""
    from cascade.workers.lab.reports import frontier_points, plot

    settings, url, where = _context(ctx, batch, since, until, tier, key_name)
    points = None
    if reference_batch:
        if not batch:
            fail("--reference-batch needs --batch")
        points = frontier_points(url, settings.config, where.batch_id, reference_batch)
    written = plot(url, settings.config, where, Path(out_dir), replay_points=points, reference_batch=reference_batch)
    for path in written:
        click.echo(str(path))


@audit.command("live")
@filters
@click.option("--window", "window", help="Also per time window, e.g. 3600 (seconds), 1h or 1d.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_live(ctx, batch, since, until, tier, key_name, window, as_json):
    """What the cascade costs in accuracy right now, from shadow attempts: for each tier with a
    shadow_rate, how often its kept answers agree with the last tier, and its share of the PD against
    the last tier alone (exact where jobs have gold answers, else a bound from disagreement), with
    95% intervals; optionally per time window.

    \b
    Example:
      cascade audit live --since 2026-11-28T00:00 --window 1h
    """
    from cascade.workers.lab.reports import format_live, live

    settings, url, where = _context(ctx, batch, since, until, tier, key_name)
    report = live(url, settings.config, where, window_s=_seconds(window) if window else None)
    emit_json(report) if as_json else click.echo(format_live(report))


@audit.command("drift")
@filters
@click.option("--target-pd", type=float, required=True, help="The promise, in percentage points (e.g. -1).")
@click.option("--confidence", type=float, default=0.9, show_default=True, help="How sure the alarm must be.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_drift(ctx, batch, since, until, tier, key_name, target_pd, confidence, as_json):
    """Exit 6 when the live PD's lower confidence bound breaks the target (for cron and alerting),
    0 when it holds, 3 when there are no shadow attempts to tell.

    \b
    Example:
      cascade audit drift --target-pd -1 --confidence 0.9 --since 2026-11-28T00:00
    """
    from cascade.workers.lab.reports import live

    if not 0.0 < confidence < 1.0:
        fail(f"--confidence must be strictly between 0 and 1 (e.g. 0.9), got {confidence}")
    settings, url, where = _context(ctx, batch, since, until, tier, key_name)
    report = live(url, settings.config, where, confidence=confidence)
    bound = report["pd_bound"]
    verdict = "unknown" if bound is None else ("breaks" if bound < target_pd else "holds")
    if as_json:
        emit_json({"target_pd": target_pd, "confidence": confidence, "pd_pp": report["pd_pp"], "pd_bound": bound, "verdict": verdict})
    elif bound is None:
        click.echo("no shadow attempts in this window: give the tiers before the last a shadow_rate")
    else:
        click.echo(f"live PD {report['pd_pp']:+.2f} pp, >= {bound:+.2f} pp at confidence {confidence}: "
                   f"the target {target_pd:+.2f} {verdict}")
    if verdict == "breaks":
        sys.exit(EXIT_DRIFT)
    if verdict == "unknown":
        sys.exit(EXIT_FAILED)


def _seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        number = float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)
    except (ValueError, IndexError):
        fail(f"--window: expected seconds or a number with s, m, h or d (e.g. 1h), got {value!r}")
    if number <= 0:
        fail(f"--window must be positive, got {value!r}")
    return number
