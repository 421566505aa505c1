"""Batch runs against real Redis, PostgreSQL and workers."""

import json
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select

from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt, Job
from tests.integration.conftest import CONFIGS, cascade_env, run_cli

pytestmark = pytest.mark.integration


def wait_status(env, name, wanted, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(run_cli(["batch", "status", name, "--json"], env).stdout)
        if status["status"] == wanted:
            return status
        time.sleep(0.5)
    raise AssertionError(f"batch {name} did not reach {wanted}: {status}")


def test_a_batch_with_malformed_rows_completes_and_exports_every_row_id_once(null_cluster, tmp_path):
    env = null_cluster.env
    path = tmp_path / "rows.jsonl"
    good = [{"id": f"r{i}", "question": f"Question {i}?", "choices": ["a", "b", "c", "d"], "answer": "ABCD"[i % 4]} for i in range(40)]
    lines = [json.dumps(r).encode() for r in good]
    lines.insert(5, b'{"id": "broken", ')
    lines.insert(9, json.dumps({"id": "noq", "choices": ["a", "b"]}).encode())
    lines.insert(12, b'{"id": "latin1", "question": "caf\xe9?", "choices": ["a", "b"]}')
    lines.insert(20, json.dumps({"id": "r3", "question": "dup?", "choices": ["a", "b"]}).encode())  # duplicate id
    path.write_bytes(b"\n".join(lines) + b"\n")
    name = f"b-{uuid.uuid4().hex[:6]}"
    result = run_cli(["batch", "submit", str(path), "--name", name, "--json", "--chunk-size", "7"], env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == 44 and summary["counts"]["rejected"] == 1
    assert summary["errors"] == ["line 21: duplicate id 'r3' (first at line 4); row rejected"]  # 1-based file lines
    grouped = {e["error"]: (e["rows"], e["first"]) for e in summary["row_errors"]}
    assert grouped["duplicate id (row rejected)"] == (1, "line 21") and grouped["empty question: give the question text"] == (1, "line 10")
    final = wait_status(env, name, "completed")
    assert final["counts"] == {"total": 43, "completed": 40, "failed": 3, "cancelled": 0, "queued": 0, "rejected": 1}
    out = tmp_path / "out.jsonl"
    exported = run_cli(["batch", "export", name, "-o", str(out), "--quiet"], env)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 43
    assert set(ids) == {r["id"] for r in good} | {"#6", "noq", "#13"}
    by_id = {r["id"]: r for r in records}
    assert by_id["#6"]["status"] == "failed" and by_id["#6"]["error"].startswith("bad JSON")
    assert by_id["#13"]["error"].startswith("not UTF-8") and by_id["noq"]["error"] == "empty question: give the question text"
    answered = by_id["r7"]
    assert answered["status"] == "done" and answered["path"][0]["tier"] == "null-small"
    assert answered["correct"] == (answered["answer"] == "D") and answered["flops"] > 0
    listed = json.loads(run_cli(["batch", "list", "--json"], env).stdout)
    assert name in [b["name"] for b in listed]
    for _ in range(2):  # submitting the same batch again counts and stores nothing twice
        again = json.loads(run_cli(["batch", "submit", str(path), "--name", name, "--json"], env).stdout)
        assert again["counts"]["rejected"] == 1 and len(again["errors"]) == 1 and again["row_errors"] == []
        assert again["rows_new"] == 0 and again["counts"]["total"] == 43


def test_a_csv_without_its_id_column_is_refused_up_front(null_cluster, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("qid,question,A,B\n" + "".join(f"q{i},Question {i}?,yes,no\n" for i in range(5)))
    name = f"noid-{uuid.uuid4().hex[:6]}"
    refused = run_cli(["batch", "submit", str(path), "--name", name], null_cluster.env)
    assert refused.returncode == 2 and "has no id column 'id'" in refused.stderr and "--id-field" in refused.stderr
    assert json.loads(run_cli(["batch", "status", name, "--json"], null_cluster.env).stdout)["status"] == "failed"
    fixed = run_cli(["batch", "submit", str(path), "--name", name, "--id-field", "qid", "--json"], null_cluster.env)
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["rows_new"] == 5


def test_a_killed_submit_resumes_without_duplicating_rows(redis_url, database_url, tmp_path):
    env = cascade_env(redis_url, database_url, CONFIGS / "null.toml")
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        for i in range(30000):
            fh.write(json.dumps({"id": i, "question": f"Q{i}?", "choices": ["a", "b"]}) + "\n")
    name = f"resume-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "cascade.workers", "batch", "submit", str(path), "--name", name, "--quiet"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = run_cli(["batch", "status", name, "--json"], env)
        if status.returncode == 0 and 0 < json.loads(status.stdout)["rows_read"]:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    partial = json.loads(run_cli(["batch", "status", name, "--json"], env).stdout)
    assert partial["status"] == "validating" and partial["counts"]["total"] < 30000
    again = run_cli(["batch", "submit", str(path), "--name", name, "--json"], env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["resumed"] is True and summary["status"] == "in_progress"
    assert summary["counts"]["total"] == 30000 and summary["counts"]["rejected"] == 0
    assert summary["rows_new"] == 30000 - partial["counts"]["total"]
    with session_scope(database_url) as s:
        batch_id = uuid.UUID(summary["id"])
        assert s.scalar(select(func.count(func.distinct(Job.row_id))).where(Job.batch_id == batch_id)) == 30000
    cancelled = run_cli(["batch", "cancel", name, "--json"], env)  # leave no work behind for other tests
    assert cancelled.returncode == 0, cancelled.stderr  # workers may be updating these jobs right now
    assert json.loads(cancelled.stdout)["status"] in ("cancelled", "completed")


def test_cancel_stops_the_remaining_rows(redis_url, database_url, tmp_path):
    # Tiers of their own, so that no running worker takes the rows before the cancel.
    config = tmp_path / "idle.toml"
    config.write_text((CONFIGS / "null.toml").read_text().replace('name = "null-', 'name = "idle-'))
    env = cascade_env(redis_url, database_url, config)
    path = tmp_path / "c.csv"
    path.write_text("id,question,A,B\n" + "".join(f"c{i},Question {i}?,yes,no\n" for i in range(50)))
    name = f"cancel-{uuid.uuid4().hex[:6]}"
    assert run_cli(["batch", "submit", str(path), "--name", name, "--quiet"], env).returncode == 0
    result = json.loads(run_cli(["batch", "cancel", name, "--json"], env).stdout)  # no workers ran yet
    assert result["status"] == "cancelled" and result["cancelled_now"] == 50
    refused = run_cli(["batch", "submit", str(path), "--name", name], env)
    assert refused.returncode == 2 and "was cancelled" in refused.stderr
    from tests.integration.conftest import Cluster

    cluster = Cluster(config, redis_url, database_url, tmp_path).start_all()
    try:
        sentinel = cluster.client.submit("After the cancel?", ["a", "b"])
        cluster.client.result(sentinel, timeout=60)
        with session_scope(database_url) as s:
            batch_id = uuid.UUID(result["id"])
            attempts = s.scalar(
                select(func.count()).select_from(Attempt).join(Job, Job.id == Attempt.job_id).where(Job.batch_id == batch_id)
            )
        assert attempts == 0  # the workers skipped every cancelled job
    finally:
        cluster.stop()


def test_parquet_and_csv_batches_store_the_same_questions(null_cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    env = null_cluster.env
    rows = [{"id": f"p{i}", "question": f"Parity {i}?", "choices": ["x", "y", "z"], "answer": "C"} for i in range(20)]
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), tmp_path / "p.parquet")
    (tmp_path / "p.csv").write_text(
        "id,question,choices,answer\n" + "".join(f'{r["id"]},{r["question"]},"{json.dumps(r["choices"]).replace(chr(34), chr(34) * 2)}",C\n' for r in rows)
    )
    names = {}
    for kind in ("parquet", "csv"):
        name = f"parity-{kind}-{uuid.uuid4().hex[:4]}"
        assert run_cli(["batch", "submit", str(tmp_path / f"p.{kind}"), "--name", name, "--quiet"], env).returncode == 0
        wait_status(env, name, "completed")
        names[kind] = name
    exports = {}
    for kind, name in names.items():
        out = run_cli(["batch", "export", name], env).stdout.splitlines()
        exports[kind] = {json.loads(line)["id"]: json.loads(line) for line in out}
    assert exports["parquet"].keys() == exports["csv"].keys() == {r["id"] for r in rows}
    for row_id, record in exports["parquet"].items():
        other = exports["csv"][row_id]
        assert (record["answer"], record["gold"], record["final_tier"]) == (other["answer"], other["gold"], other["final_tier"])


def test_cancel_does_not_deadlock_with_a_worker_holding_some_of_the_jobs(database_url):
    """A worker holds job A and then updates job B while cancel runs: one UPDATE over the batch
    would wait on A while holding B, and PostgreSQL would abort one side as a deadlock."""
    import threading

    from sqlalchemy import text

    from cascade.storage import batches as store
    from cascade.storage.engine import get_engine

    name = f"deadlock-{uuid.uuid4().hex[:6]}"
    with session_scope(database_url) as s:
        batch, _ = store.create_or_resume(s, name=name, source="t.jsonl", id_field="id")
        rows = [store.BatchRow(index=i, row_id=str(i), question=f"Q{i}?", choices=["a", "b"]) for i in range(200)]
        store.insert_rows(s, batch.id, rows, first_tier="t")
        in_file_order = s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.row_index)).all()
    # A scan of the batch meets `later` (stored first) long before `held` (stored last).
    later, held = in_file_order[0], in_file_order[-1]
    worker = get_engine(database_url).connect()
    tx = worker.begin()
    worker.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": held})
    outcome: dict = {}

    def run_cancel():
        try:
            with session_scope(database_url) as s:
                outcome["cancelled"] = store.cancel(s, store.get_batch(s, name))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc

    thread = threading.Thread(target=run_cancel)
    thread.start()
    time.sleep(0.5)
    worker.execute(text("UPDATE jobs SET status = 'done' WHERE id = :id AND status = 'queued'"), {"id": later})
    worker.execute(text("UPDATE jobs SET status = 'done' WHERE id = :id"), {"id": held})
    tx.commit()
    worker.close()
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    with session_scope(database_url) as s:
        statuses = dict(s.execute(select(Job.status, func.count()).where(Job.batch_id == batch.id).group_by(Job.status)).all())
    assert statuses.get("queued", 0) == 0
    assert statuses["cancelled"] == outcome["cancelled"] and statuses["cancelled"] + statuses.get("done", 0) == 200
