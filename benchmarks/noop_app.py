"""A bare Celery app with one no-op task: the baseline the orchestration benchmark compares against."""

from __future__ import annotations

import os

from celery import Celery

COUNTER = "bench:noop:done"


def make_app(broker_url: str) -> Celery:
    app = Celery("bench", broker=broker_url, set_as_current=False)
    app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=True,
                    broker_connection_retry_on_startup=True)

    @app.task(name="bench.noop")
    def noop() -> None:
        app.backend_client.incr(COUNTER)

    import redis

    app.backend_client = redis.Redis.from_url(broker_url)  # type: ignore[attr-defined]
    return app


app = make_app(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"))
