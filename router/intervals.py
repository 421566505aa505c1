"""95% intervals for the two figures every report gives, so a difference of a few points on a few
hundred questions is never read as a fact. Both are normal approximations computed from sums, so
the same code serves arrays in memory (eval, replay) and aggregates from SQL (audit):

- PD: the mean of per-question differences d = cascade_correct - largest_correct in {-1, 0, 1},
  from the counts of the two kinds of disagreement.
- reduced compute: 1 - sum(cascade FLOPs) / sum(largest FLOPs), a ratio of means, by the delta method.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

LEVEL = 0.95


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def pd_interval_from_counts(n: int, better: int, worse: int, level: float = LEVEL) -> tuple[float, float] | None:
    """PD in percentage points: `better` questions the cascade got right and the largest tier wrong,
    `worse` the reverse, of `n`."""
    if n < 2:
        return None
    mean = (better - worse) / n
    variance = max(0.0, (better + worse) / n - mean * mean) * n / (n - 1)
    half = _z(level) * math.sqrt(variance / n)
    return (round(100.0 * (mean - half), 2), round(100.0 * (mean + half), 2))


def pd_interval(cascade_correct: np.ndarray, largest_correct: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    cascade_correct = np.asarray(cascade_correct, dtype=bool)
    largest_correct = np.asarray(largest_correct, dtype=bool)
    better = int((cascade_correct & ~largest_correct).sum())
    worse = int((largest_correct & ~cascade_correct).sum())
    return pd_interval_from_counts(len(cascade_correct), better, worse, level)


def saving_interval_from_sums(
    n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float, level: float = LEVEL
) -> tuple[float, float] | None:
    """Reduced compute in percent, 1 - sx/sy, from per-question sums of x (cascade FLOPs), y (largest
    tier alone), x^2, y^2 and xy."""
    if n < 2 or sy <= 0:
        return None
    ratio = sx / sy
    residual = max(0.0, sxx - 2.0 * ratio * sxy + ratio * ratio * syy) / (n - 1)  # variance of x - ratio * y
    half = _z(level) * math.sqrt(residual / n) / (sy / n)
    return (round(100.0 * (1.0 - ratio - half), 2), round(100.0 * (1.0 - ratio + half), 2))


def saving_interval(cascade_flops: np.ndarray, largest_flops: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    x = np.asarray(cascade_flops, dtype=float)
    y = np.asarray(largest_flops, dtype=float)
    return saving_interval_from_sums(len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum(), level)


def shown(interval: tuple[float, float] | None, *, signed: bool = False) -> str:
    """` [lo, hi]` for printing after a figure (95%), or nothing when there is no interval."""
    if interval is None:
        return ""
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f" [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"
