"""Choosing a tier's thresholds (tau_T, tau_IK) on labelled calibration data.

For each calibration question we know the small tier's P(T), P(IK) and correctness, and the next
tier's correctness and cost. Every (tau_T, tau_IK) pair on a grid is routed with the cascade rule;
the pair that saves the most compute while meeting the target (PD >= target, or escalation rate
<= a maximum) wins. The whole searched frontier is returned for printing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cascade.router.operating_point import cheapest_within, most_accurate_within
from cascade.router.replay import DEFAULT_GRID, route


@dataclass(frozen=True)
class CalibrationPoint:
    tau_t: float
    tau_ik: float | None
    accuracy: float  # percent
    pd_pp: float
    reduced_cc: float  # percent, against the next tier answering everything
    escalation_rate: float

    def as_dict(self) -> dict:
        return {
            "tau_t": self.tau_t,
            "tau_ik": self.tau_ik,
            "accuracy": round(self.accuracy, 2),
            "pd_pp": round(self.pd_pp, 2),
            "reduced_cc": round(self.reduced_cc, 2),
            "escalation_rate": round(self.escalation_rate, 4),
        }


@dataclass(frozen=True)
class CalibrationData:
    p_t: np.ndarray
    p_ik: np.ndarray | None  # None: the tier has no probe
    small_correct: np.ndarray
    large_correct: np.ndarray
    small_flops: np.ndarray
    large_flops: np.ndarray


def evaluate(data: CalibrationData, tau_t: float, tau_ik: float | None) -> CalibrationPoint:
    confident = data.p_t >= tau_t
    if data.p_ik is not None and tau_ik is not None:
        confident = confident & (data.p_ik >= tau_ik)
    outcome = route([confident], [data.small_correct, data.large_correct], [data.small_flops, data.large_flops])
    accuracy = 100.0 * outcome.correct.mean()
    largest = 100.0 * data.large_correct.mean()
    return CalibrationPoint(
        tau_t=float(tau_t),
        tau_ik=None if tau_ik is None else float(tau_ik),
        accuracy=accuracy,
        pd_pp=accuracy - largest,
        reduced_cc=100.0 * (1.0 - outcome.flops.sum() / data.large_flops.sum()),
        escalation_rate=float((outcome.answered_by == 1).mean()),
    )


SIGNALS = ("both", "p_t", "p_ik")


def frontier_search(data: CalibrationData, grid=DEFAULT_GRID, *, signal: str = "both") -> list[CalibrationPoint]:
    """Every threshold pair on the grid (tau_IK only when the tier has P(IK)). `signal` restricts
    the rule to one signal: "p_t" (P(T) alone) or "p_ik" (P(IK) alone, tau_T fixed at 0)."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}: choose one of {', '.join(SIGNALS)}")
    if signal == "p_ik" and data.p_ik is None:
        raise ValueError("P(IK) alone needs a probe on the tier")
    t_grid = [0.0] if signal == "p_ik" else list(grid)
    ik_grid = list(grid) if data.p_ik is not None and signal != "p_t" else [None]
    return [evaluate(data, t, ik) for t in t_grid for ik in ik_grid]


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
