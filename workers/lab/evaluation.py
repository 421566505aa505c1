"""`cascade eval` and the demo: rows pushed through the real queues and workers as a batch (and, for
a reference, once more through the largest tier alone), then measured by the audit report: accuracy,
PD, reduced compute, share answered per tier, plus AUROC of P(T) and P(IK) and the P(T)-only /
P(IK)-only ablations replayed on the same per-question results. Free-form benchmarks add the
hallucination and abstention rates, PD relative to the largest tier, tokens per tier and the AUROC
of every P(T) aggregate of the generated tokens.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.calibration import CalibrationData, evaluate
from cascade.router.signals import AGGREGATES, aggregate
from cascade.storage.audit import final_attempts, paired_results, tier_params
from cascade.storage.batches import get_batch
from cascade.storage.engine import session_scope
from cascade.workers.batch import runs as batch_runs
from cascade.workers.client import Cascade
from cascade.workers.lab.embedded import running_cascade
from cascade.workers.lab.probe_training import auroc
from cascade.workers.lab.reports import make_filter, summary
from cascade.workers.runtime.settings import Settings


def reference_name(name: str, settings: Settings) -> str:
    """The batch that answers the same rows on the largest tier alone."""
    return f"{name}-{settings.config.last.name}-alone"


def push_rows(
    client: Cascade,
    rows: list[dict[str, Any]],
    *,
    name: str,
    reference: bool,
    timeout_s: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Submit `rows` as batch `name` (and its reference batch), wait for both, and return the audit
    summary of `name`, against the reference when there is one."""
    config = client.settings.config
    names = [name, reference_name(name, client.settings)] if reference else [name]
    with tempfile.TemporaryDirectory(prefix="cascade-rows-") as folder:
        data = Path(folder) / "questions.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        batch_runs.submit_file(client, data, name=names[0])
        if reference:
            batch_runs.submit_file(client, data, name=names[1], start_tier=config.last.name)
    wait_for_batches(client, names, timeout_s, on_progress)
    url = client.database_url
    where = make_filter(url, batch=name, since=None, until=None, tier=None)
    report = summary(url, config, where, reference_batch=names[1] if reference else None)
    report["batches"] = names
    return report


