"""The fault suite: break a real cascade on purpose (workers killed, the broker restarted empty, the
database stopped, RabbitMQ as the broker) and check from SQL that every job reached a final state,
no (job, tier) attempt repeats, every job's totals equal the sum of its attempts and no answer
changed. Null-backend models keep the volume cheap; timeouts are short so the suite stays quick."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from tests.integration.conftest import Cluster, cascade_env, run_cli
from tests.integration.faults import (
    OwnPostgres,
    OwnRedis,
    ledger,
    null_config,
    wait_until_finished,
    wait_until_some_done,
    write_rows,
)

# Fast recovery for tests: a dead worker's messages return after 5 s, and workers sweep every 2 s
# for jobs queued longer than 5 s whose messages are gone.
# A worker whose consumer stalls (idle while its queue holds messages for 10 s) exits, and the test
# restarts it as a supervisor would.
QUICK = {"CASCADE_VISIBILITY_TIMEOUT_S": "5", "CASCADE_SWEEP_INTERVAL_S": "2", "CASCADE_REDRIVE_AFTER_S": "5",
         "CASCADE_STALL_AFTER_S": "10"}
pytestmark = pytest.mark.slow


def submit(env: dict[str, str], path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(["batch", "submit", str(path), "--name", name, "--quiet", "--json", *extra], env, timeout=300)


def test_workers_killed_again_and_again_lose_nothing_and_count_nothing_twice(redis_url, database_url, tmp_path):
    config = null_config(tmp_path, delay_ms=40)
    cluster = Cluster(config, redis_url, database_url, tmp_path, **QUICK).start_all()
    first_tier = cluster.client.settings.config.first.name
    name = f"kill-{uuid.uuid4().hex[:6]}"
    try:
        assert submit(cluster.env, write_rows(tmp_path / "rows.jsonl", 3000), name).returncode == 0
        for round_ in range(3):
            wait_until_some_done(database_url, [name], at_least=300 * (round_ + 1))
            cluster.workers[first_tier].kill()  # SIGKILL mid-batch: its unacked messages come back
            cluster.start(first_tier).wait_ready()
        result = wait_until_finished(database_url, [name], timeout_s=180)
    finally:
        cluster.stop()
    assert (result.submitted, result.done, result.failed) == (3000, 3000, 0)
    assert result.clean(), result


def test_a_broker_restarted_empty_mid_batch_is_recovered_with_no_human(database_url, tmp_path):
    broker = OwnRedis(tmp_path).start()
    cluster = Cluster(null_config(tmp_path, delay_ms=20), broker.url, database_url, tmp_path, **QUICK).start_all()
    name = f"broker-{uuid.uuid4().hex[:6]}"
    try:
        assert submit(cluster.env, write_rows(tmp_path / "rows.jsonl", 3000), name).returncode == 0
        wait_until_some_done(database_url, [name], at_least=300)
        broker.kill()  # every queued and unacked message is gone
        broker.start()  # the same port, empty
        result = wait_until_finished(database_url, [name], timeout_s=180, supervise=cluster.restart_exited)
        assert (result.submitted, result.done) == (3000, 3000) and result.clean(), result
        status = json.loads(run_cli(["batch", "status", name, "--json"], cluster.env).stdout)
        assert status["status"] == "completed"

        # A submit that meets the broker down stores what it read and says so; the sweepers finish
        # those jobs once the broker is back, and running the submit again completes the batch.
        later = f"broker-down-{uuid.uuid4().hex[:6]}"
        rows = write_rows(tmp_path / "later.jsonl", 500, prefix="later")
        broker.kill()
        refused = submit(cluster.env, rows, later)
        assert refused.returncode == 5 and refused.stderr.startswith("error: broker unreachable") and "Traceback" not in refused.stderr
        broker.start()
        again = submit(cluster.env, rows, later)
        assert again.returncode == 0, again.stderr
        result = wait_until_finished(database_url, [later], timeout_s=120, supervise=cluster.restart_exited)
        assert (result.submitted, result.done) == (500, 500) and result.clean(), result
    finally:
        cluster.stop()
        broker.kill()


def test_a_database_outage_mid_batch_never_acks_an_uncommitted_message(redis_url, tmp_path):
    postgres = OwnPostgres().init()
    from cascade.storage.engine import dispose_all
    from cascade.storage.migrate import upgrade

    upgrade(postgres.url)
    # No sweeper here: what is checked is that the tier task itself never acks a message whose outcome
    # it could not commit (before, retries ran out after 31 s and the messages were acked anyway).
    cluster = Cluster(null_config(tmp_path, delay_ms=20), redis_url, postgres.url, tmp_path,
                      CASCADE_VISIBILITY_TIMEOUT_S="60", CASCADE_SWEEP_INTERVAL_S="0").start_all()
    name, late = f"db-{uuid.uuid4().hex[:6]}", f"db-late-{uuid.uuid4().hex[:6]}"
    try:
        assert submit(cluster.env, write_rows(tmp_path / "rows.jsonl", 3000), name).returncode == 0
        wait_until_some_done(postgres.url, [name], at_least=300)
        postgres.stop()
        dispose_all()
        down_since = time.monotonic()
        # Longer than the old retry budget (1+2+4+8+16 s), after which messages used to be acked.
        refused = submit(cluster.env, write_rows(tmp_path / "late.jsonl", 400, prefix="late"), late)
        assert refused.returncode == 5 and refused.stderr.startswith("error: database unreachable")
        time.sleep(max(0.0, 40 - (time.monotonic() - down_since)))
        postgres.start()
        resumed = submit(cluster.env, tmp_path / "late.jsonl", late)
        assert resumed.returncode == 0, resumed.stderr
        result = wait_until_finished(postgres.url, [name, late], timeout_s=180)
        assert all(w.proc.poll() is None for w in cluster.workers.values()), "a worker died in the outage"
    finally:
        cluster.stop()
        dispose_all()
        postgres.destroy()
    assert (result.submitted, result.done, result.failed) == (3400, 3400, 0)
    assert result.clean(), result


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def rabbitmq_url():
    from kombu import Connection

    from tests.integration.conftest import _unavailable

    try:
        with Connection(RABBITMQ, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        _unavailable("RabbitMQ", exc)
    return RABBITMQ


def test_rabbitmq_as_the_broker_runs_the_demo_and_survives_a_killed_worker(rabbitmq_url, database_url, tmp_path):
    cluster = Cluster(null_config(tmp_path, delay_ms=40), rabbitmq_url, database_url, tmp_path, **QUICK).start_all()
    first_tier = cluster.client.settings.config.first.name
    name = f"amqp-{uuid.uuid4().hex[:6]}"
    try:
        demo = run_cli(["demo", "--json", "--limit", "8"], cluster.env)
        assert demo.returncode == 0, demo.stderr
        report = json.loads(demo.stdout)
        assert report["statuses"]["done"] == 8 and sum(t["answered"] for t in report["tiers"]) == 8

        assert submit(cluster.env, write_rows(tmp_path / "rows.jsonl", 1500), name).returncode == 0
        wait_until_some_done(database_url, [name], at_least=200)
        cluster.workers[first_tier].kill()  # RabbitMQ requeues its unacked messages at once
        cluster.start(first_tier).wait_ready()
        result = wait_until_finished(database_url, [name], timeout_s=120)
    finally:
        cluster.stop()
    assert (result.submitted, result.done) == (1500, 1500) and result.clean(), result
    assert ledger(database_url, [report["batch"]]).clean()


def test_the_ledger_notices_a_lost_job(database_url, redis_url, tmp_path):
    """The checks above can fail: a batch whose jobs never ran shows up as lost."""
    env = cascade_env(redis_url, database_url, null_config(tmp_path))  # no workers at all
    name = f"unworked-{uuid.uuid4().hex[:6]}"
    assert submit(env, write_rows(tmp_path / "rows.jsonl", 5), name).returncode == 0
    assert ledger(database_url, [name]).lost == 5
    run_cli(["batch", "cancel", name], env)
