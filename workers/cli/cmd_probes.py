"""`cascade train-pik` and `cascade calibrate`: the P(IK) probe and the thresholds of a tier."""

from __future__ import annotations

from pathlib import Path

import click

from cascade.router.errors import RouterError
from cascade.workers.backends import BackendError
from cascade.workers.cli.common import EXIT_FAILED, Context, echo_unless, emit_json, fail, parse_time, settings_of
from cascade.workers.cli.progress import progress


def _labelled(data: str, limit: int | None, seed: int):
    from cascade.workers.lab.labelled_data import load_labelled

    try:
        return load_labelled(data, limit=limit, seed=seed)
    except (ValueError, OSError) as exc:
        fail(f"--data: {exc}")


@click.command("train-pik")
@click.option("--tier", "tier_name", required=True)
@click.option("--data", required=True, help="MMLU CSV folders (comma-separated), popqa:FILE / nq:FILE / gsm8k:FILE (add :fit or :test "
              "for one fixed half), or a JSONL/CSV/Parquet file with answers (free-form rows: prompt + gold).")
@click.option("--layer", default="auto", show_default=True, help="A layer index, or auto: pick by out-of-fold AUROC.")
@click.option("--classifier", type=click.Choice(["logistic", "mlp"]), default="logistic", show_default=True)
@click.option("--limit", type=int, help="Use a seeded sample of this many questions.")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds that score each layer.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The probe file to write (.npz).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def train_pik(ctx: Context, tier_name, data, layer, classifier, limit, folds, seed, out_path, as_json):
    """Fit a P(IK) probe on the tier model's last-prompt-token hidden state.

    The model's answers and hidden states are cached, so other layers or classifiers refit in
    seconds. The probe file (npz + JSON metadata, no pickle) records the model, layer, training-set
    hash and out-of-fold AUROC; the layer is chosen by that AUROC and the probe is then fitted on all
    the questions.

    Free-form data trains a probe on the tier's own generated answers, graded against the gold; give
    it to the tier as `open_probe`.

    \b
    Examples:
      cascade train-pik --tier small --data ../mmlu/dev,../mmlu/val --layer auto --out probes/small.npz
      cascade train-pik --tier small --data popqa:DisambPopQA.csv:fit --limit 300 --out probes/small-open.npz
    """
    from cascade.workers.lab.calibrate_tier import train_tier_probe

    if layer != "auto" and not layer.isdigit():
        fail(f"--layer: expected a layer index or auto, got {layer!r}")
    settings = settings_of(ctx)
    labelled = _labelled(data, limit, seed)
    try:
        probe, table = train_tier_probe(
            settings.config, tier_name, labelled, layer=None if layer == "auto" else int(layer), classifier=classifier,
            folds=folds, seed=seed, progress=lambda label, total: progress(label, total, quiet=as_json),
        )
    except RouterError as exc:
        fail(str(exc))
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    probe.save(out_path)
    result = {"probe": out_path, "layer": probe.layer, "layers": table, "metadata": probe.metadata}
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'layer':>6}{'P(IK) AUROC':>13}{'P(T) AUROC':>12}   (P(IK) out-of-fold, {probe.metadata['folds']} folds)")
    for row in table:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        click.echo(f"{row['layer']:>6}{fmt(row['cv_auroc']):>13}{fmt(row['p_t_auroc']):>12}")
    click.echo(f"wrote {out_path} (layer {probe.layer}, {classifier}, accuracy {probe.metadata['accuracy']:.1%})")


@click.command()
@click.option("--tier", "tier_name", required=True, help="The tier whose thresholds to choose (not the last).")
@click.option("--data", help="Labelled calibration questions (as for train-pik).")
@click.option("--from-db", is_flag=True, help="Or: fit on production traffic in the database (escalated and shadowed jobs).")
@click.option("--since", help="With --from-db: jobs from this time (ISO 8601).")
@click.option("--until", help="With --from-db: jobs before this time.")
@click.option("--target-pd", type=float, help="Save the most compute with PD >= this (percentage points).")
@click.option("--max-escalation", type=float, help="Or: the most accurate thresholds escalating at most this share.")
@click.option("--limit", type=int)
@click.option("--seed", type=int, default=0)
@click.option("--signal", type=click.Choice(["both", "p_t", "p_ik"]), default="both", show_default=True,
              help="Route on both signals, or on P(T) / P(IK) alone (for ablations).")
@click.option("--confidence", type=float, help="With --target-pd: certify that PD >= target holds on new questions with this probability (e.g. 0.9).")
@click.option("--aggregate", help="Free-form data: the P(T) aggregate to fit with (mean, product, min, q10, q25, first), "
              "or best: the one with the highest AUROC [default: the tier's p_t_aggregate].")
