"""Workers that die, refuse to start, or lose their broker messages: no job is lost or doubled."""

import json
import time
import uuid

import pytest
from sqlalchemy import func, select

from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt
from cascade.storage.repository import NewJob, add_jobs
from tests.integration.conftest import CONFIGS, Cluster, cascade_env, run_cli

pytestmark = pytest.mark.integration


def test_a_killed_workers_message_is_redelivered_and_answered_once(redis_url, database_url, tmp_path):
    cluster = Cluster(CONFIGS / "slow.toml", redis_url, database_url, tmp_path, CASCADE_VISIBILITY_TIMEOUT_S="3")
    try:
        first = cluster.start("slow")
        first.wait_ready()
        job_id = cluster.client.submit("Will this survive a crash?", ["yes", "no"])
        time.sleep(1.5)  # the worker holds the message, unacked, inside its 4 s "forward pass"
        first.kill()
        assert cluster.client.status(job_id)["status"] == "queued"
        second = cluster.start("slow")
        second.wait_ready()
        job = cluster.client.result(job_id, timeout=60)
        assert job["status"] == "done" and len(job["path"]) == 1
        assert job["path"][0]["worker"]
    finally:
        cluster.stop()


def test_thresholds_split_traffic_and_every_decision_matches_its_signals(redis_url, database_url, tmp_path):
    cluster = Cluster(CONFIGS / "null.toml", redis_url, database_url, tmp_path).start_all()
    try:
        items = [{"question": f"Synthetic question {i}?", "choices": ["a", "b", "c", "d"]} for i in range(200)]
        job_ids = cluster.client.submit_many(items)
        statuses = cluster.client.wait_all(job_ids, timeout=120)
        assert set(statuses.values()) == {"done"}
        with session_scope(database_url) as s:
            rows = s.execute(
                select(Attempt.tier, Attempt.decision, Attempt.p_t, Attempt.tau_t, Attempt.flops, Attempt.tokens_in)
                .where(Attempt.job_id.in_([uuid.UUID(j) for j in job_ids]))
            ).all()
        small = [r for r in rows if r.tier == "null-small"]
        large = [r for r in rows if r.tier == "null-large"]
        assert len(small) == 200
        escalated = [r for r in small if r.decision == "escalated"]
        assert all((r.p_t >= 0.5) == (r.decision == "accepted") for r in small)
        assert 60 <= len(escalated) <= 140  # uniform P(T), tau 0.5
        assert len(large) == len(escalated) and all(r.decision == "accepted" for r in large)
        assert all(r.flops == 2 * 70e9 * (r.tokens_in + 1) for r in large)
    finally:
        cluster.stop()


def test_redrive_resends_jobs_that_the_broker_lost(redis_url, database_url, tmp_path):
    cluster = Cluster(CONFIGS / "null.toml", redis_url, database_url, tmp_path).start_all()
    try:
        with session_scope(database_url) as s:  # rows committed, messages never sent (Redis restarted empty)
            ids = [str(j) for j, _ in add_jobs(s, [NewJob(f"Lost {i}?", ["a", "b"]) for i in range(5)], first_tier="null-small")]
        dry = run_cli(["redrive", "--older-than", "0", "--dry-run"], cluster.env)
        assert dry.returncode == 0 and "would re-enqueue" in dry.stdout
        assert cluster.client.status(ids[0])["status"] == "queued"
        done = run_cli(["redrive", "--older-than", "0", "--json"], cluster.env)
        [small] = [t for t in json.loads(done.stdout) if t["tier"] == "null-small"]
        assert done.returncode == 0 and small["queue_depth"] == 0 and small["resent"] == small["stranded"] >= 5
        assert set(cluster.client.wait_all(ids, timeout=60).values()) == {"done"}
        with session_scope(database_url) as s:
            per_job = s.execute(
                select(func.count()).select_from(Attempt).where(Attempt.job_id.in_([uuid.UUID(i) for i in ids])).group_by(Attempt.job_id, Attempt.tier)
            ).scalars().all()
        assert set(per_job) == {1}
    finally:
        cluster.stop()


