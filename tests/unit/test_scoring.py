import uuid

from cascade.router.config import parse_config
from cascade.storage.repository import PendingJob
from cascade.workers.runtime.scoring import TierScorer

CONFIG = parse_config(
    {
        "tiers": [
            {"name": "small", "backend": "null", "model": "null-small", "tau_t": 0.5, "params": 1e9},
            {"name": "large", "backend": "null", "model": "null-large", "params": "70B"},
        ]
    }
)


def job(text, choices=("a", "b", "c", "d")):
    return PendingJob(id=uuid.uuid4(), question=text, choices=list(choices))


def test_each_decision_follows_the_tier_threshold_and_cost_is_counted():
    scorer = TierScorer(CONFIG, CONFIG.tier("small")).load()
    records = scorer.run([job(f"question {i}") for i in range(200)])
    decisions = {r.decision for r in records}
    assert decisions == {"accepted", "escalated"}
    for r in records:
        assert r.decision == ("accepted" if r.p_t >= 0.5 else "escalated")
        assert r.flops == 2 * 1e9 * (r.tokens_in + r.tokens_out)
        assert r.tau_t == 0.5 and r.tau_ik is None and r.p_ik is None


def test_the_last_tier_always_accepts():
    scorer = TierScorer(CONFIG, CONFIG.tier("large")).load()
    records = scorer.run([job(f"question {i}") for i in range(50)])
    assert {r.decision for r in records} == {"accepted"}
    assert all(r.flops == 2 * 70e9 * (r.tokens_in + 1) for r in records)


def test_an_invalid_question_fails_alone():
    scorer = TierScorer(CONFIG, CONFIG.tier("small")).load()
    records = scorer.run([job(""), job("fine question"), job("no choices", choices=())])
    assert [r.decision for r in records].count("failed") == 2
    failed = [r for r in records if r.decision == "failed"]
    assert {r.error.split(":")[0] for r in failed} == {"empty question", "missing choices"}
