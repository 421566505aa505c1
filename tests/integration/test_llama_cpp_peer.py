"""The openai backend against llama.cpp's real OpenAI-compatible server (SmolLM2-135M on CPU)."""

import uuid

import pytest

from cascade.router.config import Tier
from cascade.router.prompts import OpenPrompt, make_question
from cascade.router.signals import aggregate
from cascade.workers.backends import GeneratedAnswer, ScoredAnswer, create_backend
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

QUESTIONS = [
    make_question("What is the capital of France?", ["Berlin", "Paris", "Rome", "Madrid"]),
    make_question("2 + 2 = ?", ["3", "4", "5", "6"]),
    make_question("Which animal barks?", ["Cat", "Dog"]),
]


def test_p_t_and_usage_from_a_real_server(llama_server):
    backend = create_backend(Tier(name="llama", backend="openai", model="smollm2", base_url=llama_server, concurrency=2))
    backend.load()
    results = backend.score(QUESTIONS)
    for question, scored in zip(QUESTIONS, results):
        assert isinstance(scored, ScoredAnswer)
        assert scored.answer in question.letters
        assert 0.0 < scored.p_t <= scored.p_t_options <= 1.0
        assert scored.tokens_in > 20 and scored.tokens_out == 1
    assert results[0].answer == "B"  # even a 135M model knows Paris


def test_free_form_answers_and_token_logprobs_from_a_real_server(llama_server):
    backend = create_backend(Tier(name="llama", backend="openai", model="smollm2", base_url=llama_server, concurrency=2))
    backend.load()
    prompts = [OpenPrompt("What is the capital of France? Answer with one word.", max_tokens=8),
               OpenPrompt("Count from one to ten in words, separated by commas.", max_tokens=24, stop=("five",))]
    answers = backend.generate(prompts)
    for prompt, answer in zip(prompts, answers):
        assert isinstance(answer, GeneratedAnswer) and answer.text
        assert answer.tokens_in > 10 and 1 <= answer.tokens_out <= prompt.max_tokens
        assert answer.token_logprobs and all(lp <= 0 for lp in answer.token_logprobs)
        assert 0.0 < aggregate(answer.token_logprobs, "mean") <= 1.0
    assert "paris" in answers[0].text.lower()
    assert "five" not in answers[1].text.lower()  # the server stopped at the stop sequence


CONFIG = """
[[tiers]]
name = "tiny-{tag}"
backend = "transformers"
model = "tiny:small"
tau_t = 1.0

[[tiers]]
name = "llama-{tag}"
backend = "openai"
model = "smollm2"
base_url = "{url}"
price_in_usd_per_1m = 0.1
price_out_usd_per_1m = 0.4
"""


def test_a_local_tier_escalates_to_llama_cpp_through_celery_and_postgres(llama_server, redis_url, database_url, tmp_path):
    tag = uuid.uuid4().hex[:6]
    config = tmp_path / "mixed.toml"
    config.write_text(CONFIG.format(tag=tag, url=llama_server))
    cluster = Cluster(config, redis_url, database_url, tmp_path).start_all()
    try:
        ids = cluster.client.submit_many(
            [{"question": q.text, "choices": list(q.choices), "gold": "B"} for q in QUESTIONS]
        )
        jobs = [cluster.client.result(j, timeout=120) for j in ids]
        free = cluster.client.result(cluster.client.submit("Name the capital of Italy in one word.", gold="Rome", max_tokens=8), timeout=120)
    finally:
        cluster.stop()
    local, api = free["path"]
    assert free["kind"] == "open" and free["final_tier"] == f"llama-{tag}" and isinstance(free["answer"], str)
    assert local["decision"] == "escalated" and api["decision"] == "accepted" and api["p_t_aggregate"] == "mean"
    assert api["p_t"] == pytest.approx(aggregate(api["token_logprobs"], "mean"), abs=1e-4)
    assert free["correct"] == ("rome" in free["answer"].lower())
    assert api["cost_usd"] == pytest.approx((api["tokens_in"] * 0.1 + api["tokens_out"] * 0.4) / 1e6) and api["tokens_out"] >= 1
    for job in jobs:
        assert job["status"] == "done" and job["final_tier"] == f"llama-{tag}"
        local, api = job["path"]
        assert local["decision"] == "escalated" and api["decision"] == "accepted"
        assert api["tokens_in"] > 20 and api["cost_usd"] == pytest.approx((api["tokens_in"] * 0.1 + api["tokens_out"] * 0.4) / 1e6)
    assert jobs[0]["answer"] == "B"
