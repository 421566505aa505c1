"""The HTTP layer's cost: jobs/s submitted through POST /v1/jobs (one job per request, and batches)
and chat-completion round-trip latency, each against the Python client doing the same in the same
run, on the null backend (instant answers, no wait to fill a pass), real Redis and PostgreSQL,
`cascade worker` processes and a `cascade serve` process. The workers start once both sides have
submitted, so the submit rates measure submission alone (on a 2-core machine, workers draining the
queue at the same time would take most of the CPU from both sides alike).

    python benchmarks/http_service.py                    # Redis and PostgreSQL on 127.0.0.1
    python benchmarks/http_service.py --json --requests 4000 --threads 16 --serve-workers 2

The database is created fresh (and dropped) as --database-url names it; Redis db --redis-url is flushed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = """
[[tiers]]
name = "small"
backend = "null"
model = "null-small"
params = "1B"
tau_t = 0.5
max_batch = 256
max_wait_ms = 0

[[tiers]]
name = "large"
backend = "null"
model = "null-large"
params = "70B"
max_batch = 256
max_wait_ms = 0
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/cascade_bench_http")
    parser.add_argument("--requests", type=int, default=3000, help="single-job submissions per side")
    parser.add_argument("--batch", type=int, default=100, help="jobs per batched submission")
    parser.add_argument("--batches", type=int, default=30, help="batched submissions per side")
    parser.add_argument("--round-trips", type=int, default=200, help="sequential chat completions per side")
    parser.add_argument("--threads", type=int, default=8, help="concurrent submitters")
    parser.add_argument("--serve-workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from cascade.storage.engine import normalise_url

    target = make_url(normalise_url(url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


class Connection(threading.local):
    """One keep-alive HTTP connection per thread, as a pooled client would hold."""

    def __init__(self, port: int):
        self.port = port
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict, key: str) -> dict:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        try:
            self.http.request("POST", path, json.dumps(body), headers)
            response = self.http.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):  # the server closed an idle connection
            self.http.close()
            self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.http.request("POST", path, json.dumps(body), headers)
            response = self.http.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{path}: HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)


def timed_parallel(fn, n: int, threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, range(n)))
    return time.perf_counter() - started


def quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    args = parse_args()
    import redis

    from cascade.storage.engine import session_scope
    from cascade.storage.keys import create_key
    from cascade.storage.migrate import upgrade
    from cascade.workers.client import Cascade

    redis.Redis.from_url(args.redis_url).flushdb()
    fresh_database(args.database_url)
    upgrade(args.database_url)
    with session_scope(args.database_url) as session:
        key, _ = create_key(session, "bench")
    workdir = Path(tempfile.mkdtemp(prefix="cascade-http-bench-"))
    config = workdir / "null.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "CASCADE_CONFIG": str(config), "CASCADE_BROKER_URL": args.redis_url, "CASCADE_DATABASE_URL": args.database_url,
           "PYTHONUNBUFFERED": "1"}
    port = free_port()
    logs = open(workdir / "processes.log", "w")
    processes = [subprocess.Popen([sys.executable, "-m", "cascade.workers", "serve", "--port", str(port), "--workers",
                                   str(args.serve_workers), "--log-level", "warning", "--no-webhooks"], env=env, stdout=logs, stderr=logs)]
    client = Cascade(config, broker_url=args.redis_url, database_url=args.database_url)
    connection = Connection(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cascade serve did not start: see {logs.name}") from None
                time.sleep(0.2)
        # warm-up both sides (connections, plans)
        for i in range(20):
            connection.post("/v1/jobs", {"prompt": f"warm-up {i}"}, key)
            client.submit(f"warm-up client {i}")
        results: dict[str, dict[str, float]] = {}
        http_s = timed_parallel(lambda i: connection.post("/v1/jobs", {"prompt": f"http single {i}"}, key), args.requests, args.threads)
        python_s = timed_parallel(lambda i: client.submit(f"python single {i}"), args.requests, args.threads)
        results["submit, one job per call"] = {"http": args.requests / http_s, "python": args.requests / python_s}
        jobs = lambda tag, i: [{"question": f"{tag} {i}-{j}"} for j in range(args.batch)]  # noqa: E731
        http_s = timed_parallel(lambda i: connection.post("/v1/jobs", {"jobs": [{"prompt": q["question"]} for q in jobs("hb", i)]}, key),
                                args.batches, args.threads)
        python_s = timed_parallel(lambda i: client.submit_many(jobs("pb", i)), args.batches, args.threads)
        total = args.batches * args.batch
        results[f"submit, {args.batch} jobs per call"] = {"http": total / http_s, "python": total / python_s}
        # now the workers: they drain what was submitted, so round trips measure an idle cascade
        processes += [subprocess.Popen([sys.executable, "-m", "cascade.workers", "worker", "--tier", tier], env=env, stdout=logs, stderr=logs)
                      for tier in ("small", "large")]
        client.result(client.submit("drain marker"), timeout=600)
        http_ms, python_ms = [], []
        for i in range(args.round_trips):
            started = time.perf_counter()
            connection.post("/v1/chat/completions", {"model": "cascade", "messages": [{"role": "user", "content": f"round trip {i}"}]}, key)
            http_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.result(client.submit(f"python round trip {i}"), timeout=60, poll_s=0.002)
            python_ms.append((time.perf_counter() - started) * 1000)
        (h50, h99), (p50, p99) = quantiles(http_ms), quantiles(python_ms)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        logs.close()
    summary = {
        "threads": args.threads,
        "serve_workers": args.serve_workers,
        "submit": {k: {"http_jobs_per_s": round(v["http"], 1), "python_jobs_per_s": round(v["python"], 1),
                       "http_vs_python": round(v["http"] / v["python"], 3)} for k, v in results.items()},
        "round_trip_ms": {"http_p50": round(h50, 2), "http_p99": round(h99, 2), "python_p50": round(p50, 2), "python_p99": round(p99, 2),
                          "http_adds_p50": round(h50 - p50, 2)},
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"null backend, {args.threads} submitting threads, {args.serve_workers} uvicorn process(es)")
    print(f"{'workload':<28}{'HTTP jobs/s':>13}{'Python jobs/s':>15}{'HTTP/Python':>13}")
    for label, r in summary["submit"].items():
        print(f"{label:<28}{r['http_jobs_per_s']:>13.1f}{r['python_jobs_per_s']:>15.1f}{r['http_vs_python']:>13.2f}")
    rt = summary["round_trip_ms"]
    print(f"chat round trip: HTTP p50 {rt['http_p50']:.1f} ms, p99 {rt['http_p99']:.1f} ms; Python client p50 {rt['python_p50']:.1f} ms, "
          f"p99 {rt['python_p99']:.1f} ms; HTTP adds {rt['http_adds_p50']:+.1f} ms at p50")


if __name__ == "__main__":
    main()
