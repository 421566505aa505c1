"""Training a tier's P(IK) probe and choosing its thresholds on labelled questions: run the tier (and
the next one) over the questions, then search the thresholds with `router.calibration` and, if
asked, write them into the config file."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.calibration import CalibrationData, certify, choose, frontier_search
from cascade.router.config import CascadeConfig, Tier
from cascade.router.cost import call_flops
from cascade.router.errors import ConfigError
from cascade.router.operating_point import frontier
from cascade.router.probe import Probe
from cascade.router.prompts import JobKind
from cascade.router.risk import check_confidence, fallback_reason
from cascade.router.signals import AGGREGATES
from cascade.workers.backends import Backend, create_backend
from cascade.workers.lab.labelled_data import Labelled
from cascade.workers.lab.probe_training import auroc, collect, cross_fitted, train, with_p_t
from cascade.workers.runtime.scoring import TierScorer

# `progress(label, total)` opens a progress display and yields `advance(n)`.
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


def no_progress(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _n: None)


def loaded_backend(config: CascadeConfig, tier_name: str) -> Backend:
    backend = create_backend(config.tier(tier_name))
    backend.load()
    return backend


def candidate_layers(num_layers: int) -> list[int]:
    """The layers `--layer auto` tries: a quarter of the depth to the last layer."""
    return sorted({max(0, round(num_layers * f) - 1) for f in (0.25, 0.5, 0.625, 0.75, 0.875, 1.0)})


def train_tier_probe(
    config: CascadeConfig,
    tier_name: str,
    labelled: Labelled,
    *,
    layer: int | None,
    classifier: str,
    folds: int,
    seed: int,
    progress: Progress = no_progress,
) -> tuple[Probe, list[dict[str, Any]]]:
    """Fit a probe on the tier model's hidden states (layer None: choose it by out-of-fold AUROC)."""
    backend = loaded_backend(config, tier_name)
    layers = candidate_layers(backend.num_layers) if layer is None else [layer]
    aggregate_name = config.tier(tier_name).p_t_aggregate
    with progress("answering" if labelled.kind == JobKind.OPEN.value else "scoring", len(labelled.questions)) as advance:
        features = collect(backend, labelled, layers, on_progress=advance, p_t_aggregate=aggregate_name)
    probe, table = train(features, layers, kind=classifier, model=backend.model_id, data_digest=labelled.digest(), folds=folds, seed=seed)
    probe.metadata["job_kind"] = labelled.kind  # a free-form probe serves a tier as open_probe
    if labelled.kind == JobKind.OPEN.value:
        probe.metadata["p_t_aggregate"] = aggregate_name
    return probe, table


@dataclass(frozen=True)
class Target:
    """What a calibration aims for, checked once for every source of data."""

    target_pd: float | None = None
    max_escalation: float | None = None
    signal: str = "both"
    confidence: float | None = None
    aggregate: str | None = None  # free-form: the P(T) aggregate to fit with; "best": the highest AUROC
    seed: int = 0
    write: bool = False

    def check(self, config: CascadeConfig, tier_name: str) -> Tier:
        """The tier's next tier, once the target makes sense for this config."""
        if (self.target_pd is None) == (self.max_escalation is None):
            raise ConfigError("give one of --target-pd or --max-escalation")
        if self.confidence is not None:
            if self.target_pd is None:
                raise ConfigError("--confidence goes with --target-pd: it certifies the accuracy target")
            check_confidence(self.confidence)
        if self.write and self.signal == "p_t":
            raise ConfigError("--write with --signal p_t would leave the probe's tau_ik in force: remove `probe` from the tier to route on P(T) alone")
        next_tier = config.next_tier(tier_name)
        if next_tier is None:
            raise ConfigError(f"tier {tier_name!r} is the last tier: it always answers, there is nothing to calibrate")
        if self.write and config.source is None:
            raise ConfigError("the config has no file to write to: pass --config FILE")
        return next_tier


