"""Risk-controlled thresholds: exact binomial bounds, the fixed-sequence walk, and the promise itself
checked by simulation against a population whose true PD is known."""

import math

import numpy as np
import pytest
from scipy.stats import beta

from cascade.router.intervals import pd_interval, saving_interval
from cascade.router.replay import ModelLog, ReplayLog, certify_thresholds, replay, route_log
from cascade.router.risk import binomial_lower, binomial_upper, fixed_sequence, pd_bound, questions_needed


@pytest.mark.parametrize("k,n,alpha", [(0, 300, 0.05), (7, 120, 0.05), (40, 100, 0.025), (999, 1000, 0.1)])
def test_binomial_bounds_are_the_exact_clopper_pearson_ones(k, n, alpha):
    assert binomial_upper(k, n, alpha) == pytest.approx(beta.ppf(1 - alpha, k + 1, n - k), rel=1e-6)
    if k:
        assert binomial_lower(k, n, alpha) == pytest.approx(beta.ppf(alpha, k, n - k + 1), rel=1e-6)


def test_the_pd_bound_sits_below_the_point_estimate_and_tightens_with_more_questions():
    rng = np.random.default_rng(0)
    bounds = []
    for n in (200, 2000):
        large = rng.random(n) < 0.8
        cascade = large.copy()
        cascade[: n // 50] = ~cascade[: n // 50]  # 2% of answers flipped
        point = 100 * (cascade.mean() - large.mean())
        bounds.append(pd_bound(cascade, large, 0.9))
        assert bounds[-1] < point
    assert bounds[1] > bounds[0]
    assert questions_needed(0.02, 0.0, -1.0, 0.9) is None  # the point estimate already breaks it
    assert 100 < questions_needed(0.005, 0.0, -2.0, 0.9) < questions_needed(0.005, 0.0, -1.0, 0.9) < 5000


def test_the_walk_stops_at_the_first_failure_and_never_chooses_a_costlier_point():
    bounds = {"a": 0.0, "b": -0.5, "c": -3.0, "d": 0.0}  # d would pass but comes after a failure
    savings = {"a": -5.0, "b": 12.0, "c": 40.0, "d": 60.0}
    walked = fixed_sequence(list("abcd"), bounds.get, target_pd=-1.0, saving=savings.get, confidence=0.9)
    assert (walked.chosen, walked.passed, walked.first_failure) == ("b", 2, "c")
    costly = fixed_sequence(["a"], bounds.get, target_pd=-1.0, saving=savings.get, confidence=0.9)
    assert costly.chosen is None and costly.passed == 1  # certified, but dearer than the last tier alone


def population(n, seed):
    """Small-model P(T) well calibrated: right with probability P(T); the large model right 85%."""
    rng = np.random.default_rng(seed)
    p_t = rng.random(n)
    small = ModelLog(rng.random(n) < p_t, p_t, np.full(n, 100), np.ones(n, dtype=int), np.zeros(n))
    large = ModelLog(rng.random(n) < 0.85, np.ones(n), np.full(n, 100), np.ones(n, dtype=int), np.zeros(n))
    return ReplayLog([str(i) for i in range(n)], {"s": small, "l": large})


def test_certified_thresholds_break_the_target_on_the_population_at_most_as_often_as_promised():
    truth = population(200_000, seed=1)
    params = {"s": 1e9, "l": 70e9}
    rng = np.random.default_rng(2)
    breaks = chosen = 0
    for _ in range(60):
        sample = truth.take(rng.choice(len(truth), 600, replace=False))
        fitted, _ = certify_thresholds(sample, ["s", "l"], params, target_pd=-2.0, confidence=0.9)
        if fitted is None:
            continue
        chosen += 1
        breaks += replay(truth, ["s", "l"], fitted.taus, params).pd_pp < -2.0
    assert chosen >= 30  # it does certify something at this size
    assert breaks / chosen <= 0.1


def test_intervals_cover_the_figures_they_surround():
    log = population(2000, seed=3)
    outcome = route_log(log, ["s", "l"], [0.9], {"s": 1e9, "l": 70e9})
    low, high = pd_interval(outcome.correct, log.models["l"].correct)
    point = 100 * (outcome.correct.mean() - log.models["l"].correct.mean())
    assert low < point < high and high - low < 5
    largest = 2 * 70e9 * 101 * np.ones(2000)
    low, high = saving_interval(outcome.flops, largest)
    assert low < 100 * (1 - outcome.flops.sum() / largest.sum()) < high
    assert math.isclose(saving_interval(largest, largest)[0], 0.0, abs_tol=1e-9)
