"""Offline replay of cascades on logged per-question results of each model, and threshold search.

A log row holds, per model, its answer's correctness, the log-probability of its answer token,
tokens and USD. Replaying a chain routes each question on P(T) = exp(logprob), exactly as the live
cascade would, and scores accuracy, PD against the chain's last model alone, reduced compute,
tokens, USD and the share answered per tier. Everything is vectorised with numpy.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.errors import TargetUnreachable
from cascade.router.intervals import pd_interval, saving_interval
from cascade.router.operating_point import cheapest_within, frontier
from cascade.router.risk import Certified, fallback_reason, fixed_sequence, pd_bound

# Parameter counts of well-known models (billions), so logs of them replay without --params.
KNOWN_PARAMS_B = {
    "llama3.2-1b": 1.24,
    "llama3.2-3b": 3.21,
    "llama3.1-8b": 8.03,
    "llama3.1-70b": 70.6,
    "llama3.3-70b": 70.6,
    "llama3.1-405b": 405.9,
}

# Thresholds tried by the fit and the search: a coarse sweep plus the fine steps near 1 where
# confident small models sit.
DEFAULT_GRID = tuple(
    sorted(set(np.round(np.linspace(0.0, 1.0, 21), 3)) | {0.92, 0.97, 0.98, 0.99, 0.995, 0.999})
)


@dataclass
class ModelLog:
    """One model's logged results, aligned with the rows of a `ReplayLog`."""

    correct: np.ndarray  # bool
    p_t: np.ndarray  # exp(logprob); 0 where the log had none (such answers always escalate)
    tokens_in: np.ndarray
    tokens_out: np.ndarray
    usd: np.ndarray
    answered: np.ndarray | None = None  # bool: gave a non-empty answer (None: every question answered)

    def hallucinated(self) -> np.ndarray:
        """Answered, and wrong (open-ended QA's hallucination)."""
        gave = np.ones(len(self.correct), dtype=bool) if self.answered is None else self.answered
        return gave & ~self.correct


@dataclass
class ReplayLog:
    ids: list[str]
    models: dict[str, ModelLog]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> ReplayLog:
        """The log restricted to the given row indices."""
        return ReplayLog(
            ids=[self.ids[i] for i in rows],
            models={
                name: ModelLog(m.correct[rows], m.p_t[rows], m.tokens_in[rows], m.tokens_out[rows], m.usd[rows],
                               None if m.answered is None else m.answered[rows])
                for name, m in self.models.items()
            },
        )





