"""Two real tier workers on tiny models, real Redis and PostgreSQL: routing, rows, costs, redelivery."""

import json
import uuid

import pytest
from sqlalchemy import func, select

from cascade.router.cost import call_flops
from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt
from cascade.storage.repository import AttemptRecord, record_attempts
from cascade.workers.runtime.dispatch import send_jobs
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

QUESTIONS = [
    ("Which gas do plants absorb from the air?", ["Oxygen", "Carbon dioxide", "Nitrogen", "Helium"], "B"),
    ("What is 7 x 6?", ["42", "36", "48", "49"], "A"),
    ("Which ocean is the largest?", ["Atlantic", "Indian", "Arctic", "Pacific"], "D"),
    ("Who wrote Hamlet?", ["Dickens", "Shakespeare", "Austen", "Tolstoy"], "B"),
]


def submit_all(client, tag):
    return [
        client.submit(q, choices, gold=gold, external_id=f"{tag}-{i}-{uuid.uuid4().hex[:6]}")
        for i, (q, choices, gold) in enumerate(QUESTIONS)
    ]


def attempts_of(database_url, job_ids):
    with session_scope(database_url) as s:
        rows = s.scalars(select(Attempt).where(Attempt.job_id.in_([uuid.UUID(j) for j in job_ids]))).all()
        return [(str(a.job_id), a.tier, a.decision, a.flops, a.tokens_in, a.tokens_out, a.cost_usd) for a in rows]


def test_unsure_answers_escalate_and_the_next_tier_keeps_them(forced_cluster):
    client = forced_cluster.client
    job_ids = submit_all(client, "route")
    jobs = [client.result(j, timeout=120) for j in job_ids]
    for job in jobs:
        assert job["status"] == "done"
        assert job["final_tier"] == "always-accept"
        assert job["answer"] in "ABCD"
        first, second = job["path"]
        assert (first["tier"], first["decision"]) == ("always-escalate", "escalated")
        assert (second["tier"], second["decision"]) == ("always-accept", "accepted")
        assert first["p_t"] < first["tau_t"] == 1.0 and second["tau_t"] == 0.0
        assert second["answer"] == job["answer"]
        assert job["tokens_in"] == first["tokens_in"] + second["tokens_in"]
        assert job["flops"] == pytest.approx(first["flops"] + second["flops"])
        expected_usd = (second["tokens_in"] * 0.5 + second["tokens_out"] * 1.5) / 1e6
        assert job["cost_usd"] == pytest.approx(expected_usd) and first["cost_usd"] == 0
        assert first["worker"] and second["latency_ms"] > 0
    # compute cost is 2 x params x tokens for each tier's own model
    small_params = first["flops"] / (2 * (first["tokens_in"] + 1))
    large_params = second["flops"] / (2 * (second["tokens_in"] + 1))
    assert small_params < large_params
    assert call_flops(small_params, first["tokens_in"], 1) == pytest.approx(first["flops"])
    assert client.status(jobs[0]["external_id"])["id"] == jobs[0]["id"]


def test_redelivered_messages_never_duplicate_attempts_or_costs(forced_cluster, database_url):
    client = forced_cluster.client
    config = client.settings.config
    job_ids = submit_all(client, "redeliver")
    for j in job_ids:
        client.result(j, timeout=120)
    before = attempts_of(database_url, job_ids)
    totals_before = [client.status(j)["flops"] for j in job_ids]
    # The same messages again, to both tiers, as a broker redelivery would do.
    for tier in ("always-escalate", "always-accept"):
        send_jobs(client.app, config.tier(tier), job_ids)
        send_jobs(client.app, config.tier(tier), job_ids, chunk_size=1)
    sentinel = client.submit("Sentinel question?", ["yes", "no"])
    assert client.result(sentinel, timeout=120)["status"] == "done"  # FIFO: the resent messages ran first
    assert sorted(attempts_of(database_url, job_ids)) == sorted(before)
    assert [client.status(j)["flops"] for j in job_ids] == totals_before
    with session_scope(database_url) as s:
        duplicates = s.execute(
            select(Attempt.job_id, Attempt.tier).group_by(Attempt.job_id, Attempt.tier).having(func.count() > 1)
        ).all()
    assert duplicates == []


