"""Free-form prompts through real tier workers, Redis and PostgreSQL: generated answers, their token
confidences, grading, abstention, batches, the evaluation command and bad input."""

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from cascade.router.config import load_config
from cascade.router.errors import InvalidQuestion
from cascade.router.prompts import OpenPrompt
from cascade.router.signals import aggregate
from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt
from cascade.workers.backends import create_backend
from tests.integration.conftest import CONFIGS, Cluster, run_cli
from tests.integration.test_batches import wait_status

pytestmark = pytest.mark.integration
POPQA = Path(__file__).resolve().parents[3] / "shared" / "data" / "popqa" / "DisambPopQA.csv"
PROMPTS = ["Who painted the Mona Lisa?", "Name the largest planet.", "What is seven times six?", "Which metal is liquid at room temperature?",
           "Who wrote War and Peace?", "What colour is a ripe banana?", "Which gas do plants take in?", "Spell 'cat' backwards."]


@pytest.fixture(scope="module")
def tiny_cluster(redis_url, database_url, tmp_path_factory):
    """The built-in `tiny` config's two random-weight tiers."""
    cluster = Cluster("tiny", redis_url, database_url, tmp_path_factory.mktemp("logs")).start_all()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def abstain_cluster(redis_url, database_url, tmp_path_factory):
    cluster = Cluster(CONFIGS / "abstain.toml", redis_url, database_url, tmp_path_factory.mktemp("logs")).start_all()
    yield cluster
    cluster.stop()


def test_cli_submit_of_a_prompt_waits_for_a_generated_answer(tiny_cluster):
    result = run_cli(["submit", "What is the capital of France?", "--wait", "--json"], tiny_cluster.env)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["kind"] == "open" and job["status"] == "done" and isinstance(job["answer"], str) and job["choices"] == []
    assert job["path"], job
    for step in job["path"]:
        assert 0.0 <= step["p_t"] <= 1.0 and step["p_t_aggregate"] == "mean"
        assert step["p_t"] == pytest.approx(aggregate(step["token_logprobs"], "mean"), abs=1e-4)
        assert 1 <= step["tokens_out"] <= 16 and len(step["token_logprobs"]) <= step["tokens_out"]
    final = job["path"][-1]
    assert final["answer"] == job["answer"] and job["tokens_out"] == sum(s["tokens_out"] for s in job["path"])
    tier = tiny_cluster.client.settings.config.tier(job["final_tier"])
    backend = create_backend(tier)
    backend.load()
    # compute counts the generated tokens: 2 x N x (prompt + generated)
    assert final["flops"] == pytest.approx(2 * backend.params * (final["tokens_in"] + final["tokens_out"]))


def test_both_kinds_share_the_tiers_and_open_jobs_use_their_own_threshold(tiny_cluster):
    client = tiny_cluster.client
    tag = uuid.uuid4().hex[:6]
    open_ids = client.submit_many([{"question": p, "external_id": f"o-{tag}-{i}", "gold": ["Paris"]} for i, p in enumerate(PROMPTS)])
    choice_id = client.submit("2 + 2 = ?", ["3", "4", "5", "6"], gold="B")
    jobs = [client.result(j, timeout=120) for j in open_ids]
    choice = client.result(choice_id, timeout=120)
    assert choice["kind"] == "choice" and choice["answer"] in "ABCD" and choice["path"][0]["p_t_aggregate"] is None
    tau = load_config(Path(client.settings.config.source)).first.open_tau_t
    for job in jobs:
        first = job["path"][0]
        assert first["tau_t"] == tau and (first["decision"] == "accepted") == (first["p_t"] >= tau)
        assert job["correct"] == ("paris" in job["answer"].lower())  # graded by containment
        assert job["gold"] == ["Paris"] and job["grader"] == "contains"
    assert {j["final_tier"] for j in jobs} == {"small", "large"}  # about half escalate