def calibrate_tier(
    config: CascadeConfig,
    tier_name: str,
    labelled: Labelled,
    target: Target,
    *,
    progress: Progress = no_progress,
    note: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run the tier and the next one over labelled questions, then choose the thresholds (`choose_for`)."""
    next_tier = target.check(config, tier_name)
    scorer = TierScorer(config, config.tier(tier_name)).load()
    probe = scorer.probes.get(labelled.kind)
    layers = [probe.layer] if probe else []
    verb = "answering" if labelled.kind == JobKind.OPEN.value else "scoring"
    with progress(f"{verb} on {tier_name}", len(labelled.questions)) as advance:
        small = collect(scorer.backend, labelled, layers, on_progress=advance)
    large_backend = loaded_backend(config, next_tier.name)
    with progress(f"{verb} on {next_tier.name}", len(labelled.questions)) as advance:
        large = collect(large_backend, labelled, [], on_progress=advance)
    p_ik = None
    if probe:
        hidden = small[f"hidden_{probe.layer}"]
        if probe.metadata.get("train_hash") == labelled.digest():
            # The probe was fitted on these very questions: score each with a probe that never saw it.
            p_ik = cross_fitted(hidden, small["correct"], probe.kind, seed=target.seed)
            note("calibration questions are the probe's training questions: using out-of-fold P(IK)")
        else:
            p_ik = probe.predict(hidden)
    aggregates = None
    if labelled.kind == JobKind.OPEN.value:
        aggregates = signal_aurocs(small, p_ik)
        chosen = target.aggregate or config.tier(tier_name).p_t_aggregate
        if chosen == "best":
            chosen = max((a for a in aggregates if a != "p_ik"), key=lambda a: aggregates[a] or 0.0)
        small = with_p_t(small, chosen)
    out_tokens = lambda f: f["tokens_out"] if "tokens_out" in f else np.ones(len(f["tokens_in"]))  # noqa: E731
    data = CalibrationData(
        p_t=small["p_t"],
        p_ik=p_ik,
        small_correct=small["correct"].astype(bool),
        large_correct=large["correct"].astype(bool),
        small_flops=np.array([call_flops(scorer.backend.params, t, o) for t, o in zip(small["tokens_in"], out_tokens(small))]),
        large_flops=np.array([call_flops(large_backend.params, t, o) for t, o in zip(large["tokens_in"], out_tokens(large))]),
    )
    if aggregates is None:
        return choose_for(config, tier_name, data, target)
    result = choose_for(config, tier_name, data, target, kind=JobKind.OPEN.value, aggregate_name=chosen)
    result.update(kind=JobKind.OPEN.value, auroc=aggregates, p_t_aggregate=chosen,
                  accuracy={tier_name: round(100 * float(data.small_correct.mean()), 2),
                            next_tier.name: round(100 * float(data.large_correct.mean()), 2)})
    return result


def signal_aurocs(features: dict[str, np.ndarray], p_ik: np.ndarray | None) -> dict[str, float | None]:
    """AUROC of every P(T) aggregate (and of P(IK)) for "this free-form answer is right". The aggregates
    have no fitted parameters, so their AUROC is already out-of-sample; P(IK) is out-of-fold when the
    calibration questions are the probe's own."""
    right = features["correct"].astype(bool)
    table: dict[str, float | None] = {name: auroc(with_p_t(features, name)["p_t"], right) for name in AGGREGATES}
    table["p_ik"] = auroc(p_ik, right) if p_ik is not None else None
    return table


def calibrate_from_production(config: CascadeConfig, tier_name: str, database_url: str, where, target: Target) -> dict[str, Any]:
    """Thresholds fitted on the traffic itself: the jobs the tier escalated (the last tier answered
    them) and the kept ones the live audit shadowed, each standing for the kept jobs it samples.
    Labels are gold answers where jobs have them, else the last tier's answers."""
    from cascade.storage.engine import session_scope
    from cascade.storage.live_audit import kept_count, shadow_labels

    next_tier = target.check(config, tier_name)
    if not config.is_last(next_tier):
        raise ConfigError(f"--from-db calibrates a tier whose next tier is the last one ({config.last.name}); "
                          f"{tier_name} escalates to {next_tier.name}")
    with session_scope(database_url) as session:
        rows = shadow_labels(session, where, tier_name, config.last.name)
        kept = kept_count(session, where, tier_name)
    shadowed = sum(r.kept for r in rows)
    if not shadowed or len(rows) < 20:
        raise ConfigError(
            f"too few shadowed jobs for {tier_name} in this window ({shadowed} kept answers shadowed, {len(rows)} jobs in all): "
            "give the tier a shadow_rate and let traffic run, or widen --since"
        )
    # Graded answers where jobs have a gold (either kind: the grade was written with the attempt);
    # else the last tier's answer stands for the truth.
    graded = [r.correct is not None and r.last_correct is not None for r in rows]
    small_correct = np.array([r.correct if g else (r.answer == r.last_answer) for r, g in zip(rows, graded)], dtype=bool)
    large_correct = np.array([r.last_correct if g else True for r, g in zip(rows, graded)], dtype=bool)
    data = CalibrationData(
        p_t=np.array([r.p_t for r in rows]),
        p_ik=None if any(r.p_ik is None for r in rows) else np.array([r.p_ik for r in rows]),
        small_correct=small_correct,
        large_correct=large_correct,
        small_flops=np.array([r.flops for r in rows]),
        large_flops=np.array([r.last_flops for r in rows]),
        weights=np.array([kept / shadowed if r.kept else 1.0 for r in rows]),
    )
    result = choose_for(config, tier_name, data, target)
    result["production"] = {"jobs": len(rows), "kept_shadowed": shadowed, "kept": kept, "graded": sum(graded)}
    return result


def choose_for(
    config: CascadeConfig, tier_name: str, data: CalibrationData, target: Target, *, kind: str = JobKind.CHOICE.value,
    aggregate_name: str | None = None,
) -> dict[str, Any]:
    """The searched frontier and the chosen thresholds (None when none meets the target), with a
    warning when the cascade would cost more than the next tier alone; written to the config with `write`."""
    next_tier = config.next_tier(tier_name)
    points = frontier_search(data, signal=target.signal)
    result: dict[str, Any] = {"frontier": [p.as_dict() for p in frontier(points)]}
    if target.confidence is None:
        best = choose(points, target_pd=target.target_pd, max_escalation=target.max_escalation)
    else:
        best, certified = certify(data, target_pd=target.target_pd, confidence=target.confidence, signal=target.signal, seed=target.seed)
        result["certified"] = {"confidence": target.confidence, "passed": certified.passed, "tested": certified.tested,
                               "questions": len(data), "questions_needed": certified.needed}
        if best is None:
            result["fallback"] = fallback_reason(certified, target.target_pd, target.confidence, len(data), next_tier.name)
    result["chosen"] = best.as_dict() if best else None
    if best is not None and best.reduced_cc < 0:
        result["warning"] = (
            f"within this target the cascade costs {-best.reduced_cc:.1f}% more compute than {next_tier.name} alone: "
            f"{tier_name} is too rarely right when it is confident; send the questions straight to {next_tier.name} "
            "or relax the target"
        )
    if best is not None and target.write:
        if kind == JobKind.OPEN.value:
            settings = {"open_tau_t": best.tau_t, "open_tau_ik": best.tau_ik, "p_t_aggregate": aggregate_name}
        else:
            settings = {"tau_t": best.tau_t, "tau_ik": best.tau_ik}
        write_thresholds(Path(config.source), tier_name, settings)
        result["written_to"] = str(config.source)
    return result


def write_thresholds(path: Path, tier_name: str, settings: dict[str, float | str | None]) -> None:
    """Set `settings` (tau_t, tau_ik, or the free-form ones) inside the named tier's [[tiers]] table,
    keeping the rest of the file; None values are left as they are."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[tiers]]"] + [len(lines)]
    for begin, end in zip(starts, starts[1:]):
        block = lines[begin:end]
        if not any(re.match(rf'\s*name\s*=\s*"{re.escape(tier_name)}"', line) for line in block):
            continue
        for key, value in settings.items():
            if value is None:
                continue
            pattern = re.compile(rf"\s*{key}\s*=")
            index = next((i for i, line in enumerate(block) if pattern.match(line)), None)
            text = f'{key} = "{value}"\n' if isinstance(value, str) else f"{key} = {value:g}\n"
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