def test_a_job_escalated_by_a_delivery_that_died_before_enqueueing_is_forwarded_on_redelivery(
    forced_cluster, database_url
):
    client = forced_cluster.client
    config = client.settings.config
    # Write what the first tier commits, but never send the message to the second tier (the crash window).
    job_id = client.submit_many([])  # no-op: nothing to send
    assert job_id == []
    from cascade.storage.repository import NewJob, add_jobs

    with session_scope(database_url) as s:
        [(job_uuid, _)] = add_jobs(s, [NewJob("Lost in transit?", ["yes", "no"])], first_tier="always-escalate")
    with session_scope(database_url) as s:
        record_attempts(
            s,
            [AttemptRecord(job_id=job_uuid, tier="always-escalate", tier_index=0, model="tiny:small",
                           decision="escalated", answer="A", p_t=0.1, tokens_in=30, tokens_out=1, flops=1.0)],
            next_tier="always-accept",
        )
    send_jobs(client.app, config.tier("always-escalate"), [job_uuid])  # the redelivered first-tier message
    job = client.result(str(job_uuid), timeout=120)
    assert job["status"] == "done" and [p["tier"] for p in job["path"]] == ["always-escalate", "always-accept"]


def test_an_oversized_question_fails_with_the_reason_and_others_in_its_batch_succeed(forced_cluster):
    client = forced_cluster.client
    ids = client.submit_many(
        [
            {"question": "word " * 1000, "choices": ["a", "b"]},  # 5,000+ bytes > 4,096-token context
            {"question": "Short and fine?", "choices": ["a", "b"]},
        ]
    )
    oversized, fine = (client.result(j, timeout=120) for j in ids)
    assert oversized["status"] == "failed"
    assert "longer than the model's context" in oversized["error"]
    assert oversized["path"][0]["decision"] == "failed"
    assert fine["status"] == "done"


def test_empty_question_and_a_single_choice_are_refused_at_submit(forced_cluster):
    from cascade.router.errors import InvalidQuestion

    with pytest.raises(InvalidQuestion, match="empty question"):
        forced_cluster.client.submit("", ["a", "b"])
    with pytest.raises(InvalidQuestion, match="missing choices"):
        forced_cluster.client.submit("A question", ["only one"])
    with pytest.raises(InvalidQuestion, match="empty prompt"):  # no choices at all: a free-form prompt, which needs text
        forced_cluster.client.submit("", [])


def test_cli_submit_wait_status_and_tiers(forced_cluster):
    env = forced_cluster.env
    result = run_cli(["submit", "Is the sky blue?", "-c", "yes", "-c", "no", "--wait", "--json"], env)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "done" and len(job["path"]) == 2
    shown = run_cli(["status", job["id"]], env)
    assert shown.returncode == 0 and f"job {job['id']}  status done" in shown.stdout
    assert "always-escalate" in shown.stdout and "escalated" in shown.stdout
    missing = run_cli(["status", str(uuid.uuid4())], env)
    assert missing.returncode == 2 and "no job with id" in missing.stderr
    tiers = json.loads(run_cli(["tiers", "--json"], env).stdout)
    assert [t["queue"] for t in tiers] == ["tier.always-escalate", "tier.always-accept", "tier.final"]


def test_demo_on_real_services_leaves_a_job_per_question_and_an_attempt_per_tier_visited(forced_cluster, database_url):
    result = run_cli(["demo", "--json", "--limit", "8"], forced_cluster.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["jobs"] == report["statuses"]["done"] == 8 and report["statuses"]["failed"] == 0
    escalate, accept = report["tiers"]
    assert (escalate["tier"], escalate["answered"], escalate["escalated"], escalate["failed"]) == ("always-escalate", 0, 8, 0)
    assert (accept["tier"], accept["answered"]) == ("always-accept", 8)
    assert report["pd_pp"] is None and 0 <= report["accuracy"] <= 100
    assert report["reduced_cc"] is None  # the last tier never ran and its config gives no `params`
    with session_scope(database_url) as s:
        from cascade.storage.models import Batch, Job

        demo_jobs = s.scalars(select(Job).join(Batch, Batch.id == Job.batch_id).where(Batch.name == report["batch"])).all()
        assert len(demo_jobs) == 8
        counts = [len(j.attempts) for j in demo_jobs]
        assert counts == [2] * 8
