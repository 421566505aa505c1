"""`cascade db ...`: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from cascade.workers.cli.common import Context, settings_of


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def db_upgrade(ctx: Context, revision: str) -> None:
    """Create or migrate the tables (`jobs`, `attempts`, `batches`)."""
    from cascade.storage.migrate import current, upgrade

    url = settings_of(ctx).require_database()
    upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")
