"""Orchestration throughput: a whole batch run through a two-tier cascade on the `null` backend
(instant answers, synthetic confidences) against Redis and PostgreSQL, beside bare Celery no-op
tasks (one message each) measured in the same run on the same broker.

    python benchmarks/orchestration.py --jobs 20000
    python benchmarks/orchestration.py --jobs 20000 --json

Needs Redis and PostgreSQL (defaults: the local services; a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

NULL_CONFIG = """
[[tiers]]
name = "bench-small"
backend = "null"
model = "null-small"
params = "8B"
tau_t = {tau}
max_batch = {chunk}

[[tiers]]
name = "bench-large"
backend = "null"
model = "null-large"
params = "70B"
max_batch = {chunk}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000, help="questions in the batch run")
    parser.add_argument("--baseline-jobs", type=int, default=3000, help="bare Celery no-op messages")
    parser.add_argument("--escalate", type=float, default=0.3, help="share of questions the small tier escalates")
    parser.add_argument("--chunk", type=int, default=500, help="job ids per message (and max_batch)")
    parser.add_argument("--redis-url", default=os.environ.get("CASCADE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CASCADE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where a scratch database may be created",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def scratch_database(admin_url: str):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from cascade.storage.engine import normalise_url

    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"cascade_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from cascade.storage.engine import dispose_all

        dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def start_worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ping(app, hostname: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker {hostname} exited early")
        if app.control.ping(destination=[hostname], timeout=0.5):
            return
    raise SystemExit(f"worker {hostname} not ready")


def wait_alive(alive: Path, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """A cascade worker touches its heartbeat file once it consumes (remote control is off)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited early: see {alive.with_suffix('.log')}")
        if alive.exists():
            return
        time.sleep(0.1)
    raise SystemExit(f"worker not ready: see {alive.with_suffix('.log')}")


def run_baseline(redis_url: str, n: int, workdir: Path) -> float:
    """Bare Celery: one no-op message per job through the same Redis, one solo worker."""
    import redis

    from benchmarks.noop_app import COUNTER, make_app

    client = redis.Redis.from_url(redis_url)
    client.delete(COUNTER)
    env = dict(os.environ, BENCH_BROKER_URL=redis_url, PYTHONPATH=str(ROOT))
    hostname = f"noop-{uuid.uuid4().hex[:6]}@bench"
    proc = start_worker(
        [sys.executable, "-m", "celery", "-A", "benchmarks.noop_app:app", "worker", "--pool", "solo", "-Q", "bench.noop",
         "--hostname", hostname, "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        env,
        workdir / "noop.log",
    )
    app = make_app(redis_url)
    try:
        wait_ping(app, hostname, proc)
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task("bench.noop", queue="bench.noop", producer=producer)
        while int(client.get(COUNTER) or 0) < n:
            time.sleep(0.01)
        return n / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(30)


def run_cascade(redis_url: str, database_url: str, n: int, tau: float, chunk: int, workdir: Path) -> dict:
    from sqlalchemy import func, select

    from cascade.storage.engine import session_scope
    from cascade.storage.migrate import upgrade
    from cascade.storage.models import Attempt, Job
    from cascade.workers.batch.runs import submit_file
    from cascade.workers.client import Cascade

    upgrade(database_url)
    config = workdir / "bench.toml"
    config.write_text(NULL_CONFIG.format(tau=tau, chunk=chunk))
    data = workdir / "rows.jsonl"
    with open(data, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": i, "question": f"Benchmark question number {i}?", "choices": ["a", "b", "c", "d"]}) + "\n")
    env = dict(os.environ, CASCADE_BROKER_URL=redis_url, CASCADE_DATABASE_URL=database_url, CASCADE_CONFIG=str(config))
    client = Cascade(config, broker_url=redis_url, database_url=database_url)
    procs = []
    try:
        for tier in ("bench-small", "bench-large"):
            hostname = f"{tier}-{uuid.uuid4().hex[:6]}@bench"
            alive = workdir / f"{tier}.alive"
            proc = start_worker(
                [sys.executable, "-m", "cascade.workers", "worker", "--tier", tier, "--hostname", hostname, "--loglevel", "WARNING"],
                env | {"CASCADE_HEARTBEAT_FILE": str(alive)},
                workdir / f"{tier}.log",
            )
            procs.append(proc)
            wait_alive(alive, proc)
        started = time.perf_counter()
        summary = submit_file(client, data, name=f"bench-{uuid.uuid4().hex[:6]}", chunk_size=chunk)
        submitted = time.perf_counter()
        with session_scope(database_url) as session:
            while session.scalar(select(func.count()).select_from(Job).where(Job.status == "queued")):
                time.sleep(0.1)
            finished = time.perf_counter()
            escalated = session.scalar(
                select(func.count()).select_from(Attempt).where(Attempt.decision == "escalated")
            )
            attempts = session.scalar(select(func.count()).select_from(Attempt))
            done = session.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    elapsed = finished - started
    return {
        "jobs": n,
        "done": done,
        "attempts": attempts,
        "escalated_share": round(escalated / n, 4),
        "submit_s": round(submitted - started, 3),
        "elapsed_s": round(elapsed, 3),
        "jobs_per_s": round(n / elapsed, 1),
        "submit_rows_per_s": round(n / (submitted - started), 1),
        "batch_status": summary["status"],
    }


def main() -> None:
    args = parse_args()
    database_url, drop = scratch_database(args.postgres_url)
    try:
        with tempfile.TemporaryDirectory(prefix="cascade-bench-") as tmp:
            workdir = Path(os.environ.get("BENCH_LOG_DIR") or tmp)
            baseline = run_baseline(args.redis_url, args.baseline_jobs, workdir)
            cascade = run_cascade(args.redis_url, database_url, args.jobs, args.escalate, args.chunk, workdir)
    finally:
        drop()
    result = {
        **cascade,
        "baseline_jobs_per_s": round(baseline, 1),
        "speedup_vs_baseline": round(cascade["jobs_per_s"] / baseline, 2),
        "per_job_overhead_ms": round(1000.0 / cascade["jobs_per_s"], 4),
        "baseline_per_job_ms": round(1000.0 / baseline, 4),
        "chunk": args.chunk,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'pipeline':<44}{'jobs':>8}{'jobs/s':>10}{'ms/job':>9}")
    print(f"{'bare Celery no-op, one message per job':<44}{args.baseline_jobs:>8}{baseline:>10.0f}{1000 / baseline:>9.3f}")
    print(
        f"{'cascade batch run, 2 tiers, PostgreSQL':<44}{args.jobs:>8}{cascade['jobs_per_s']:>10.0f}"
        f"{1000 / cascade['jobs_per_s']:>9.3f}"
    )
    print(
        f"\nratio {result['speedup_vs_baseline']:.2f}x the bare baseline; escalated {cascade['escalated_share']:.1%}; "
        f"submit {cascade['submit_rows_per_s']:.0f} rows/s; {cascade['attempts']} attempts written"
    )


if __name__ == "__main__":
    main()
