"""`cascade tiers`, `cascade submit`, `cascade status`: the configured tiers and single jobs."""

from __future__ import annotations

import sys
from typing import Any

import click

from cascade.router.errors import RouterError
from cascade.workers.cli.common import EXIT_FAILED, EXIT_TIMEOUT, Context, emit_json, fail, settings_of


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def tiers(ctx: Context, as_json: bool) -> None:
    """List the configured tiers, their queues and thresholds."""
    config = settings_of(ctx).config
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


@click.command()
@click.argument("question")
@click.option("-c", "--choice", "choices", multiple=True, help="An option, in order (repeat: -c A -c B ...). Without options the job is free-form.")
@click.option("--external-id", help="Your id for the question; submitting it again returns the same job.")
@click.option("--gold", multiple=True, help="The correct option's letter; for a free-form job an accepted answer (repeat for aliases).")
@click.option("--grader", type=click.Choice(["contains", "exact", "number"]), help="How a free-form answer is graded against --gold [default: contains].")
@click.option("--max-tokens", type=int, help="Free-form: the most new tokens [default: the tier's max_tokens].")
@click.option("--stop", multiple=True, help="Free-form: a stop sequence (repeat for more).")
@click.option("--wait", is_flag=True, help="Wait for the answer.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def submit(ctx, question, choices, external_id, gold, grader, max_tokens, stop, wait, timeout, as_json) -> None:
    """Queue one job on the first tier and print its job id: a multiple-choice question (with -c
    options) or a free-form prompt (without).

    \b
    Examples:
      cascade submit "Which planet is largest?" -c Mars -c Jupiter -c Venus -c Earth --wait
      cascade submit "Who wrote Middlemarch?" --gold "George Eliot" --max-tokens 16 --wait --json
    """
    from cascade.workers.client import Cascade

    settings = settings_of(ctx)
    settings.require_broker()
    client = Cascade(settings=settings)
    gold_value = (gold[0] if len(gold) == 1 else list(gold)) if gold else None
    if choices and len(gold) > 1:
        fail("--gold: a multiple-choice job has one correct option; give one letter")
    job_id = client.submit(question, list(choices) or None, external_id=external_id, gold=gold_value, grader=grader,
                           max_tokens=max_tokens, stop=list(stop) or None)
    if not wait:
        emit_json({"id": job_id}) if as_json else click.echo(job_id)
        return
    try:
        job = client.result(job_id, timeout=timeout)
    except TimeoutError as exc:
        fail(str(exc), EXIT_TIMEOUT)
    print_job(job, as_json)
    from cascade.storage.models import JobStatus

    if job["status"] == JobStatus.FAILED.value:
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(ctx: Context, job: str, as_json: bool) -> None:
    """Show a job (by id or external id) and its path through the tiers."""
    from cascade.workers.client import Cascade, JobNotFound

    settings = settings_of(ctx)
    try:
        found = Cascade(settings=settings).status(job)
    except (RouterError, JobNotFound) as exc:
        fail(str(exc.args[0] if exc.args else exc))
    print_job(found, as_json)


def print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(job)
        return
    click.echo(f"job {job['id']}  status {job['status']}  {job['kind']}  answer {_short(job['answer'])}  tier {job['final_tier'] or '-'}")
    if job["error"]:
        click.echo(f"error: {job['error']}")
    for step in job["path"]:
        p_ik = "-" if step["p_ik"] is None else f"{step['p_ik']:.3f}"
        p_t = "-" if step["p_t"] is None else f"{step['p_t']:.3f}"
        if step.get("p_t_aggregate"):
            p_t += f" ({step['p_t_aggregate']})"
        click.echo(
            f"  {step['tier']:<10} {step['decision']:<10} answer {_short(step['answer'])}  P(T) {p_t}  "
            f"P(IK) {p_ik}  tokens {step['tokens_in']}+{step['tokens_out']}  {step['flops']:.3g} FLOPs  "
            f"{step['latency_ms']:.0f} ms"
        )
    click.echo(f"  total: {job['tokens_in']}+{job['tokens_out']} tokens, {job['flops']:.3g} FLOPs, ${job['cost_usd']:.6f}")


def _short(text: str | None, limit: int = 60) -> str:
    """An answer on one line: a letter as it is, generated text cut to `limit` characters."""
    if not text:
        return "-"
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...") if len(flat) > 1 else flat
