"""Thresholds whose accuracy promise holds on new questions, with a stated confidence.

The loss of keeping a cheaper tier's answer on question i is largest_correct_i - cascade_correct_i
(in {-1, 0, 1}); the risk R is its mean, and PD = -100 R. With a = the questions the cascade gets
wrong and the largest tier right, b = the reverse, R = p_a - p_b. An upper confidence bound on R is
the exact (Clopper-Pearson) upper bound on p_a minus the exact lower bound on p_b, each at half the
error level (Bonferroni), so PD >= -100 * UCB holds with probability at least `confidence`.

Thresholds are tested in a fixed sequence from the most conservative (Learn-then-Test, Angelopoulos
et al. 2021): walk the sequence while the bound meets the target and stop at the first that fails;
the cheapest point passed is chosen. Because the sequence is fixed before the test data is looked
at, scanning many thresholds costs no multiplicity correction. A one-threshold search is ordered by
the threshold itself (data-free); a search over several thresholds at once (tau_T x tau_IK, or a
chain of three tiers) is ordered by a point estimate computed on a separate part of the data.
Sending every question to the last tier is always safe (PD = 0) and is the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

P = TypeVar("P")


def _log_pmf_terms(k: int, n: int) -> np.ndarray:
    i = np.arange(k + 1)
    return np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in i])


def binomial_upper(k: int, n: int, alpha: float) -> float:
    """The exact (Clopper-Pearson) one-sided upper bound on p after k successes in n trials:
    the p at which P(Bin(n, p) <= k) = alpha."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    coefficients = _log_pmf_terms(k, n)
    i = np.arange(k + 1)

    def cdf(p: float) -> float:
        logs = coefficients + i * math.log(p) + (n - i) * math.log1p(-p)
        top = logs.max()
        return float(math.exp(top) * np.exp(logs - top).sum())

    low, high = k / n, 1.0
    for _ in range(60):  # bisection: cdf falls as p rises
        mid = (low + high) / 2
        if mid <= 0.0 or cdf(mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def binomial_lower(k: int, n: int, alpha: float) -> float:
    """The exact one-sided lower bound on p after k successes in n trials."""
    if n <= 0 or k <= 0:
        return 0.0
    return 1.0 - binomial_upper(n - k, n, alpha)


def pd_bound(cascade_correct: np.ndarray, largest_correct: np.ndarray, confidence: float) -> float:
    """A lower confidence bound on PD (percentage points): PD >= this with probability >= confidence."""
    cascade_correct = np.asarray(cascade_correct, dtype=bool)
    largest_correct = np.asarray(largest_correct, dtype=bool)
    n = len(cascade_correct)
    alpha = (1.0 - confidence) / 2.0
    worse = int((largest_correct & ~cascade_correct).sum())
    better = int((cascade_correct & ~largest_correct).sum())
    return -100.0 * (binomial_upper(worse, n, alpha) - binomial_lower(better, n, alpha))


def questions_needed(worse_rate: float, better_rate: float, target_pd: float, confidence: float, *, cap: int = 10_000_000) -> int | None:
    """How many questions the bound needs to meet `target_pd` if the disagreement rates stay as
    observed; None when even infinitely many would not do (the point estimate breaks the target)."""
    if -100.0 * (worse_rate - better_rate) < target_pd + 1e-12:
        return None
    alpha = (1.0 - confidence) / 2.0

    def meets(n: int) -> bool:
        worse, better = round(worse_rate * n), round(better_rate * n)
        return -100.0 * (binomial_upper(worse, n, alpha) - binomial_lower(better, n, alpha)) >= target_pd

    high = 16
    while not meets(high):
        high *= 2
        if high > cap:
            return None
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if meets(mid) else (mid, high)
    return high


@dataclass
class Certified(Generic[P]):
    """The outcome of a fixed-sequence test."""

    chosen: P | None  # the cheapest point that passed; None: send everything to the last tier
    bound_pd: float | None  # its PD lower bound on the test data
    passed: int  # how many points of the sequence passed before the first failure
    tested: int  # how many points the sequence had
    first_failure: P | None  # the point the walk stopped at
    needed: int | None  # questions the first point would need to pass (when none passed)


def fixed_sequence(
    sequence: Sequence[P],
    bound: Callable[[P], float],
    *,
    target_pd: float,
    saving: Callable[[P], float],
    rates: Callable[[P], tuple[float, float]] | None = None,
    confidence: float,
) -> Certified[P]:
    """Walk `sequence` (most conservative first) while `bound(point) >= target_pd`; choose the
    cheapest point passed (largest `saving`), but only one that saves anything: sending everything
    to the last tier (saving 0, PD 0) is always allowed, so a certified point costing more loses to it."""
    passed: list[tuple[P, float]] = []
    failure = None
    for point in sequence:
        value = bound(point)
        if value < target_pd:
            failure = point
            break
        passed.append((point, value))
    worth_it = [pair for pair in passed if saving(pair[0]) > 0]
    if worth_it:
        chosen, value = max(worth_it, key=lambda pair: saving(pair[0]))
        return Certified(chosen, value, len(passed), len(sequence), failure, None)
    if passed:  # certified, but each costs more than the last tier alone
        return Certified(None, None, len(passed), len(sequence), failure, None)
    needed = None
    if failure is not None and rates is not None:
        needed = questions_needed(*rates(failure), target_pd, confidence)
    return Certified(None, None, 0, len(sequence), failure, needed)


def check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"--confidence must be strictly between 0 and 1 (e.g. 0.9), got {confidence!r}")
    return float(confidence)