@click.option("--write", is_flag=True, help="Write the chosen tau_t / tau_ik (free-form: open_tau_t, open_tau_ik, p_t_aggregate) "
              "into the config file (your own, not a built-in one).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def calibrate(ctx: Context, tier_name, data, from_db, since, until, target_pd, max_escalation, limit, seed, signal, confidence, aggregate,
              write, as_json):
    """Choose tau_t (and tau_ik, with a probe) on labelled data; print the frontier searched.

    With --from-db the data is the traffic itself: jobs the tier escalated (the last tier answered
    them) and kept jobs the live audit shadowed (tiers with a shadow_rate), weighted for the
    sampling; labels are gold answers where jobs have them, else the last tier's answers.

    With --confidence the choice is certified: PD >= the target holds on new questions from the same
    distribution with at least that probability (exact binomial bounds along a fixed sequence of
    thresholds; README "Thresholds you can trust"). When nothing can be certified it says so, with
    the number of questions the target would need, and recommends sending everything to the next tier.

    Free-form data (popqa:FILE, nq:FILE, gsm8k:FILE, or rows with a prompt and accepted answers)
    fits the tier's free-form thresholds and reports the AUROC of every P(T) aggregate and of P(IK).

    \b
    Examples:
      cascade calibrate --tier small --data mmlu/dev,mmlu/val --target-pd -1.0 --write
      cascade calibrate --tier small --data popqa:DisambPopQA.csv:fit --limit 300 --target-pd -2 --aggregate best
    """
    from cascade.workers.lab.calibrate_tier import Target, calibrate_from_production, calibrate_tier
    from cascade.workers.runtime.settings import config_path, names_builtin

    if bool(data) == bool(from_db):
        fail("give --data FILE (labelled questions) or --from-db (production traffic)")
    if (since or until) and not from_db:
        fail("--since and --until go with --from-db")

    if write and names_builtin(ctx.config_path):
        fail(
            f"--write would change the built-in config inside the installed package: copy it "
            f"(cp {config_path(ctx.config_path)} my-cascade.toml, with its probes/ folder) and pass --config my-cascade.toml"
        )
    settings = settings_of(ctx)
    from cascade.router.signals import is_aggregate

    if aggregate is not None and aggregate != "best" and not is_aggregate(aggregate):
        fail(f"--aggregate: unknown aggregate {aggregate!r}; use mean, product, min, q10, q25, first, qNN or best")
    target = Target(target_pd=target_pd, max_escalation=max_escalation, signal=signal, confidence=confidence, seed=seed, write=write,
                    aggregate=aggregate)
    try:
        if from_db:
            from cascade.storage.audit import AuditFilter

            where = AuditFilter(since=parse_time(since), until=parse_time(until))
            result = calibrate_from_production(settings.config, tier_name, settings.require_database(), where, target)
        else:
            result = calibrate_tier(
                settings.config, tier_name, _labelled(data, limit, seed), target,
                progress=lambda label, total: progress(label, total, quiet=as_json), note=echo_unless(as_json),
            )
    except (RouterError, ValueError) as exc:
        fail(str(exc))
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    best = result["chosen"]
    if as_json:
        emit_json(result)
        if best is None:
            raise SystemExit(EXIT_FAILED)
        return
    if "auroc" in result:
        click.echo("AUROC for a right free-form answer: " + ", ".join(
            f"{name} {'-' if v is None else f'{v:.3f}'}" for name, v in result["auroc"].items()) + f"; fitting with {result['p_t_aggregate']}")
    if best is None:
        click.echo(result.get("fallback", "no thresholds meet the target on this data"))
    else:
        click.echo(f"{'tau_t':>7}{'tau_ik':>8}{'acc':>8}{'PD':>8}{'red. CC':>9}{'escalated':>11}")
        for p in result["frontier"]:
            tau_ik = "-" if p["tau_ik"] is None else f"{p['tau_ik']:.3f}"
            click.echo(f"{p['tau_t']:>7.3f}{tau_ik:>8}{p['accuracy']:>7.2f}%{p['pd_pp']:>+8.2f}{p['reduced_cc']:>8.2f}%{p['escalation_rate']:>10.1%}")
        written = f"; written to {result['written_to']}" if "written_to" in result else ""
        bound = f" (certified PD >= {best['pd_bound']:+.2f} at confidence {confidence})" if "pd_bound" in best else " (point estimate)"
        click.echo(f"chosen: tau_t {best['tau_t']}, tau_ik {best['tau_ik']}: PD {best['pd_pp']:+.2f}{bound}, "
                   f"reduced CC {best['reduced_cc']:.2f}%{written}")
        if "warning" in result:
            click.echo(f"warning: {result['warning']}", err=True)
    if best is None:
        raise SystemExit(EXIT_FAILED)
