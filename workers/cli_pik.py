"""`cascade train-pik` and `cascade calibrate`: the P(IK) probe and the thresholds of a tier."""

from __future__ import annotations

import re
from pathlib import Path

import click

from router.errors import RouterError
from workers.cli import EXIT_FAILED, Context, _settings, emit_json, fail, main


def _loaded_backend(settings, tier_name: str):
    from workers.backends import BackendError, create_backend

    try:
        tier = settings.config.tier(tier_name)
        backend = create_backend(tier)
        backend.load()
    except RouterError as exc:
        fail(str(exc))
    except BackendError as exc:
        fail(str(exc), EXIT_FAILED)
    return tier, backend


@main.command("train-pik")
@click.option("--tier", "tier_name", required=True)
@click.option("--data", required=True, help="MMLU CSV folders (comma-separated) or a JSONL/CSV/Parquet file with answers.")
@click.option("--layer", default="auto", show_default=True, help="A layer index, or auto: pick by held-out AUROC.")
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

    \b
    Example:
      cascade train-pik --tier small --data ../mmlu/dev,../mmlu/val --layer auto --out probes/small.npz
    """
    from workers.pik import collect, load_labelled, train
    from workers.progress import progress

    settings = _settings(ctx)
    labelled = load_labelled(data, limit=limit, seed=seed)
    tier, backend = _loaded_backend(settings, tier_name)
    if layer == "auto":
        n = backend.num_layers
        layers = sorted({max(0, round(n * f) - 1) for f in (0.25, 0.5, 0.625, 0.75, 0.875, 1.0)})
    else:
        layers = [int(layer)]
    with progress("scoring", len(labelled.questions), quiet=as_json) as advance:
        features = collect(backend, labelled, layers, on_progress=advance)
    probe, table = train(features, layers, kind=classifier, model=backend.model_id, data_digest=labelled.digest(), folds=folds, seed=seed)
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


@main.command()
@click.option("--tier", "tier_name", required=True, help="The tier whose thresholds to choose (not the last).")
@click.option("--data", required=True, help="Labelled calibration questions (as for train-pik).")
@click.option("--target-pd", type=float, help="Save the most compute with PD >= this (percentage points).")
@click.option("--max-escalation", type=float, help="Or: the most accurate thresholds escalating at most this share.")
@click.option("--limit", type=int)
@click.option("--seed", type=int, default=0)
@click.option("--signal", type=click.Choice(["both", "p_t", "p_ik"]), default="both", show_default=True,
              help="Route on both signals, or on P(T) / P(IK) alone (for ablations).")
@click.option("--write", is_flag=True, help="Write the chosen tau_t / tau_ik into the config file.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def calibrate(ctx: Context, tier_name, data, target_pd, max_escalation, limit, seed, signal, write, as_json):
    """Choose tau_t (and tau_ik, with a probe) on labelled data; print the frontier searched."""
    import numpy as np

    from router.calibration import CalibrationData, choose, frontier_search
    from router.cost import call_flops
    from router.replay import frontier
    from workers.pik import collect, cross_fitted, load_labelled
    from workers.progress import progress
    from workers.scoring import TierScorer

    if (target_pd is None) == (max_escalation is None):
        fail("give one of --target-pd or --max-escalation")
    if write and signal == "p_t":
        fail("--write with --signal p_t would leave the probe's tau_ik in force: remove `probe` from the tier to route on P(T) alone")
    settings = _settings(ctx)
    config = settings.config
    next_tier = config.next_tier(tier_name) if tier_name in [t.name for t in config.tiers] else None
    if next_tier is None:
        fail(f"tier {tier_name!r} is the last tier or unknown: it always answers, there is nothing to calibrate")
    labelled = load_labelled(data, limit=limit, seed=seed)
    scorer = TierScorer(config, config.tier(tier_name)).load()
    layers = [scorer.probe.layer] if scorer.probe else []
    with progress(f"scoring on {tier_name}", len(labelled.questions), quiet=as_json) as advance:
        small = collect(scorer.backend, labelled, layers, on_progress=advance)
    _, large_backend = _loaded_backend(settings, next_tier.name)
    with progress(f"scoring on {next_tier.name}", len(labelled.questions), quiet=as_json) as advance:
        large = collect(large_backend, labelled, [], on_progress=advance)
    p_ik = None
    if scorer.probe:
        hidden = small[f"hidden_{scorer.probe.layer}"]
        if scorer.probe.metadata.get("train_hash") == labelled.digest():
            # The probe was fitted on these very questions: score each with a probe that never saw it.
            try:
                p_ik = cross_fitted(hidden, small["correct"], scorer.probe.kind, seed=seed)
            except ValueError as exc:
                fail(str(exc))
            if not as_json:
                click.echo("calibration questions are the probe's training questions: using out-of-fold P(IK)", err=True)
        else:
            p_ik = scorer.probe.predict(hidden)
    cal = CalibrationData(
        p_t=small["p_t"],
        p_ik=p_ik,
        small_correct=small["correct"].astype(bool),
        large_correct=large["correct"].astype(bool),
        small_flops=np.array([call_flops(scorer.backend.params, t, 1) for t in small["tokens_in"]]),
        large_flops=np.array([call_flops(large_backend.params, t, 1) for t in large["tokens_in"]]),
    )
    try:
        points = frontier_search(cal, signal=signal)
    except ValueError as exc:
        fail(str(exc))
    best = choose(points, target_pd=target_pd, max_escalation=max_escalation)
    result = {"frontier": [p.as_dict() for p in frontier(points)], "chosen": best.as_dict() if best else None}
    if best is not None and best.reduced_cc < 0:
        result["warning"] = (
            f"within this target the cascade costs {-best.reduced_cc:.1f}% more compute than {next_tier.name} alone: "
            f"{tier_name} is too rarely right when it is confident; send the questions straight to {next_tier.name} "
            "or relax the target"
        )
    if best is None:
        emit_json(result) if as_json else click.echo("no thresholds meet the target on this data")
        raise SystemExit(EXIT_FAILED)
    if write:
        if config.source is None:
            fail("the config has no file to write to: pass --config")
        write_thresholds(Path(config.source), tier_name, best.tau_t, best.tau_ik)
        result["written_to"] = str(config.source)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'tau_t':>7}{'tau_ik':>8}{'acc':>8}{'PD':>8}{'red. CC':>9}{'escalated':>11}")
    for p in result["frontier"]:
        tau_ik = "-" if p["tau_ik"] is None else f"{p['tau_ik']:.3f}"
        click.echo(f"{p['tau_t']:>7.3f}{tau_ik:>8}{p['accuracy']:>7.2f}%{p['pd_pp']:>+8.2f}{p['reduced_cc']:>8.2f}%{p['escalation_rate']:>10.1%}")
    c = result["chosen"]
    click.echo(f"chosen: tau_t {c['tau_t']}, tau_ik {c['tau_ik']}: PD {c['pd_pp']:+.2f}, reduced CC {c['reduced_cc']:.2f}%"
               + (f"; written to {result['written_to']}" if write else ""))
    if "warning" in result:
        click.echo(f"warning: {result['warning']}", err=True)


def write_thresholds(path: Path, tier_name: str, tau_t: float, tau_ik: float | None) -> None:
    """Set tau_t (and tau_ik) inside the named tier's [[tiers]] table, keeping the rest of the file."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[tiers]]"] + [len(lines)]
    for begin, end in zip(starts, starts[1:]):
        block = lines[begin:end]
        if not any(re.match(rf'\s*name\s*=\s*"{re.escape(tier_name)}"', line) for line in block):
            continue
        for key, value in (("tau_t", tau_t), ("tau_ik", tau_ik)):
            if value is None:
                continue
            pattern = re.compile(rf"\s*{key}\s*=")
            index = next((i for i, line in enumerate(block) if pattern.match(line)), None)
            text = f"{key} = {value:g}\n"
            if index is None:  # after the table's last setting, before any blank lines
                last = max(i for i, line in enumerate(block) if line.strip())
                if not block[last].endswith("\n"):
                    block[last] += "\n"
                block.insert(last + 1, text)
            else:
                block[index] = text
        lines[begin:end] = block
        path.write_text("".join(lines), encoding="utf-8")
        return
    raise ValueError(f"no [[tiers]] table named {tier_name!r} in {path}")
