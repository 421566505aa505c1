"""`cascade batch ...`: offline datasets through the cascade."""

from __future__ import annotations

import sys

import click

from cascade.router.errors import RouterError
from cascade.workers.cli.common import EXIT_USAGE, Context, emit_json, fail, settings_of


@click.group()
def batch() -> None:
    """Push a dataset (JSONL, CSV, Parquet) through the cascade; status, cancel, export."""


def _client(ctx: Context):
    from cascade.workers.client import Cascade

    settings = settings_of(ctx)
    settings.require_database()
    return Cascade(settings=settings)


@batch.command("submit")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="The batch's name; re-running with the same name resumes it.")
@click.option("--id-field", default="id", show_default=True, help="The column holding each row's unique id.")
@click.option("--question-field", default="question", show_default=True)
@click.option("--choices-field", default="choices", show_default=True, help="A list, or a JSON list as text; else columns A, B, C, ...")
@click.option("--answer-field", default="answer", show_default=True, help="Optional gold answer (letter, index or option text).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), help="Default: from the file name.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=256, show_default=True, help="Job ids per queue message.")
@click.option("--start-tier", help="Send the rows straight to this tier (the largest: a reference run for audits).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the batch summary as JSON.")
@click.pass_obj
def batch_submit(ctx, file, name, id_field, question_field, choices_field, answer_field, fmt, chunk_size, start_tier, quiet, as_json):
    """Queue every row of FILE as batch NAME. Idempotent on (batch, row id).

    Memory stays flat whatever the file size. A malformed row (bad JSON, missing question, wrong
    types, not UTF-8) is stored as that row's error and the run goes on; a repeated row id is
    rejected with an error naming both rows.

    \b
    Example:
      cascade batch submit questions.jsonl --name mmlu-test --id-field qid
    """
    from cascade.storage.batches import BatchError
    from cascade.workers.batch.datasets import DatasetError, Fields, estimate_rows
    from cascade.workers.batch.runs import submit_file
    from cascade.workers.cli.progress import progress

    client = _client(ctx)
    try:
        client.settings.require_broker()
        total = estimate_rows(file, fmt)
        fields = Fields(id=id_field, question=question_field, choices=choices_field, answer=answer_field)
        with progress("submitting", total, quiet=quiet or as_json) as advance:
            summary = submit_file(
                client, file, name=name, fields=fields, fmt=fmt, chunk_size=chunk_size, start_tier=start_tier, on_progress=advance
            )
    except (DatasetError, BatchError, RouterError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(summary)
        return
    counts = summary["counts"]
    verb = "resumed" if summary["resumed"] else "submitted"
    click.echo(
        f"batch {summary['name']} {verb}: {summary['rows_read']} rows read, {summary['rows_new']} new jobs, "
        f"{counts['failed']} failed rows, {counts['rejected']} rejected; status {summary['status']}"
    )
    for error in summary["row_errors"]:
        rows = "row" if error["rows"] == 1 else "rows"
        click.echo(f"  {error['rows']:>6} {rows}: {error['error']} (first at {error['first']})", err=True)


@batch.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def batch_status(ctx, name, as_json):
    """Counts and lifecycle state of one batch."""
    from cascade.storage.batches import BatchError
    from cascade.workers.batch.runs import status

    try:
        summary = status(_client(ctx), name)
    except BatchError as exc:
        fail(str(exc))
    if as_json:
        emit_json(summary)
        return
    c = summary["counts"]
    click.echo(
        f"{summary['name']}  {summary['status']}  {summary['progress'] * 100:.1f}%  total {c['total']}  "
        f"completed {c['completed']}  failed {c['failed']}  cancelled {c['cancelled']}  queued {c['queued']}  "
        f"rejected {c['rejected']}"
    )


@batch.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def batch_list(ctx, limit, as_json):
    """Recent batches, newest first."""
    from cascade.workers.batch.runs import list_all

    rows = list_all(_client(ctx), limit)
    if as_json:
        emit_json(rows)
        return
    for s in rows:
        c = s["counts"]
        click.echo(f"{s['name']:<24}{s['status']:<13}{c['total']:>10} rows  {c['completed']:>10} done  {c['failed']:>8} failed")


@batch.command("cancel")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def batch_cancel(ctx, name, as_json):
    """Stop a batch: its queued jobs are cancelled and workers skip them."""
    from cascade.storage.batches import BatchError
    from cascade.workers.batch.runs import cancel

    try:
        summary = cancel(_client(ctx), name)
    except BatchError as exc:
        fail(str(exc))
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"batch {summary['name']} {summary['status']}: {summary['cancelled_now']} queued job(s) cancelled")


@batch.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Default: standard output.")
@click.option("--quiet", is_flag=True)
@click.pass_obj
def batch_export(ctx, name, output, quiet):
    """Write JSONL joined on the row id: answer, final tier, path with P(T)/P(IK), tokens, FLOPs, USD, latency, error."""
    from cascade.storage.batches import BatchError
    from cascade.workers.batch.runs import export, status
    from cascade.workers.cli.progress import progress

    client = _client(ctx)
    try:
        total = status(client, name)["counts"]["total"]
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
        try:
            with progress("exporting", total, quiet=quiet or not output) as advance:
                written = export(client, name, out, on_progress=advance)
        finally:
            if output:
                out.close()
    except BatchError as exc:
        fail(str(exc), EXIT_USAGE)
    if output and not quiet:
        click.echo(f"wrote {written} rows to {output}", err=True)
