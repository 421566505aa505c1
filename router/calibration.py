"""Choosing a tier's thresholds (tau_T, tau_IK) on labelled calibration data.

For each calibration question we know the small tier's P(T), P(IK) and correctness, and the next
tier's correctness and cost. Every (tau_T, tau_IK) pair on a grid is routed with the cascade rule;
the pair that saves the most compute while meeting the target (PD >= target, or escalation rate
<= a maximum) wins. The whole searched frontier is returned for printing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cascade.router.operating_point import cheapest_within, most_accurate_within
from cascade.router.replay import DEFAULT_GRID, Outcome, route
from cascade.router.risk import Certified, fixed_sequence, pd_bound


@dataclass(frozen=True)
class CalibrationPoint:
    tau_t: float
    tau_ik: float | None
    accuracy: float  # percent
    pd_pp: float
    reduced_cc: float  # percent, against the next tier answering everything
    escalation_rate: float
    bound_pd: float | None = None  # with a confidence: PD >= this on new questions (router.risk)

    def as_dict(self) -> dict:
        out = {
            "tau_t": self.tau_t,
            "tau_ik": self.tau_ik,
            "accuracy": round(self.accuracy, 2),
            "pd_pp": round(self.pd_pp, 2),
            "reduced_cc": round(self.reduced_cc, 2),
            "escalation_rate": round(self.escalation_rate, 4),
        }
        if self.bound_pd is not None:
            out["pd_bound"] = round(self.bound_pd, 2)
        return out


@dataclass(frozen=True)
class CalibrationData:
    p_t: np.ndarray
    p_ik: np.ndarray | None  # None: the tier has no probe
    small_correct: np.ndarray
    large_correct: np.ndarray
    small_flops: np.ndarray
    large_flops: np.ndarray
    # How many questions each row stands for (None: one each). Production data are weighted: the
    # answers a tier kept are known only for the share the live audit shadowed.
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.p_t)

    def take(self, rows: np.ndarray) -> CalibrationData:
        """The questions at the given indices."""
        return CalibrationData(
            p_t=self.p_t[rows],
            p_ik=None if self.p_ik is None else self.p_ik[rows],
            small_correct=self.small_correct[rows],
            large_correct=self.large_correct[rows],
            small_flops=self.small_flops[rows],
            large_flops=self.large_flops[rows],
            weights=None if self.weights is None else self.weights[rows],
        )


def routed(data: CalibrationData, tau_t: float, tau_ik: float | None) -> Outcome:
    """Per-question outcome of the two-tier rule at (tau_t, tau_ik)."""
    confident = data.p_t >= tau_t
    if data.p_ik is not None and tau_ik is not None:
        confident = confident & (data.p_ik >= tau_ik)
    return route([confident], [data.small_correct, data.large_correct], [data.small_flops, data.large_flops])


def evaluate(data: CalibrationData, tau_t: float, tau_ik: float | None) -> CalibrationPoint:
    outcome = routed(data, tau_t, tau_ik)
    w = data.weights
    accuracy = 100.0 * np.average(outcome.correct, weights=w)
    largest = 100.0 * np.average(data.large_correct, weights=w)
    spent = (outcome.flops * w).sum() if w is not None else outcome.flops.sum()
    alone = (data.large_flops * w).sum() if w is not None else data.large_flops.sum()
    return CalibrationPoint(
        tau_t=float(tau_t),
        tau_ik=None if tau_ik is None else float(tau_ik),
        accuracy=accuracy,
        pd_pp=accuracy - largest,
        reduced_cc=100.0 * (1.0 - spent / alone),
        escalation_rate=float(np.average(outcome.answered_by == 1, weights=w)),
    )


SIGNALS = ("both", "p_t", "p_ik")


def frontier_search(data: CalibrationData, grid=DEFAULT_GRID, *, signal: str = "both") -> list[CalibrationPoint]:
    """Every threshold pair on the grid (tau_IK only when the tier has P(IK)). `signal` restricts
    the rule to one signal: "p_t" (P(T) alone) or "p_ik" (P(IK) alone, tau_T fixed at 0)."""
    return [evaluate(data, t, ik) for t, ik in candidates(data, grid, signal=signal)]


def candidates(data: CalibrationData, grid=DEFAULT_GRID, *, signal: str = "both") -> list[tuple[float, float | None]]:
    """The (tau_t, tau_ik) pairs a search tries, each grid from the highest (most conservative) down."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}: choose one of {', '.join(SIGNALS)}")
    if signal == "p_ik" and data.p_ik is None:
        raise ValueError("P(IK) alone needs a probe on the tier")
    ordered = sorted(set(grid), reverse=True)
    t_grid = [0.0] if signal == "p_ik" else ordered
    ik_grid = ordered if data.p_ik is not None and signal != "p_t" else [None]
    return [(t, ik) for t in t_grid for ik in ik_grid]


def certify(
    data: CalibrationData,
    *,
    target_pd: float,
    confidence: float,
    signal: str = "both",
    grid=DEFAULT_GRID,
    seed: int = 0,
) -> tuple[CalibrationPoint | None, Certified]:
    """The cheapest (tau_t, tau_ik) whose PD >= target_pd holds on new questions with probability >=
    confidence (router.risk); None when nothing can be certified (then send everything to the next
    tier). One threshold is tested from the highest down on all the questions; two at once are ordered
    by their point estimate on a third of the questions and tested on the rest."""
    if data.weights is not None:
        raise ValueError(
            "a confidence needs questions drawn evenly, and production data are a weighted sample (kept answers are "
            "known only where shadowed): calibrate --from-db without --confidence, or on a labelled set"
        )
    pairs = candidates(data, grid, signal=signal)
    test = data
    if len({t for t, _ in pairs}) > 1 and len({ik for _, ik in pairs}) > 1:
        rows = np.random.default_rng(seed).permutation(len(data))
        ordering, test = data.take(rows[: len(data) // 3]), data.take(rows[len(data) // 3 :])
        estimate = {pair: evaluate(ordering, *pair) for pair in pairs}
        pairs.sort(key=lambda pair: (estimate[pair].reduced_cc, -estimate[pair].pd_pp))

    def rates(pair) -> tuple[float, float]:
        correct = routed(test, *pair).correct
        return float((test.large_correct & ~correct).mean()), float((correct & ~test.large_correct).mean())

    certified = fixed_sequence(
        pairs,
        lambda pair: pd_bound(routed(test, *pair).correct, test.large_correct, confidence),
        target_pd=target_pd,
        saving=lambda pair: evaluate(test, *pair).reduced_cc,
        rates=rates,
        confidence=confidence,
    )
    if certified.chosen is None:
        return None, certified
    return replace(evaluate(data, *certified.chosen), bound_pd=certified.bound_pd), certified


def choose(
    points: list[CalibrationPoint], *, target_pd: float | None = None, max_escalation: float | None = None
) -> CalibrationPoint | None:
    """With target_pd: the cheapest point whose PD meets it. With max_escalation (a budget on the
    next tier): the most accurate point within it. Exactly one of the two."""
    if (target_pd is None) == (max_escalation is None):
        raise ValueError("give exactly one target: target_pd or max_escalation")
    if target_pd is not None:
        return cheapest_within(points, target_pd=target_pd)
    return most_accurate_within(points, max_escalation=max_escalation)
