"""`cascade eval`: benchmark the configured cascade through the real queues and workers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cascade.router.errors import RouterError
from cascade.router.intervals import shown
from cascade.workers.cli.common import EXIT_TIMEOUT, Context, echo_unless, emit_json, fail, settings_of
from cascade.workers.cli.progress import finished_of_total


@click.command("eval")
@click.argument("benchmark", type=click.Choice(["mmlu", "gpqa", "popqa", "nq", "gsm8k"]))
@click.option("--split", help="MMLU split (dev, val, test) [default: test]; popqa/nq/gsm8k: all, or one fixed half: fit or test [default: all].")
@click.option("--data", "data_file", type=click.Path(), help="popqa/nq/gsm8k: the data file (DisambPopQA.csv, NQ-open.dev.jsonl, test.jsonl).")
@click.option("--max-tokens", type=int, help="popqa/nq/gsm8k: new tokens per answer [default: 24; gsm8k 256].")
@click.option("--grader", type=click.Choice(["contains", "exact", "number"]),
              help="popqa/nq/gsm8k: grade with this rule instead of the benchmark's (popqa contains, nq exact, gsm8k number).")
@click.option("--sample", type=int, help="A sample of this many questions, stratified by subject (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", envvar="CASCADE_MMLU_DIR", help="MMLU folder with dev/, val/, test/ [env CASCADE_MMLU_DIR].")
@click.option("--gpqa-zip", envvar="CASCADE_GPQA_ZIP", help="GPQA's dataset.zip, read in memory [env CASCADE_GPQA_ZIP].")
@click.option("--gpqa-password", envvar="CASCADE_GPQA_PASSWORD", help="Default: the password the GPQA authors publish.")
@click.option("--ablate", is_flag=True, help="Also report P(T)-only and P(IK)-only routing on the same answers.")
@click.option("--ablate-tau-t", type=float, help="tau_t of the P(T)-only variant (default: the tier's; see `calibrate --signal p_t`).")
@click.option("--ablate-tau-ik", type=float, help="tau_ik of the P(IK)-only variant (default: the tier's; see `calibrate --signal p_ik`).")
@click.option("--timeout", type=float, default=6 * 3600, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_command(ctx: Context, benchmark, split, data_file, max_tokens, grader, sample, seed, data_dir, gpqa_zip, gpqa_password, ablate, ablate_tau_t,
                 ablate_tau_ik, timeout, as_json):
    """Run a seeded sample of a benchmark through the cascade and through the largest tier alone, and
    report accuracy, PD, reduced compute, AUROC of P(T)/P(IK), share per tier. Free-form benchmarks
    (popqa, nq, gsm8k) add hallucination and abstention rates, PD relative to the largest tier,
    tokens per tier and the AUROC of each P(T) aggregate.

    \b
    Examples:
      cascade eval mmlu --split test --sample 500 --seed 0 --data-dir data/mmlu --ablate
      cascade eval popqa --data data/popqa/DisambPopQA.csv --split test --sample 300 --seed 0
    """
    from cascade.workers.lab.evaluation import run_eval
    from cascade.workers.lab.labelled_data import GPQA_PUBLIC_PASSWORD, gpqa_rows, mmlu_rows
    from cascade.workers.lab.open_datasets import BENCHMARKS, PARTS

    settings = settings_of(ctx)
    if benchmark in BENCHMARKS:
        split = split or "all"
        if split not in PARTS:
            fail(f"--split: {benchmark} has no split {split!r}; use all, fit or test (two fixed disjoint halves)")
        if not data_file:
            fail(f"give --data: the {benchmark} file (see `cascade eval --help`)")
    elif data_file or max_tokens or grader:
        fail(f"--data, --max-tokens and --grader are for popqa, nq and gsm8k; {benchmark} reads --data-dir or --gpqa-zip")
    split = split or "test"
    try:
        if benchmark in BENCHMARKS:
            rows = BENCHMARKS[benchmark].rows(Path(data_file), sample, seed, part=split, max_tokens=max_tokens, grader=grader)
        elif benchmark == "mmlu":
            if not data_dir:
                fail("give --data-dir (a folder with the MMLU dev/, val/, test/ CSVs) or set CASCADE_MMLU_DIR")
            rows = mmlu_rows(Path(data_dir), split, sample, seed)
        else:
            if not gpqa_zip:
                fail("give --gpqa-zip (GPQA's dataset.zip) or set CASCADE_GPQA_ZIP")
            rows = gpqa_rows(Path(gpqa_zip), gpqa_password or GPQA_PUBLIC_PASSWORD, sample, seed)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc))
    name = f"eval-{benchmark}-{'diamond' if benchmark == 'gpqa' else split}-{len(rows)}-s{seed}-{os.getpid()}"
    try:
        with finished_of_total("answering", quiet=as_json) as on_progress:
            result = run_eval(
                settings, rows, name=name, ablate=ablate, ablate_thresholds=(ablate_tau_t, ablate_tau_ik),
                timeout_s=timeout, echo=echo_unless(as_json), on_progress=on_progress,
            )
    except TimeoutError as exc:
        fail(str(exc), EXIT_TIMEOUT)
    except RouterError as exc:
        fail(str(exc))
    if as_json:
        emit_json(result)
        return
    fmt = lambda v, unit="": "-" if v is None else f"{v:.2f}{unit}"  # noqa: E731
    click.echo(f"{len(rows)} questions ({benchmark}, seed {seed}); batches {', '.join(result['batches'])}")
    for tier, acc in result["alone_accuracy"].items():
        a = result["auroc"].get(tier, {})
        click.echo(f"  {tier:<20} alone {acc:.2f}%   AUROC P(T) {fmt(a.get('p_t'))}   P(IK) {fmt(a.get('p_ik'))}")
    click.echo(f"cascade: accuracy {fmt(result['accuracy'], '%')}, PD {fmt(result['pd_pp'])}{shown(result['pd_interval'], signed=True)} pp, "
               f"reduced compute {fmt(result['reduced_cc'], '%')}{shown(result['reduced_cc_interval'])} (95% intervals)")
    click.echo("answered: " + ", ".join(f"{k} {v:.1%}" for k, v in result["answered"].items()))
    if result.get("kind") == "open":
        for tier, rate in result["alone_hallucination_rate"].items():
            aggregates = ", ".join(f"{k} {fmt(v)}" for k, v in result["auroc_aggregates"][tier].items())
            click.echo(f"  {tier:<20} alone hallucination {fmt(rate, '%')}   AUROC {aggregates}")
        click.echo(f"cascade: hallucination {fmt(result['hallucination_rate'], '%')}, abstained {fmt(result['abstention_rate'], '%')}, "
                   f"PD {fmt(result['pd_relative'], '%')} relative")
        click.echo("tokens in/out: " + ", ".join(f"{t} {v['in']:,}/{v['out']:,}" for t, v in result["tokens"].items()))
        click.echo("had the last tier abstained below: " + ", ".join(
            f"{r['abstain_below']:g} -> acc {r['accuracy']:.1f}% halluc. {r['hallucination_rate']:.1f}% abst. {r['abstention_rate']:.1f}%"
            for r in result["abstention_replay"]))
    for label, point in result.get("ablation", {}).items():
        click.echo(f"  {label:<16} acc {point['accuracy']:.2f}%  PD {point['pd_pp']:+.2f}  reduced CC {point['reduced_cc']:.2f}%  escalated {point['escalation_rate']:.1%}")
    click.echo(f"time: {result['timings']['cascade_and_reference_s']} s", file=sys.stderr)
