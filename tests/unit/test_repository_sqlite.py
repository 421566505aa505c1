"""Repository functions on SQLite (the same code runs on PostgreSQL in the integration tests)."""

import uuid

import pytest
from sqlalchemy import func, select

from cascade.storage.engine import session_scope
from cascade.storage.migrate import current, head, upgrade
from cascade.storage.models import Attempt, Job
from cascade.storage.repository import (
    AttemptRecord,
    NewJob,
    add_jobs,
    fail_jobs,
    find_job,
    record_attempts,
    stranded_jobs,
    work_for_tier,
)


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path}/t.sqlite"
    upgrade(url)
    assert current(url) == head()
    return url


def attempt(job_id, tier="small", index=0, decision="escalated", **kw):
    defaults = dict(model="m", answer="A", p_t=0.5, tokens_in=10, tokens_out=1, flops=22.0, cost_usd=0.001, latency_ms=5.0)
    return AttemptRecord(job_id=job_id, tier=tier, tier_index=index, decision=decision, **(defaults | kw))


def test_repeated_external_id_returns_the_first_job(db):
    with session_scope(db) as s:
        first = add_jobs(s, [NewJob("q", ["a", "b"], external_id="x1"), NewJob("r", ["a", "b"])], first_tier="small")
    with session_scope(db) as s:
        again = add_jobs(s, [NewJob("q", ["a", "b"], external_id="x1")], first_tier="small")
    assert [created for _, created in first] == [True, True]
    assert again == [(first[0][0], False)]
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2
        assert find_job(s, "x1").id == first[0][0]


def test_an_escalation_then_an_answer_sums_costs_once_even_when_replayed(db):
    with session_scope(db) as s:
        [(job_id, _)] = add_jobs(s, [NewJob("q", ["a", "b"])], first_tier="small")
    for _ in range(2):  # the second round is a redelivered message
        with session_scope(db) as s:
            new = record_attempts(s, [attempt(job_id)], next_tier="large")
    assert new == set()
    with session_scope(db) as s:
        assert work_for_tier(s, [job_id], "small").pending == []
        assert [p.id for p in work_for_tier(s, [job_id], "large").pending] == [job_id]
        assert work_for_tier(s, [job_id], "small").reforward == {"large": [job_id]}
    for _ in range(2):
        with session_scope(db) as s:
            record_attempts(s, [attempt(job_id, "large", 1, "accepted", answer="B", flops=200.0)], next_tier=None)
    with session_scope(db) as s:
        job = find_job(s, str(job_id))
        assert job.status == "done" and job.answer == "B" and job.final_tier == "large"
        assert [a.tier for a in job.attempts] == ["small", "large"]
        assert job.flops == 222.0 and job.tokens_in == 20 and job.cost_usd == pytest.approx(0.002)
        assert s.scalar(select(func.count()).select_from(Attempt)) == 2
        assert work_for_tier(s, [job_id], "small").reforward == {}


def test_failures_end_the_job_with_the_reason(db):
    with session_scope(db) as s:
        ids = [j for j, _ in add_jobs(s, [NewJob("q", ["a", "b"]), NewJob("r", ["a", "b"])], first_tier="small")]
    with session_scope(db) as s:
        record_attempts(s, [attempt(ids[0], decision="failed", error="prompt too long", flops=0.0)], next_tier="large")
        assert fail_jobs(s, [ids[1]], tier="small", error="model crashed") == 1
    with session_scope(db) as s:
        a, b = find_job(s, str(ids[0])), find_job(s, str(ids[1]))
        assert (a.status, a.error) == ("failed", "small: prompt too long")
        assert (b.status, b.error) == ("failed", "small: model crashed")


def test_stranded_jobs_are_found_by_the_tier_they_wait_on_in_pages(db):
    with session_scope(db) as s:
        ids = sorted(job_id for job_id, _ in add_jobs(s, [NewJob(f"q{i}", ["a", "b"]) for i in range(5)], first_tier="small"))
    with session_scope(db) as s:
        assert stranded_jobs(s, older_than_s=3600, tier="small") == []
        assert stranded_jobs(s, older_than_s=-1, tier="other-cascade") == []
        first = stranded_jobs(s, older_than_s=-1, tier="small", limit=3)
        rest = stranded_jobs(s, older_than_s=-1, tier="small", after=first[-1], limit=3)
    assert first + rest == ids and len(rest) == 2


def test_an_external_id_names_one_question_and_unstarted_jobs_can_be_sent_again(db):
    from cascade.storage.repository import ExternalIdConflict, unstarted

    with session_scope(db) as s:
        [(job_id, _)] = add_jobs(s, [NewJob("q", ["a", "b"], external_id="e1")], first_tier="small")
    with pytest.raises(ExternalIdConflict, match="external id 'e1' already names another question"):
        with session_scope(db) as s:
            add_jobs(s, [NewJob("another q", ["a", "b"], external_id="e1")], first_tier="small")
    with session_scope(db) as s:
        assert unstarted(s, [job_id], tier="small") == [job_id]  # submitted, maybe never sent
        record_attempts(s, [attempt(job_id)], next_tier="large")
    with session_scope(db) as s:
        assert unstarted(s, [job_id], tier="small") == []


def test_unknown_job_is_none(db):
    with session_scope(db) as s:
        assert find_job(s, str(uuid.uuid4())) is None
        assert find_job(s, "nobody") is None


def test_a_job_cancelled_while_it_was_scored_gets_no_attempt_and_no_cost(db):
    with session_scope(db) as s:
        [(job_id, _)] = add_jobs(s, [NewJob("q", ["a", "b"])], first_tier="small")
    with session_scope(db) as s:  # the batch is cancelled after the worker read the job
        s.get(Job, job_id).status = "cancelled"
    with session_scope(db) as s:
        assert record_attempts(s, [attempt(job_id, decision="accepted")], next_tier="large") == set()
    with session_scope(db) as s:
        job = s.get(Job, job_id)
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
        assert (job.status, job.answer, job.tokens_in, job.flops) == ("cancelled", None, 0, 0.0)


def test_an_attempt_for_a_job_that_moved_on_to_another_tier_is_not_written(db):
    with session_scope(db) as s:
        [(job_id, _)] = add_jobs(s, [NewJob("q", ["a", "b"])], first_tier="large")
    with session_scope(db) as s:
        assert record_attempts(s, [attempt(job_id, tier="small")], next_tier="large") == set()
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