def test_a_free_form_batch_completes_and_exports_the_text_and_bad_rows_fail_alone(tiny_cluster, tmp_path):
    rows = [{"id": f"p{i}", "prompt": p, "gold": ["Paris", "paris"] if i % 2 else "Jupiter"} for i, p in enumerate(PROMPTS)]
    rows += [
        {"id": "empty", "prompt": "   "},
        {"id": "zero", "prompt": "Hi?", "max_tokens": 0},
        {"id": "huge", "prompt": "Hi?", "max_tokens": 100000},
        {"id": "badgold", "prompt": "Hi?", "gold": {"a": 1}},
        {"id": "mixed", "question": "2 + 2 = ?", "choices": ["3", "4"], "answer": "B"},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    name = f"free-{uuid.uuid4().hex[:6]}"
    submitted = run_cli(["batch", "submit", str(path), "--name", name, "--json"], tiny_cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    status = wait_status(tiny_cluster.env, name, "completed")
    assert status["counts"]["completed"] == len(PROMPTS) + 1 and status["counts"]["failed"] == 4
    out = tmp_path / "out.jsonl"
    assert run_cli(["batch", "export", name, "-o", str(out)], tiny_cluster.env).returncode == 0
    exported = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(exported) == [r["id"] for r in rows]
    for i in range(len(PROMPTS)):
        row = exported[f"p{i}"]
        assert row["kind"] == "open" and isinstance(row["answer"], str) and row["correct"] is not None
        assert row["gold"] == (["Paris", "paris"] if i % 2 else ["Jupiter"])
        assert row["path"][0]["p_t_aggregate"] == "mean"
    assert "empty prompt" in exported["empty"]["error"]
    assert "max_tokens must be a whole number of tokens > 0" in exported["zero"]["error"]
    assert "above the limit of 512 new tokens" in exported["huge"]["error"]
    assert "gold must be a string or a list of strings" in exported["badgold"]["error"]
    assert exported["mixed"]["kind"] == "choice" and exported["mixed"]["answer"] in ("A", "B")


def test_the_python_client_refuses_bad_free_form_jobs_with_one_line(tiny_cluster):
    client = tiny_cluster.client
    for kwargs, message in [({"max_tokens": 0}, "max_tokens"), ({"gold": [1, 2]}, "gold must be"), ({"stop": [""]}, "stop must be")]:
        with pytest.raises(InvalidQuestion, match=message):
            client.submit("Who directed Alien?", **kwargs)
    with pytest.raises(InvalidQuestion, match="empty prompt"):
        client.submit("")


def expected(tier: str, text: str):
    """What the null backend answers on `tier`, and its P(T)."""
    backend = create_backend(load_config(CONFIGS / "abstain.toml").tier(tier))
    backend.load()
    answer = backend.generate([OpenPrompt(text, max_tokens=32)])[0]
    return answer.text, aggregate(answer.token_logprobs)


def test_the_last_tier_abstains_and_abstentions_are_not_hallucinations(abstain_cluster, tmp_path):
    env = abstain_cluster.env
    prompts = [f"Free-form question number {i}?" for i in range(60)]
    # Gold: the large tier's own answer for every third prompt, so some answers are right and some wrong.
    rows = [{"id": f"q{i}", "prompt": p, "gold": expected("open-large", p)[0] if i % 3 == 0 else "no such answer"} for i, p in enumerate(prompts)]
    path = tmp_path / "abstain.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    name, ref = f"abs-{uuid.uuid4().hex[:6]}", f"absref-{uuid.uuid4().hex[:6]}"
    assert run_cli(["batch", "submit", str(path), "--name", name], env).returncode == 0
    assert run_cli(["batch", "submit", str(path), "--name", ref, "--start-tier", "open-large"], env).returncode == 0
    wait_status(env, name, "completed")
    wait_status(env, ref, "completed")
    out = tmp_path / "out.jsonl"
    assert run_cli(["batch", "export", name, "-o", str(out)], env).returncode == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    abstained = 0
    for row in exported:
        small_p = expected("open-small", prompts[int(row["id"][1:])])[1]
        if small_p >= 0.5:
            assert row["final_tier"] == "open-small" and row["path"][0]["decision"] == "accepted"
            continue
        large_text, large_p = expected("open-large", prompts[int(row["id"][1:])])
        last = row["path"][-1]
        assert last["tier"] == "open-large" and last["answer"] == large_text
        if large_p < 0.5:
            abstained += 1
            assert row["status"] == "done" and row["answer"] is None and last["decision"] == "abstained"
            assert row["correct"] is False  # graded, not right: counted against accuracy, not as a hallucination
        else:
            assert last["decision"] == "accepted" and row["answer"] == large_text
    assert abstained > 0
    report = json.loads(run_cli(["audit", "summary", "--batch", name, "--reference-batch", ref, "--json"], env).stdout)
    wrong = sum(1 for r in exported if r["answer"] is not None and r["correct"] is False)
    assert report["abstained"] == abstained and report["abstention_rate"] == pytest.approx(100 * abstained / 60, abs=0.01)
    assert report["hallucination_rate"] == pytest.approx(100 * wrong / 60, abs=0.01)
    assert report["largest_hallucination_rate"] is not None
    tiers = {t["tier"]: t for t in report["tiers"]}
    assert tiers["open-large"]["abstained"] == abstained
    assert "hallucination" in run_cli(["audit", "summary", "--batch", name, "--reference-batch", ref], env).stdout
    with session_scope(abstain_cluster.client.database_url) as s:
        stored = s.scalars(select(Attempt.decision).where(Attempt.decision == "abstained")).all()
    assert len(stored) >= abstained


def test_eval_popqa_reports_the_free_form_measures(tiny_cluster):
    assert POPQA.is_file(), f"the evaluation data is read from {POPQA}"
    result = run_cli(["eval", "popqa", "--data", str(POPQA), "--sample", "20", "--seed", "0", "--json"], tiny_cluster.env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 20 and report["kind"] == "open"
    for key in ("accuracy", "hallucination_rate", "abstention_rate", "pd_pp", "pd_relative", "reduced_cc"):
        assert key in report
    assert report["accuracy"] is not None and report["hallucination_rate"] + report["accuracy"] == pytest.approx(100.0)
    assert set(report["auroc_aggregates"]["small"]) >= {"mean", "product", "min", "q10", "first", "p_ik"}
    assert report["tokens"]["small"]["out"] > 20
