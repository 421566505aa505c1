"""`cascade replay`: what a cascade would have done, from logged per-question results of each model."""

from __future__ import annotations

import click

from cascade.router.errors import TargetUnreachable
from cascade.router.intervals import shown
from cascade.workers.cli.common import EXIT_FAILED, emit_json, fail


def _params(spec: str | None, config_path: str | None, names) -> dict[str, float]:
    from cascade.router.config import load_config, parse_count
    from cascade.router.replay import KNOWN_PARAMS_B

    params = {name: b * 1e9 for name, b in KNOWN_PARAMS_B.items()}
    if config_path:
        for tier in load_config(config_path).tiers:
            if tier.params:
                params[tier.name] = params[tier.model] = tier.params
    for item in filter(None, (spec or "").split(",")):
        name, _, value = item.partition("=")
        if not value:
            fail(f"--params: expected NAME=BILLIONS, got {item!r}")
        params[name.strip()] = parse_count(value.strip() if value.strip()[-1:].isalpha() else f"{value.strip()}B", field_name=f"--params {name}")
    missing = [n for n in names if n not in params]
    if missing:
        fail(f"no parameter count for {', '.join(missing)}: pass --params {missing[0]}=8.03 (billions) or --tiers FILE")
    return params


def _table(results) -> str:
    lines = [f"{'setting':<44}{'Acc':>8}{'PD':>8}{'PD rel.':>9}{'Halluc.':>9}{'Red. CC':>9}{'tokens in':>11}{'tokens out':>11}{'USD':>10}"]
    for r in results:
        d = r.as_dict()
        setting = " -> ".join(r.chain) if len(r.chain) > 1 else f"{r.chain[0]} alone"
        if r.taus:
            setting += f" (tau {'/'.join(f'{t:g}' for t in r.taus)})"
        tokens_in = sum(t["in"] for t in d["tokens"].values())
        tokens_out = sum(t["out"] for t in d["tokens"].values())
        relative = "-" if d["pd_relative"] is None else f"{d['pd_relative']:+.2f}%"
        lines.append(
            f"{setting:<44}{d['accuracy']:>7.2f}%{d['pd_pp']:>+8.2f}{relative:>9}{d['hallucination_rate']:>8.2f}%{d['reduced_cc']:>8.2f}%"
            f"{tokens_in:>11}{tokens_out:>11}{d['usd']:>10.4f}"
        )
    return "\n".join(lines)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--chain", help="Models smallest first, e.g. llama3.1-8b,llama3.1-70b.")
