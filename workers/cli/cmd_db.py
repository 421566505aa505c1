"""`cascade db ...`: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from cascade.router.errors import RouterError
from cascade.workers.cli.common import Context, fail, settings_of


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def db_upgrade(ctx: Context, revision: str) -> None:
    """Create or migrate the tables (`jobs`, `attempts`, `batches`)."""
    from cascade.storage.migrate import current, upgrade

    settings = settings_of(ctx)
    try:
        url = settings.require_database()
    except RouterError as exc:
        fail(str(exc))
    upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")
