"""`cascade serve`: the HTTP service (FastAPI on uvicorn), a producer and reader only."""

from __future__ import annotations

import os

import click

from cascade.workers.cli.common import Context, fail, settings_of

ENV_AUTH = "CASCADE_API_AUTH"
ENV_WEBHOOK_HOSTS = "CASCADE_WEBHOOK_HOSTS"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", "processes", type=int, default=1, show_default=True, help="uvicorn worker processes.")
@click.option("--wait-timeout", type=float, default=60.0, show_default=True,
              help="Seconds a chat completion waits for its answer before a 504 with the job id.")
@click.option("--no-auth", is_flag=True, envvar=ENV_AUTH, help=f"Accept requests without keys (a local trial only) [env {ENV_AUTH}=1].")
@click.option("--no-webhooks", is_flag=True, help="Do not deliver callbacks from this process (another `cascade serve` does).")
@click.option("--webhook-hosts", envvar=ENV_WEBHOOK_HOSTS, help=f"Comma-separated hosts callbacks may name (default: any but this service) [env {ENV_WEBHOOK_HOSTS}].")
@click.option("--log-level", default="info", show_default=True)
@click.pass_obj
def serve(ctx: Context, host, port, processes, wait_timeout, no_auth, no_webhooks, webhook_hosts, log_level) -> None:
    """Serve the cascade over HTTP: OpenAI-compatible /v1/chat/completions, /v1/models, /v1/files
    and /v1/batches; /v1/jobs; /healthz, /readyz, /metrics; the schema at /openapi.json. It never
    loads a model: tier workers answer.

    \b
    Examples:
      cascade keys create my-app --budget-usd 10 --rpm 600
      cascade serve --port 8000
      curl -H "Authorization: Bearer $KEY" localhost:8000/v1/models
    """
    try:
        import uvicorn  # noqa: F401

        from cascade.workers.api.service import ServiceOptions, create_api  # noqa: F401
    except ImportError as exc:
        fail(f"cascade serve needs the api extra ({exc.name} is missing): pip install 'cascade[api]'")
    settings = settings_of(ctx)
    settings.require_database()
    settings.require_broker()
    os.environ.update({
        "CASCADE_SERVE_HOST": host, "CASCADE_SERVE_PORT": str(port), "CASCADE_SERVE_WAIT_S": str(wait_timeout),
        "CASCADE_SERVE_AUTH": "0" if no_auth else "1", "CASCADE_SERVE_WEBHOOKS": "0" if no_webhooks else "1",
        "CASCADE_SERVE_WEBHOOK_HOSTS": webhook_hosts or "",
    })
    if ctx.config_path:
        os.environ["CASCADE_CONFIG"] = ctx.config_path
    for name, value in (("CASCADE_BROKER_URL", settings.broker_url), ("CASCADE_DATABASE_URL", settings.database_url)):
        os.environ[name] = value
    import uvicorn

    uvicorn.run("cascade.workers.api.entry:app_from_environment", factory=True, host=host, port=port, workers=processes,
                log_level=log_level, access_log=False)