def fallback_reason(certified: Certified, target_pd: float, confidence: float, questions: int, last: str) -> str:
    """Why nothing was chosen, and what to do: send every question straight to `last`."""
    head = f"send every question straight to {last}: "
    if certified.passed:
        return head + (f"the {certified.passed} threshold(s) certified for PD >= {target_pd} at confidence {confidence} "
                       f"all cost more than {last} alone on these {questions} questions")
    if certified.needed:
        return head + (f"no threshold can be certified for PD >= {target_pd} at confidence {confidence} with {questions} "
                       f"questions; the most conservative one would need about {certified.needed}")
    return head + (f"no threshold can be certified for PD >= {target_pd} at confidence {confidence}: even the most "
                   f"conservative one breaks the target on these {questions} questions")


@dataclass
class LiveTier:
    """What the shadows say about one tier's kept answers (from `storage.live_audit.ShadowCounts`)."""

    tier: str
    share: float  # of all finished jobs, the share this tier kept
    shadowed: int
    agreement: float | None
    agreement_interval: tuple[float, float] | None
    pd_pp: float | None  # this tier's contribution to the cascade's PD vs the last tier alone
    pd_interval: tuple[float, float] | None
    kind: str  # "gold": exact where gold exists; "disagreement": a bound, from disagreement alone


def live_tier(counts, finished: int, *, level: float = 0.95) -> LiveTier:
    """A kept answer the last tier would have got right and the tier got wrong costs accuracy; the
    shadows estimate how often that happens. With gold answers the estimate is exact in kind; without,
    disagreement bounds the loss (a kept answer can only be worse where the two disagree). `counts`
    has tier, kept, shadowed, agree, graded, better and worse (storage.live_audit.ShadowCounts)."""
    tier, kept, shadowed, agree = counts.tier, counts.kept, counts.shadowed, counts.agree
    graded, better, worse = counts.graded, counts.better, counts.worse
    share = kept / finished if finished else 0.0
    alpha = (1.0 - level) / 2.0
    if not shadowed:
        return LiveTier(tier, share, 0, None, None, None, None, "none")
    agreement = agree / shadowed
    agreement_interval = (round(100 * binomial_lower(agree, shadowed, alpha), 2), round(100 * binomial_upper(agree, shadowed, alpha), 2))
    if graded:
        point = -100.0 * share * (worse - better) / graded
        low = -100.0 * share * (binomial_upper(worse, graded, alpha / 2) - binomial_lower(better, graded, alpha / 2))
        high = -100.0 * share * (binomial_lower(worse, graded, alpha / 2) - binomial_upper(better, graded, alpha / 2))
        kind = "gold"
    else:
        disagree = shadowed - agree
        point = -100.0 * share * disagree / shadowed
        low, high = -100.0 * share * binomial_upper(disagree, shadowed, alpha), 0.0
        kind = "disagreement"
    return LiveTier(tier, share, shadowed, round(100 * agreement, 2), agreement_interval, round(point, 2), (round(low, 2), round(high, 2)), kind)


def live_bound(tiers: Sequence[LiveTier], counts: Sequence, finished: int, confidence: float) -> float | None:
    """A lower confidence bound on the live PD over all tiers: PD >= this with probability >= confidence
    (each tier's share of the error level split evenly, Bonferroni)."""
    usable = [(t, c) for t, c in zip(tiers, counts) if c.shadowed]
    if not usable:
        return None
    alpha = (1.0 - confidence) / len(usable)
    total = 0.0
    for tier, c in usable:
        if c.graded:
            total += tier.share * (binomial_upper(c.worse, c.graded, alpha / 2) - binomial_lower(c.better, c.graded, alpha / 2))
        else:
            total += tier.share * binomial_upper(c.shadowed - c.agree, c.shadowed, alpha)
    return round(-100.0 * total, 2)
