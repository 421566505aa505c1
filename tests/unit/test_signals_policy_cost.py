import pytest

from cascade.router.config import Tier
from cascade.router.cost import call_flops, call_usd, reduced_cc
from cascade.router.policy import Decision, decide
from cascade.router.signals import answer_from_letter_probs


def test_p_t_is_the_full_vocabulary_probability_and_renormalised_over_options():
    confidence = answer_from_letter_probs({"A": 0.1, "B": 0.5, "C": 0.2, "D": 0.0})
    assert confidence.answer == "B"
    assert confidence.p_t == pytest.approx(0.5)
    assert confidence.p_t_options == pytest.approx(0.5 / 0.8)


def test_ties_go_to_the_earlier_letter():
    assert answer_from_letter_probs({"A": 0.3, "B": 0.3}).answer == "A"


def tier(**kw):
    return Tier(name="small", backend="null", model="m", **kw)


def test_answer_is_kept_only_when_both_signals_clear_their_thresholds():
    with_probe = tier(tau_t=0.9, tau_ik=0.6, probe="p.npz")
    assert decide(0.95, 0.7, with_probe, is_last=False).decision is Decision.ACCEPTED
    assert decide(0.89, 0.99, with_probe, is_last=False).decision is Decision.ESCALATED
    low_ik = decide(0.95, 0.5, with_probe, is_last=False)
    assert low_ik.decision is Decision.ESCALATED and "P(IK)" in low_ik.reason
    assert decide(0.95, None, with_probe, is_last=False).decision is Decision.ESCALATED


def test_a_tier_without_probe_routes_on_p_t_alone_and_the_last_tier_always_answers():
    no_probe = tier(tau_t=0.9)
    assert decide(0.9, None, no_probe, is_last=False).decision is Decision.ACCEPTED  # threshold is inclusive
    assert decide(0.1, None, no_probe, is_last=True).decision is Decision.ACCEPTED


def test_compute_cost_is_two_flops_per_parameter_per_token():
    assert call_flops(8e9, 100, 1) == 2 * 8e9 * 101
    assert call_usd(1_000_000, 500_000, price_in_usd_per_1m=2.5, price_out_usd_per_1m=10.0) == pytest.approx(7.5)
    assert reduced_cc([10.0, 20.0], [40.0, 40.0]) == pytest.approx(1 - 30 / 80)
    with pytest.raises(ValueError):
        reduced_cc([1.0], [0.0])


def test_shadowed_jobs_are_a_stable_share_of_job_ids():
    import uuid

    from cascade.router.policy import shadowed

    ids = [uuid.uuid4() for _ in range(20_000)]
    share = sum(shadowed(i, 0.02) for i in ids) / len(ids)
    assert 0.015 < share < 0.025
    assert [shadowed(i, 0.02) for i in ids[:100]] == [shadowed(i, 0.02) for i in ids[:100]]  # a redelivery picks the same
    assert not any(shadowed(i, 0.0) for i in ids) and all(shadowed(i, 1.0) for i in ids)
