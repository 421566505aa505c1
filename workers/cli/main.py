"""The `cascade` command group: global options, and every command registered in one place.

Each command lives in a `cmd_*` module that never imports this one back.
"""

from __future__ import annotations

import click

from cascade.workers.cli import (
    cmd_audit,
    cmd_batch,
    cmd_db,
    cmd_demo,
    cmd_eval,
    cmd_jobs,
    cmd_keys,
    cmd_models,
    cmd_probes,
    cmd_replay,
    cmd_serve,
    cmd_worker,
)
from cascade.workers.cli.common import Context, describe_failure, fail
from cascade.workers.runtime.settings import ENV_BROKER, ENV_CONFIG, ENV_DATABASE


class CascadeGroup(click.Group):
    """Turns the failures any command can meet into one line and a documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            described = describe_failure(exc)
            if described is None:
                raise
            fail(*described)


@click.group(
    cls=CascadeGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  cascade demo                                   # no servers needed (fetches the Qwen pair once)
  cascade --config tiny demo                     # random-weight models: seconds, no downloads
  cascade db upgrade
  cascade worker --tier small                    # one per tier (per GPU)
  cascade submit "2 + 2 = ?" -c 3 -c 4 --wait
  cascade submit "Who wrote Middlemarch?" --wait # free-form
  cascade serve --port 8000                      # the HTTP service (OpenAI-compatible)
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
    """Answer multiple-choice questions and free-form prompts through a cascade of models of increasing size.

    The smallest tier answers first; its answer is kept only when P(T) (and P(IK), where the tier
    has a probe) clear the tier's thresholds, otherwise the question moves to the next tier. Every
    attempt is recorded in the database.
    """
    ctx.obj = Context(config, broker_url, database_url)


for command in (
    cmd_jobs.tiers,
    cmd_worker.worker,
    cmd_jobs.submit,
    cmd_jobs.status,
    cmd_db.db,
    cmd_worker.redrive,
    cmd_worker.health,
    cmd_demo.demo,
    cmd_batch.batch,
    cmd_audit.audit,
    cmd_eval.eval_command,
    cmd_probes.train_pik,
    cmd_probes.calibrate,
    cmd_replay.replay,
    cmd_models.models,
    cmd_serve.serve,
    cmd_keys.keys,
):
    main.add_command(command)