def load_log(path: str | Path, split: str | None = None) -> ReplayLog:
    """Read a replay JSONL file (optionally one split); every row must carry every model."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {number} is not JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("models"), dict) or not row["models"]:
                    raise ValueError(
                        f"{path}: line {number} has no 'models' object; a replay log holds one JSON object per question "
                        'with per-model results, e.g. {"id": ..., "models": {"NAME": {"correct": true, "logprob": -0.1}}}'
                    )
                if split is None or row.get("split") == split:
                    rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows" + (f" in split {split!r}" if split else ""))
    names = list(rows[0]["models"])
    for row in rows:
        if set(row["models"]) != set(names):
            raise ValueError(f"{path}: question {row.get('id')!r} has models {sorted(row['models'])}, not {sorted(names)}")
    models = {}
    for name in names:
        entries = [r["models"][name] for r in rows]
        models[name] = ModelLog(
            correct=np.array([bool(e["correct"]) for e in entries]),
            p_t=np.array([0.0 if e.get("logprob") is None else float(np.exp(e["logprob"])) for e in entries]),
            tokens_in=np.array([int(e.get("tokens_in") or 0) for e in entries]),
            tokens_out=np.array([int(e.get("tokens_out") or 0) for e in entries]),
            usd=np.array([float(e.get("cost_usd") or 0.0) for e in entries]),
            answered=np.array([str(e.get("answer") or "").strip() != "" if "answer" in e else True for e in entries]),
        )
    return ReplayLog(ids=[str(r.get("id", i)) for i, r in enumerate(rows)], models=models)


@dataclass
class Outcome:
    """Per-question result of routing a chain: which tier answered and what it cost."""

    answered_by: np.ndarray  # index into the chain
    correct: np.ndarray
    flops: np.ndarray


def route(confident: Sequence[np.ndarray], correct: Sequence[np.ndarray], flops: Sequence[np.ndarray]) -> Outcome:
    """The cascade rule on arrays: the first tier whose answer is confident keeps it; the last always answers.

    `confident[k]` says whether tier k would keep its answer (ignored for the last tier); `flops[k]`
    is what tier k's call costs. A question pays for every tier it visits.
    """
    n_tiers = len(correct)
    n = len(correct[0])
    answered_by = np.full(n, n_tiers - 1)
    open_ = np.ones(n, dtype=bool)
    for k in range(n_tiers - 1):
        keep = open_ & confident[k]
        answered_by[keep] = k
        open_ &= ~keep
    stacked_correct = np.stack(correct)
    visited = np.arange(n_tiers)[:, None] <= answered_by[None, :]
    spent = (np.stack(flops) * visited).sum(axis=0)
    return Outcome(answered_by=answered_by, correct=stacked_correct[answered_by, np.arange(n)], flops=spent)


@dataclass
class ReplayResult:
    chain: list[str]
    taus: list[float]
    accuracy: float  # percent
    largest_accuracy: float  # the chain's last model alone, percent
    pd_pp: float
    reduced_cc: float  # percent, against the last model answering everything
    answered: dict[str, float]  # share of questions answered by each model
    tokens: dict[str, dict[str, int]]  # per model: in / out over the calls it made
    usd: float
    largest_usd: float
    pd_interval: tuple[float, float] | None = None  # 95%, percentage points
    reduced_cc_interval: tuple[float, float] | None = None  # 95%, percent
    hallucination_rate: float | None = None  # percent: answered and wrong
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pd_relative(self) -> float | None:
        """PD as a share of the largest model's accuracy, percent (the paper's measure for open-ended QA)."""
        return 100.0 * self.pd_pp / self.largest_accuracy if self.largest_accuracy else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "tau_t": dict(zip(self.chain[:-1], self.taus)),
            "accuracy": round(float(self.accuracy), 2),
            "largest_accuracy": round(float(self.largest_accuracy), 2),
            "pd_pp": round(float(self.pd_pp), 2),
            "pd_relative": None if self.pd_relative is None else round(float(self.pd_relative), 2),
            "hallucination_rate": None if self.hallucination_rate is None else round(float(self.hallucination_rate), 2),
            "pd_interval": self.pd_interval,
            "reduced_cc": round(float(self.reduced_cc), 2),
            "reduced_cc_interval": self.reduced_cc_interval,
            "answered": {k: round(v, 4) for k, v in self.answered.items()},
            "tokens": self.tokens,
            "usd": round(self.usd, 6),
            "largest_usd": round(self.largest_usd, 6),
            "usd_saved": round(100.0 * (1 - self.usd / self.largest_usd), 2) if self.largest_usd else None,
            **self.extra,
        }


def _flops(log: ModelLog, params: float) -> np.ndarray:
    return 2.0 * params * (log.tokens_in + log.tokens_out)


def replay(
    log: ReplayLog,
    chain: Sequence[str],
    taus: Sequence[float] | float,
    params: Mapping[str, float],
    *,
    reference: str | None = None,
) -> ReplayResult:
    """Replay `chain` with P(T) thresholds `taus` (one per tier but the last, or one for all)."""
    chain = list(chain)
    for name in chain:
        if name not in log.models:
            raise ValueError(f"model {name!r} is not in the log; it has {', '.join(log.models)}")
        if name not in params:
            raise ValueError(f"no parameter count for {name!r}: pass --params {name}=B or a tiers config")
    for smaller, larger in zip(chain, chain[1:]):
        if params[smaller] > params[larger]:
            raise ValueError(
                f"a chain goes smallest first: {smaller} ({params[smaller] / 1e9:g}B) comes before {larger} "
                f"({params[larger] / 1e9:g}B); write --chain {','.join(sorted(chain, key=lambda n: params[n]))}"
            )
    taus = [float(taus)] * (len(chain) - 1) if isinstance(taus, (int, float)) else [float(t) for t in taus]
    if len(taus) != len(chain) - 1:
        raise ValueError(f"a chain of {len(chain)} needs {len(chain) - 1} thresholds, got {len(taus)}")
    logs = [log.models[name] for name in chain]
    outcome = route_log(log, chain, taus, params)
    largest_name = reference or chain[-1]
    largest = log.models[largest_name]
    largest_flops = _flops(largest, params[largest_name])
    visited = [outcome.answered_by >= k for k in range(len(chain))]
    accuracy = 100.0 * outcome.correct.mean()
    largest_accuracy = 100.0 * largest.correct.mean()
    return ReplayResult(
        chain=chain,
        taus=taus,
        accuracy=accuracy,
        largest_accuracy=largest_accuracy,
        pd_pp=accuracy - largest_accuracy,
        reduced_cc=100.0 * (1.0 - outcome.flops.sum() / largest_flops.sum()),
        answered={name: float((outcome.answered_by == k).mean()) for k, name in enumerate(chain)},
        tokens={
            name: {"in": int(m.tokens_in[v].sum()), "out": int(m.tokens_out[v].sum())}
            for name, m, v in zip(chain, logs, visited)
        },
        usd=float(sum(m.usd[v].sum() for m, v in zip(logs, visited))),
        largest_usd=float(largest.usd.sum()),
        pd_interval=pd_interval(outcome.correct, largest.correct),
        reduced_cc_interval=saving_interval(outcome.flops, largest_flops),
        hallucination_rate=100.0 * float(np.stack([m.hallucinated() for m in logs])[outcome.answered_by, np.arange(len(log))].mean()),
    )


def route_log(log: ReplayLog, chain: Sequence[str], taus: Sequence[float], params: Mapping[str, float]) -> Outcome:
    """Per-question routing of `chain` at thresholds `taus` over the log."""
    logs = [log.models[name] for name in chain]
    return route(
        [m.p_t >= tau for m, tau in zip(logs, taus)],
        [m.correct for m in logs],
        [_flops(m, params[name]) for m, name in zip(logs, chain)],
    )


def fit_thresholds(
    log: ReplayLog,
    chain: Sequence[str],
    params: Mapping[str, float],
    *,
    target_pd: float,
    grid: Iterable[float] = DEFAULT_GRID,
    reference: str | None = None,
) -> ReplayResult | None:
    """The thresholds that save the most compute while PD >= target_pd; None if none qualifies."""
    tried = (replay(log, chain, taus, params, reference=reference) for taus in itertools.product(list(grid), repeat=len(chain) - 1))
    return cheapest_within(tried, target_pd=target_pd)


def chains_of(models: Sequence[str], params: Mapping[str, float], max_tiers: int = 4) -> list[list[str]]:
    """Every ordered (smallest first) chain of 1..max_tiers of the models."""
    ordered = sorted(models, key=lambda m: params[m])
    return [list(c) for size in range(1, max_tiers + 1) for c in itertools.combinations(ordered, size)]


def search(
    log: ReplayLog,
    models: Sequence[str],
    params: Mapping[str, float],
    *,
    max_tiers: int = 4,
    grid: Iterable[float] = DEFAULT_GRID,
) -> list[ReplayResult]:
    """Every chain and threshold combination, scored against the largest model alone."""
    reference = max(models, key=lambda m: params[m])
    grid = list(grid)
    points = []
    for chain in chains_of(models, params, max_tiers):
        for taus in itertools.product(grid, repeat=len(chain) - 1):
            points.append(replay(log, chain, taus, params, reference=reference))
    return points


@dataclass
class SearchOutcome:
    points: list[ReplayResult]
    frontier: list[ReplayResult]
    best: ReplayResult | None  # the cheapest point meeting the target, when one was given


def search_frontier(
    log: ReplayLog, models: Sequence[str], params: Mapping[str, float], *, max_tiers: int = 4, target_pd: float | None = None
) -> SearchOutcome:
    """Every chain and threshold, its cost-accuracy frontier, and (with target_pd) the cheapest point meeting it."""
    points = search(log, models, params, max_tiers=max_tiers)
    best = cheapest_within(points, target_pd=target_pd) if target_pd is not None else None
    return SearchOutcome(points=points, frontier=frontier(points), best=best)


def certify_thresholds(
    log: ReplayLog,
    chain: Sequence[str],
    params: Mapping[str, float],
    *,
    target_pd: float,
    confidence: float,
    grid: Iterable[float] = DEFAULT_GRID,
    seed: int = 0,
) -> tuple[ReplayResult | None, Certified]:
    """The cheapest thresholds whose PD >= target_pd holds with probability >= confidence on new
    questions (router.risk); (None, ...) when none can be certified on this data. One threshold is
    tested in order from the highest; several are ordered on a third of the rows, tested on the rest."""
    grid = sorted(set(grid), reverse=True)
    candidates = [tuple(t) for t in itertools.product(grid, repeat=len(chain) - 1)]
    test = log
    if len(chain) > 2:
        rows = np.random.default_rng(seed).permutation(len(log))
        ordering, test = log.take(rows[: len(log) // 3]), log.take(rows[len(log) // 3 :])
        estimate = {taus: replay(ordering, chain, taus, params) for taus in candidates}
        candidates.sort(key=lambda taus: (estimate[taus].reduced_cc, -estimate[taus].pd_pp))
    largest = test.models[chain[-1]].correct
    results = {}

    def on_test(taus: tuple[float, ...]) -> ReplayResult:
        if taus not in results:
            results[taus] = replay(test, chain, taus, params)
        return results[taus]

    def rates(taus: tuple[float, ...]) -> tuple[float, float]:
        correct = route_log(test, chain, taus, params).correct
        return float((largest & ~correct).mean()), float((correct & ~largest).mean())

    certified = fixed_sequence(
        candidates,
        lambda taus: pd_bound(route_log(test, chain, taus, params).correct, largest, confidence),
        target_pd=target_pd,
        saving=lambda taus: on_test(taus).reduced_cc,
        rates=rates,
        confidence=confidence,
    )
    if certified.chosen is None:
        return None, certified
    return replay(log, chain, certified.chosen, params), certified


def fit_then_replay(
    path: str | Path,
    chain: Sequence[str],
    params: Mapping[str, float],
    *,
    target_pd: float,
    fit_split: str | None,
    eval_split: str | None,
    confidence: float | None = None,
) -> ReplayResult:
    """Fit the thresholds on `fit_split` (all rows when None) for PD >= target_pd (with `confidence`:
    certified to hold on new questions with that probability), then replay them on `eval_split`; the
    fit's own figures go in `extra`. TargetUnreachable when no point estimate reaches the target; with
    a confidence that cannot be certified, every question goes to the last tier and `extra` says so."""
    fit_log = load_log(path, split=fit_split)
    fit: dict[str, Any] = {"split": fit_split, "rows": len(fit_log)}
    if confidence is None:
        fitted = fit_thresholds(fit_log, chain, params, target_pd=target_pd)
        if fitted is None:
            raise TargetUnreachable(f"no thresholds reach PD >= {target_pd} on the fit data")
        taus = fitted.taus
    else:
        fitted, certified = certify_thresholds(fit_log, chain, params, target_pd=target_pd, confidence=confidence)
        fit.update(confidence=confidence, sequence_passed=certified.passed, sequence_length=certified.tested)
        if fitted is None:
            taus = None
            fit["fallback"] = fallback_reason(certified, target_pd, confidence, len(fit_log), chain[-1])
            fit["questions_needed"] = certified.needed
        else:
            taus = fitted.taus
            fit["pd_bound"] = round(float(certified.bound_pd), 2)
    if fitted is not None:
        fit.update(pd_pp=round(float(fitted.pd_pp), 2), reduced_cc=round(float(fitted.reduced_cc), 2))
    eval_log = load_log(path, split=eval_split)
    # The fallback is the last model alone: no cheaper tier runs, so PD and the saving are 0.
    result = replay(eval_log, chain[-1:], [], params) if taus is None else replay(eval_log, chain, taus, params)
    result.extra = {"fit": fit, "eval_split": eval_split}
    return result
