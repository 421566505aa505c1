"""Soak: many null-backend jobs through a three-tier cascade on Redis and PostgreSQL, to show that
worker memory and throughput stay flat over a long run. Jobs arrive in batches; the throughput of
each interval (default 10 s) and each worker's resident memory at the start, after the first batch
and at the end are printed, with the first interval as the baseline the later ones are compared with.

    python benchmarks/soak.py --jobs 200000
    python benchmarks/soak.py --jobs 200000 --json

Needs Redis and PostgreSQL (defaults: the local services; a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.orchestration import scratch_database, start_worker, wait_alive  # noqa: E402

CONFIG = """
[[tiers]]
name = "soak-small"
backend = "null"
model = "null-small"
params = "1B"
tau_t = 0.5
max_batch = {chunk}

[[tiers]]
name = "soak-medium"
backend = "null"
model = "null-medium"
params = "8B"
tau_t = 0.5
max_batch = {chunk}

[[tiers]]
name = "soak-large"
backend = "null"
model = "null-large"
params = "70B"
max_batch = {chunk}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per batch submitted")
    parser.add_argument("--chunk", type=int, default=500, help="job ids per message (and max_batch)")
    parser.add_argument("--redis-url", default=os.environ.get("CASCADE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--postgres-url", default=os.environ.get("CASCADE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--interval-s", type=float, default=10.0, help="throughput is reported per interval this long")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def finished(database_url: str) -> int:
    from sqlalchemy import func, select

    from cascade.storage.engine import session_scope
    from cascade.storage.models import Job

    with session_scope(database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.status != "queued")) or 0)


def run(args: argparse.Namespace, database_url: str, workdir: Path) -> dict:
    from cascade.storage.migrate import upgrade
    from cascade.workers.batch.runs import submit_file
    from cascade.workers.client import Cascade

    upgrade(database_url)
    config = workdir / "soak.toml"
    config.write_text(CONFIG.format(chunk=args.chunk))
    env = dict(os.environ, CASCADE_BROKER_URL=args.redis_url, CASCADE_DATABASE_URL=database_url, CASCADE_CONFIG=str(config))
    client = Cascade(config, broker_url=args.redis_url, database_url=database_url)
    workers = {}
    try:
        for tier in ("soak-small", "soak-medium", "soak-large"):
            alive = workdir / f"{tier}.alive"
            proc = start_worker(
                [sys.executable, "-m", "cascade.workers", "worker", "--tier", tier, "--hostname", f"{tier}-{uuid.uuid4().hex[:4]}@soak",
                 "--loglevel", "WARNING"],
                env | {"CASCADE_HEARTBEAT_FILE": str(alive)},
                workdir / f"{tier}.log",
            )
            workers[tier] = proc
            wait_alive(alive, proc)
        rss_start = {tier: rss_mb(p.pid) for tier, p in workers.items()}
        started = time.monotonic()
        intervals: list[int] = []
        last_mark, last_done, submitted = started, 0, 0
        rss_after_first_batch = None
        while True:
            if submitted < args.jobs:
                n = min(args.batch, args.jobs - submitted)
                rows = workdir / "rows.jsonl"
                with open(rows, "w") as fh:
                    for i in range(submitted, submitted + n):
                        fh.write(json.dumps({"id": i, "question": f"Soak question {i}?", "choices": ["a", "b", "c", "d"]}) + "\n")
                submit_file(client, rows, name=f"soak-{submitted}", chunk_size=args.chunk)
                submitted += n
            done = finished(database_url)
            if rss_after_first_batch is None and done >= min(args.batch, args.jobs):
                rss_after_first_batch = {tier: rss_mb(p.pid) for tier, p in workers.items()}
            now = time.monotonic()
            if now - last_mark >= args.interval_s:
                intervals.append(done - last_done)
                last_mark, last_done = now, done
            if done >= args.jobs:
                break
            time.sleep(0.5 if submitted >= args.jobs else 0.0)
        elapsed = time.monotonic() - started
        rss_end = {tier: rss_mb(p.pid) for tier, p in workers.items()}
    finally:
        for proc in workers.values():
            proc.terminate()
        for proc in workers.values():
            proc.wait(30)
    return {
        "jobs": args.jobs,
        "elapsed_s": round(elapsed, 1),
        "jobs_per_s": round(args.jobs / elapsed, 1),
        "interval_s": args.interval_s,
        "jobs_per_interval": intervals,
        "rss_mb_start": {k: round(v, 1) for k, v in rss_start.items()},
        "rss_mb_after_first_batch": {k: round(v, 1) for k, v in (rss_after_first_batch or {}).items()},
        "rss_mb_end": {k: round(v, 1) for k, v in rss_end.items()},
    }


def main() -> None:
    args = parse_args()
    database_url, drop = scratch_database(args.postgres_url)
    try:
        with tempfile.TemporaryDirectory(prefix="cascade-soak-") as tmp:
            result = run(args, database_url, Path(os.environ.get("BENCH_LOG_DIR") or tmp))
    finally:
        drop()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['jobs']} jobs in {result['elapsed_s']} s: {result['jobs_per_s']} jobs/s over three tiers")
    intervals = result["jobs_per_interval"]
    if intervals:
        base = intervals[0] or 1
        print(f"{'interval':>9}{'jobs/s':>9}{'vs first':>10}")
        for i, n in enumerate(intervals, start=1):
            print(f"{i:>9}{n / result['interval_s']:>9.0f}{n / base:>9.2f}x")
    print(f"{'worker':<14}{'RSS start':>11}{'after 1st batch':>17}{'end':>9}  (MB)")
    for tier in result["rss_mb_start"]:
        first = result["rss_mb_after_first_batch"].get(tier, float("nan"))
        print(f"{tier:<14}{result['rss_mb_start'][tier]:>11.1f}{first:>17.1f}{result['rss_mb_end'][tier]:>9.1f}")


if __name__ == "__main__":
    main()