def wait_for_batches(client: Cascade, names: list[str], timeout_s: float, on_progress: Callable[[int, int], None] | None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = [batch_runs.status(client, n) for n in names]
        if on_progress:
            done = sum(s["counts"]["total"] - s["counts"]["queued"] for s in states)
            on_progress(done, sum(s["counts"]["total"] for s in states))
        if all(s["status"] == "completed" for s in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"batches {', '.join(names)} still running after {timeout_s} s")
        time.sleep(0.2)


def run_eval(
    settings: Settings,
    rows: list[dict[str, Any]],
    *,
    name: str,
    ablate: bool,
    ablate_thresholds: tuple[float | None, float | None] = (None, None),
    timeout_s: float,
    echo: Callable[[str], None] = lambda _m: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    config = settings.config
    timings: dict[str, float] = {}
    with running_cascade(settings, echo=echo, prefix="cascade-eval-") as client:
        started = time.monotonic()
        report = push_rows(client, rows, name=name, reference=True, timeout_s=timeout_s, on_progress=on_progress)
        timings["cascade_and_reference_s"] = round(time.monotonic() - started, 1)
        with session_scope(client.database_url) as session:
            batch = get_batch(session, name).id
            pairs = paired_results(session, batch, get_batch(session, report["batches"][1]).id, config.first.name)
            finals = final_attempts(session, batch)
            params = {t: tier_params(session, t) or 0.0 for t in (config.first.name, config.last.name)}
    result: dict[str, Any] = {
        "questions": len(rows),
        "batches": report["batches"],
        "accuracy": report["accuracy"],
        "largest_accuracy": report["largest_accuracy"],
        "pd_pp": report["pd_pp"],
        "pd_interval": report["pd_interval"],
        "reduced_cc": report["reduced_cc"],
        "reduced_cc_interval": report["reduced_cc_interval"],
        "answered": {t["tier"]: round(t["answered"] / len(rows), 4) for t in report["tiers"]},
        "timings": timings,
    }
    first_p_t = np.array([p[0] or 0.0 for p in pairs])
    first_right = np.array([bool(p[1]) for p in pairs])
    last_p_t = np.array([p[4] or 0.0 for p in pairs])
    last_right = np.array([bool(p[5]) for p in pairs])
    p_ik = None if any(p[8] is None for p in pairs) else np.array([p[8] for p in pairs])
    last_p_ik = None if any(p[9] is None for p in pairs) else np.array([p[9] for p in pairs])
    result["auroc"] = {
        config.first.name: {"p_t": auroc(first_p_t, first_right), "p_ik": auroc(p_ik, first_right) if p_ik is not None else None},
        config.last.name: {"p_t": auroc(last_p_t, last_right), "p_ik": auroc(last_p_ik, last_right) if last_p_ik is not None else None},
    }
    result["alone_accuracy"] = {config.first.name: round(100 * first_right.mean(), 2), config.last.name: round(100 * last_right.mean(), 2)}
    if pairs and pairs[0][10] is not None:  # free-form: generated tokens were kept
        result.update(open_measures(report, pairs, config, p_ik, last_p_ik))
        result["abstention_replay"] = abstention_replay(final_answers(finals, config.last.name))
    if ablate and len(config.tiers) == 2:
        first = config.first
        data = CalibrationData(
            p_t=first_p_t,
            p_ik=p_ik,
            small_correct=first_right,
            large_correct=last_right,
            small_flops=2.0 * params[first.name] * np.array([p[2] + p[3] for p in pairs], dtype=float),
            large_flops=2.0 * params[config.last.name] * np.array([p[6] + p[7] for p in pairs], dtype=float),
        )
        # Each single-signal variant at its own threshold (calibrate --signal p_t / p_ik gives them),
        # by default the tier's.
        alone_t, alone_ik = ablate_thresholds
        variants = {"P(T) and P(IK)": (first.tau_t, first.tau_ik if p_ik is not None else None)}
        variants["P(T) only"] = (first.tau_t if alone_t is None else alone_t, None)
        if p_ik is not None:
            variants["P(IK) only"] = (0.0, first.tau_ik if alone_ik is None else alone_ik)
        result["ablation"] = {label: evaluate(data, t, ik).as_dict() for label, (t, ik) in variants.items()}
    return result


ABSTAIN_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def final_answers(rows: list[tuple], last: str) -> list[tuple[float, bool]]:
    """(P(T), right) per graded job from `final_attempts` rows; P(T) 1.0 for answers a cheaper tier
    kept, which the last tier's abstention never touches."""
    return [(float(p_t or 0.0) if tier == last else 1.0, bool(right)) for p_t, right, tier in rows]


def abstention_replay(finals: list[tuple[float, bool]]) -> list[dict[str, float]]:
    """Accuracy, hallucination and abstention had the last tier abstained below each threshold, on
    the same answers (abstaining never changes routing: it only withholds the last answer)."""
    n = len(finals)
    out = []
    for threshold in ABSTAIN_GRID:
        kept = [right for p_t, right in finals if p_t >= threshold]
        out.append({
            "abstain_below": threshold,
            "accuracy": round(100.0 * sum(kept) / n, 2) if n else None,
            "hallucination_rate": round(100.0 * (len(kept) - sum(kept)) / n, 2) if n else None,
            "abstention_rate": round(100.0 * (n - len(kept)) / n, 2) if n else None,
        })
    return out


def open_measures(report: dict[str, Any], pairs: list[tuple], config, p_ik, last_p_ik) -> dict[str, Any]:
    """What a free-form run adds: hallucination and abstention, relative PD, tokens per tier, and the
    AUROC of each P(T) aggregate (first tier in the cascade, largest tier in the reference run)."""
    first, last = config.first.name, config.last.name
    first_right = np.array([bool(p[1]) for p in pairs])
    last_right = np.array([bool(p[5]) for p in pairs])
    aurocs: dict[str, dict[str, float | None]] = {first: {}, last: {}}
    for name in AGGREGATES:
        aurocs[first][name] = auroc(np.array([aggregate(p[10] or [], name) for p in pairs]), first_right)
        aurocs[last][name] = auroc(np.array([aggregate(p[11] or [], name) for p in pairs]), last_right)
    aurocs[first]["p_ik"] = auroc(p_ik, first_right) if p_ik is not None else None
    aurocs[last]["p_ik"] = auroc(last_p_ik, last_right) if last_p_ik is not None else None
    return {
        "kind": "open",
        "hallucination_rate": report["hallucination_rate"],
        "abstention_rate": report["abstention_rate"],
        "pd_relative": report["pd_relative"],
        "alone_hallucination_rate": {first: round(100 * float((~first_right).mean()), 2),
                                     last: report["largest_hallucination_rate"]},
        "tokens": {t["tier"]: {"in": t["tokens_in"], "out": t["tokens_out"]} for t in report["tiers"]},
        "auroc_aggregates": aurocs,
        "p_t_aggregate": {t.name: t.p_t_aggregate for t in config.tiers},
    }
