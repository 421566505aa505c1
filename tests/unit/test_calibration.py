"""Threshold calibration on synthetic data with a known optimum."""

import numpy as np
import pytest

from cascade.router.calibration import CalibrationData, choose, evaluate, frontier_search


@pytest.fixture
def data():
    # 1,000 questions. The small tier is right exactly when P(IK) >= 0.6; P(T) is high for half of its
    # wrong answers too, so P(T) alone cannot separate them. The large tier is always right.
    rng = np.random.default_rng(0)
    n = 1000
    p_ik = rng.uniform(0, 1, n)
    small_correct = p_ik >= 0.6
    p_t = np.where(small_correct, rng.uniform(0.9, 1.0, n), np.where(rng.uniform(0, 1, n) < 0.5, rng.uniform(0.9, 1.0, n), rng.uniform(0, 0.5, n)))
    return CalibrationData(
        p_t=p_t, p_ik=p_ik, small_correct=small_correct, large_correct=np.ones(n, dtype=bool),
        small_flops=np.full(n, 1.0), large_flops=np.full(n, 10.0),
    )


def test_the_known_optimum_is_found_for_a_zero_pd_target(data):
    best = choose(frontier_search(data), target_pd=0.0)
    assert best.pd_pp == 0.0
    assert best.tau_ik == pytest.approx(0.6)  # keeps every right answer and no wrong one
    kept = float((data.p_ik >= 0.6).mean())
    assert best.reduced_cc == pytest.approx(100 * (1 - (1000 * 1.0 + (1 - kept) * 1000 * 10.0) / 10000.0))


def test_p_t_alone_must_escalate_more_for_the_same_target(data):
    without_ik = CalibrationData(**{**data.__dict__, "p_ik": None})
    best_pt = choose(frontier_search(without_ik), target_pd=0.0)
    best_both = choose(frontier_search(data), target_pd=0.0)
    assert best_pt.tau_ik is None and best_pt.reduced_cc < best_both.reduced_cc


def test_an_escalation_budget_picks_the_most_accurate_point_within_it(data):
    points = frontier_search(data)
    best = choose(points, max_escalation=0.2)
    assert best.escalation_rate <= 0.2
    assert best.accuracy == max(p.accuracy for p in points if p.escalation_rate <= 0.2)
    with pytest.raises(ValueError, match="exactly one target"):
        choose(points)
    assert evaluate(data, 1.01, None).escalation_rate == 1.0


def test_single_signal_searches_keep_the_other_threshold_out(data):
    p_t_only = frontier_search(data, signal="p_t")
    p_ik_only = frontier_search(data, signal="p_ik")
    assert all(p.tau_ik is None for p in p_t_only) and all(p.tau_t == 0.0 for p in p_ik_only)
    assert choose(p_ik_only, target_pd=0.0).tau_ik == pytest.approx(0.6)  # P(IK) alone finds the optimum here
    assert choose(p_t_only, target_pd=0.0).reduced_cc == choose(frontier_search(CalibrationData(**{**data.__dict__, "p_ik": None})), target_pd=0.0).reduced_cc
    with pytest.raises(ValueError, match="P\\(IK\\) alone needs a probe"):
        frontier_search(CalibrationData(**{**data.__dict__, "p_ik": None}), signal="p_ik")