@click.option("--tau-t", "tau_t", help="P(T) threshold, one for all tiers or one per tier (comma-separated).")
@click.option("--params", "params_spec", help="Parameter counts in billions: NAME=8.03,NAME=70.6.")
@click.option("--tiers", "tiers_config", type=click.Path(exists=True), help="Take parameter counts from a tiers config.")
@click.option("--split", help="Replay only rows of this split.")
@click.option("--target-pd", type=float, help="Choose thresholds that save the most compute with PD >= this.")
@click.option("--confidence", type=float, help="With --target-pd: certify that PD >= target holds on new questions with this probability (e.g. 0.9).")
@click.option("--fit-split", help="With --target-pd: fit on this split ...")
@click.option("--eval-split", help="... and report this one.")
@click.option("--search", "do_search", is_flag=True, help="Try every chain (up to --max-tiers) and threshold; print the frontier.")
@click.option("--models", help="With --search: the models to combine (default: all in the log).")
@click.option("--max-tiers", type=int, default=4, show_default=True)
@click.option("--table", "as_table", is_flag=True, help="Paper-style table: each model alone, then the cascade.")
@click.option("--json", "as_json", is_flag=True)
def replay(file, chain, tau_t, params_spec, tiers_config, split, target_pd, confidence, fit_split, eval_split, do_search, models, max_tiers, as_table, as_json):
    """Replay a cascade on logged results, routing on P(T) = exp(logprob).

    \b
    Examples:
      cascade replay mmlu_llama.jsonl --chain llama3.1-8b,llama3.1-70b --tau-t 0.9 --split test
      cascade replay mmlu_llama.jsonl --chain llama3.1-8b,llama3.1-70b --target-pd -1 \\
          --fit-split train --eval-split test
      cascade replay mmlu_llama.jsonl --chain llama3.1-8b,llama3.1-70b --target-pd -1 --confidence 0.9 \\
          --fit-split train --eval-split test
      cascade replay mmlu_llama.jsonl --search --target-pd -1 --split test

    PD and reduced compute come with 95% intervals. With --confidence the thresholds are certified
    (exact binomial bounds tested along a fixed sequence, README "Thresholds you can trust").
    """
    from cascade.router import replay as rp

    if eval_split and target_pd is None:
        fail("--eval-split goes with --target-pd (thresholds fitted on --fit-split, reported on --eval-split); to replay one split at fixed thresholds use --split")
    if confidence is not None:
        if target_pd is None or do_search:
            fail("--confidence goes with --target-pd and --chain (it certifies the fitted thresholds)")
        if not 0.0 < confidence < 1.0:
            fail(f"--confidence must be strictly between 0 and 1 (e.g. 0.9), got {confidence}")
    if tau_t is not None and target_pd is not None:
        fail("give --tau-t (fixed thresholds) or --target-pd (fitted thresholds), not both")
    try:
        if do_search:
            log = rp.load_log(file, split=split)
            names = models.split(",") if models else list(log.models)
            found = rp.search_frontier(log, names, _params(params_spec, tiers_config, names), max_tiers=max_tiers, target_pd=target_pd)
            if as_json:
                emit_json({"points": len(found.points), "frontier": [p.as_dict() for p in found.frontier],
                           "best": found.best.as_dict() if found.best else None})
                return
            click.echo(f"searched {len(found.points)} chain/threshold combinations; cost-accuracy frontier:")
            click.echo(_table(found.frontier))
            if target_pd is not None:
                click.echo(f"\nbest for PD >= {target_pd}:" if found.best else f"\nno configuration reaches PD >= {target_pd}")
                if found.best:
                    click.echo(_table([found.best]))
            return
        if not chain:
            fail("give --chain A,B[,C] (or --search)")
        names = chain.split(",")
        params = _params(params_spec, tiers_config, names)
        if target_pd is not None:
            shown_split = eval_split
            result = rp.fit_then_replay(
                file, names, params, target_pd=target_pd, fit_split=fit_split, eval_split=eval_split, confidence=confidence
            )
        else:
            if tau_t is None:
                fail("give --tau-t X (or --target-pd to choose it)")
            shown_split = split
            taus = _thresholds(tau_t)
            result = rp.replay(rp.load_log(file, split=split), names, taus[0] if len(taus) == 1 else taus, params)
        rows = [rp.replay(rp.load_log(file, split=shown_split), [n], [], params, reference=names[-1]) for n in names] if as_table else []
    except TargetUnreachable as exc:
        fail(str(exc), EXIT_FAILED)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(_table(rows + [result]))
    if not as_table:
        shares = ", ".join(f"{k} {v:.1%}" for k, v in result.answered.items())
        click.echo(f"answered: {shares}")
    click.echo(f"PD {result.pd_pp:+.2f}{shown(result.pd_interval, signed=True)} pp, reduced compute "
               f"{result.reduced_cc:.2f}%{shown(result.reduced_cc_interval)} (95% intervals)")
    if target_pd is not None:
        fit = result.extra["fit"]
        where = f"thresholds fitted on {fit_split or 'all rows'} ({fit['rows']} questions)"
        if "fallback" in fit:
            click.echo(f"{where}: {fit['fallback']}", err=True)
        elif "pd_bound" in fit:
            click.echo(f"{where}: PD {fit['pd_pp']:+.2f}, certified PD >= {fit['pd_bound']:+.2f} at confidence "
                       f"{fit['confidence']} (passed {fit['sequence_passed']} of {fit['sequence_length']} in sequence), "
                       f"reduced CC {fit['reduced_cc']:.2f}%")
        else:
            click.echo(f"{where}: PD {fit['pd_pp']:+.2f} (point estimate), reduced CC {fit['reduced_cc']:.2f}%")


def _thresholds(spec: str) -> list[float]:
    try:
        taus = [float(t) for t in spec.split(",")]
    except ValueError:
        fail(f"--tau-t: expected numbers between 0 and 1 (comma-separated per tier), got {spec!r}")
    if not all(0.0 <= t <= 1.0 for t in taus):
        fail(f"--tau-t: thresholds are probabilities between 0 and 1, got {spec!r}")
    return taus
