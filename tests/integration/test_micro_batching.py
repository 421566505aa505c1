"""A tier worker drains waiting single-question messages into one forward pass."""

import uuid

import pytest
from sqlalchemy import select

from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

CONFIG = """
[[tiers]]
name = "drain-{tag}"
backend = "null"
model = "null-drain"
max_batch = 8
max_wait_ms = 300
"""


def test_single_question_messages_are_scored_together_up_to_max_batch(redis_url, database_url, tmp_path):
    config = tmp_path / "drain.toml"
    config.write_text(CONFIG.format(tag=uuid.uuid4().hex[:6]))
    cluster = Cluster(config, redis_url, database_url, tmp_path)
    # Twenty messages of one question each wait in the queue before any worker runs.
    job_ids = [cluster.client.submit(f"Drained question {i}?", ["a", "b"]) for i in range(20)]
    try:
        cluster.start_all()
        assert set(cluster.client.wait_all(job_ids, timeout=60).values()) == {"done"}
        with session_scope(database_url) as s:
            rows = s.execute(
                select(Attempt.job_id, Attempt.latency_ms, Attempt.created_at).where(
                    Attempt.job_id.in_([uuid.UUID(j) for j in job_ids])
                )
            ).all()
    finally:
        cluster.stop()
    assert len(rows) == 20
    passes = {}
    for row in rows:  # attempts scored in one pass share its commit time and latency
        passes.setdefault((row.created_at, row.latency_ms), []).append(row.job_id)
    sizes = sorted(len(v) for v in passes.values())
    assert max(sizes) == 8 and len(passes) <= 5, sizes


def test_a_big_message_is_committed_one_forward_pass_at_a_time(redis_url, database_url, tmp_path):
    """A slow tier shows progress and a crash loses one pass, not a whole message."""
    config = tmp_path / "passes.toml"
    config.write_text(CONFIG.format(tag=uuid.uuid4().hex[:6]).replace("max_wait_ms = 300", "max_wait_ms = 0\noptions = { delay_ms = 200 }"))
    cluster = Cluster(config, redis_url, database_url, tmp_path)
    from cascade.storage.repository import NewJob, add_jobs
    from cascade.workers.runtime.dispatch import send_jobs

    with session_scope(database_url) as s:
        ids = [job_id for job_id, _ in add_jobs(s, [NewJob(f"Pass question {i}?", ["a", "b"]) for i in range(32)], first_tier=cluster.client.settings.config.first.name)]
    send_jobs(cluster.client.app, cluster.client.settings.config.first, ids, chunk_size=32)  # one message, four passes of 8
    try:
        cluster.start_all()
        assert set(cluster.client.wait_all([str(i) for i in ids], timeout=60).values()) == {"done"}
        with session_scope(database_url) as s:
            commits = s.execute(select(Attempt.created_at).where(Attempt.job_id.in_(ids))).scalars().all()
    finally:
        cluster.stop()
    assert len(commits) == 32 and len(set(commits)) == 4  # one commit per pass of max_batch