def test_worker_start_up_errors_name_the_problem(redis_url, database_url, tmp_path):
    env = cascade_env(redis_url, database_url, CONFIGS / "null.toml")
    unknown = run_cli(["worker", "--tier", "huge"], env, timeout=120)
    assert unknown.returncode == 2
    assert "unknown tier 'huge': configured tiers are null-small, null-large" in unknown.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text(f'[[tiers]]\nname = "a"\nbackend = "transformers"\nmodel = "{tmp_path}/missing.gguf"\n')
    unloadable = run_cli(["worker", "--tier", "a"], cascade_env(redis_url, database_url, broken), timeout=120)
    assert unloadable.returncode == 3
    assert "GGUF file" in unloadable.stderr and "not found" in unloadable.stderr

    invalid = tmp_path / "invalid.toml"
    invalid.write_text('[[tiers]]\nname = "a"\nbackend = "transformers"\nmodel = "m"\ntau_t = 2\n')
    refused = run_cli(["tiers"], cascade_env(redis_url, database_url, invalid))
    assert refused.returncode == 2 and "tiers[0] (a).tau_t: expected a threshold between 0 and 1" in refused.stderr


def test_redrive_tells_jobs_waiting_behind_queued_messages_from_lost_ones(redis_url, database_url, tmp_path):
    config = tmp_path / "idle.toml"
    config.write_text((CONFIGS / "null.toml").read_text().replace('name = "null-', f'name = "idle{uuid.uuid4().hex[:4]}-'))
    cluster = Cluster(config, redis_url, database_url, tmp_path)  # no workers: the messages stay queued
    ids = [cluster.client.submit(f"Waiting {i}?", ["a", "b"]) for i in range(3)]
    left = run_cli(["redrive", "--older-than", "0"], cluster.env)
    assert left.returncode == 0 and "3 queued, left alone: 3 message(s) still in the queue" in left.stdout
    forced = json.loads(run_cli(["redrive", "--older-than", "0", "--include-waiting", "--json"], cluster.env).stdout)
    assert forced[0]["resent"] == 3
    cluster.start_all()
    try:
        assert set(cluster.client.wait_all(ids, timeout=60).values()) == {"done"}  # sent twice, answered once
    finally:
        cluster.stop()


WATCHDOG = """
import dataclasses, sys, time
from cascade.workers.runtime.app import create_app
from cascade.workers.runtime.health import Watchdog
from cascade.workers.runtime.settings import resolve
from cascade.workers.runtime.tier_task import activity

settings = dataclasses.replace(resolve(sys.argv[1], broker_url=sys.argv[2], database_url=sys.argv[3]), stall_after_s=1.0)
Watchdog(create_app(settings), settings, settings.config.first, activity, interval_s=0.2).start()
time.sleep(float(sys.argv[4]))
"""


def test_a_worker_idle_while_its_queue_holds_messages_exits_to_be_restarted(redis_url, database_url, tmp_path):
    """Celery's consumer can stop consuming after a broker restart; the watchdog notices and exits."""
    import subprocess
    import sys

    from cascade.workers.runtime.dispatch import send_jobs

    config = tmp_path / "stalled.toml"
    config.write_text((CONFIGS / "null.toml").read_text().replace('name = "null-', f'name = "stall{uuid.uuid4().hex[:4]}-'))
    args = [sys.executable, "-c", WATCHDOG, str(config), redis_url, database_url]
    calm = subprocess.run([*args, "3"], capture_output=True, text=True, timeout=30)  # nothing waiting: it stays
    assert calm.returncode == 0, calm.stderr
    cluster = Cluster(config, redis_url, database_url, tmp_path)
    send_jobs(cluster.client.app, cluster.client.settings.config.first, [str(uuid.uuid4())])  # a message no one takes
    stalled = subprocess.run([*args, "30"], capture_output=True, text=True, timeout=60)
    assert stalled.returncode == 70 and "nothing consumed" in stalled.stderr
