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
