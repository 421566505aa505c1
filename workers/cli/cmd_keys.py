"""`cascade keys ...`: API keys of the HTTP service, each with an optional budget and rate."""

from __future__ import annotations

import click

from cascade.workers.cli.common import Context, emit_json, fail, settings_of


@click.group()
def keys() -> None:
    """API keys for `cascade serve` (stored as hashes; a key is shown once, when created)."""


@keys.command("create")
@click.argument("name")
@click.option("--budget-usd", type=float, help="Refuse (429) requests once the key's jobs have cost this much.")
@click.option("--rpm", type=int, help="Requests per minute, per service process (429 beyond).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def create(ctx: Context, name: str, budget_usd: float | None, rpm: int | None, as_json: bool) -> None:
    """Create a key and print it (once: only its hash is stored) with its webhook secret.

    \b
    Example:
      cascade keys create my-app --budget-usd 10 --rpm 600
    """
    from cascade.storage.engine import session_scope
    from cascade.storage.keys import ApiKeyError, create_key

    if budget_usd is not None and budget_usd < 0:
        fail("--budget-usd: a budget is a number of USD >= 0")
    if rpm is not None and rpm < 1:
        fail("--rpm: at least 1 request per minute")
    if not name.strip() or len(name) > 64:
        fail("a key name is 1 to 64 characters")
    try:
        with session_scope(settings_of(ctx).require_database()) as session:
            key, row = create_key(session, name, budget_usd=budget_usd, rpm=rpm)
            secret = row.webhook_secret
    except ApiKeyError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"name": name, "key": key, "webhook_secret": secret, "budget_usd": budget_usd, "rpm": rpm})
        return
    click.echo(f"key {name}: {key}")
    click.echo(f"webhook secret (verifies X-Cascade-Signature): {secret}")
    click.echo("store the key now: it is not shown again")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(ctx: Context, as_json: bool) -> None:
    """Keys with their budgets, rates and spending (never the keys themselves)."""
    from cascade.storage.engine import session_scope
    from cascade.storage.keys import list_keys, spent_usd

    with session_scope(settings_of(ctx).require_database()) as session:
        rows = [{"name": k.name, "prefix": k.prefix, "budget_usd": k.budget_usd, "rpm": k.rpm, "spent_usd": round(spent_usd(session, k.id), 6),
                 "created_at": k.created_at.isoformat(), "revoked": k.revoked_at is not None} for k in list_keys(session)]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'name':<24}{'prefix':<12}{'budget':>10}{'rpm':>8}{'spent':>12}  state")
    for r in rows:
        budget = "-" if r["budget_usd"] is None else f"${r['budget_usd']:.2f}"
        click.echo(f"{r['name']:<24}{r['prefix']:<12}{budget:>10}{r['rpm'] or '-':>8}{'$' + format(r['spent_usd'], '.4f'):>12}  "
                   f"{'revoked' if r['revoked'] else 'active'}")


@keys.command("revoke")
@click.argument("name")
@click.pass_obj
def revoke(ctx: Context, name: str) -> None:
    """Revoke a key: its requests get 401 from then on (within a second)."""
    from cascade.storage.engine import session_scope
    from cascade.storage.keys import ApiKeyError, revoke_key

    try:
        with session_scope(settings_of(ctx).require_database()) as session:
            revoke_key(session, name)
    except ApiKeyError as exc:
        fail(str(exc))
    click.echo(f"key {name} revoked")
