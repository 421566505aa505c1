"""Putting job ids on a tier's queue: the only place that sends Celery messages, and the one place
that knows their shape (the task name; args `[tier_name, [job_id, ...]]`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence

from cascade.router.config import Tier

SCORE_TASK = "cascade.score"


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def send_jobs(app, tier: Tier, job_ids: Iterable[uuid.UUID | str], *, chunk_size: int | None = None) -> int:
    """Enqueue jobs on `tier` in messages of up to `chunk_size` ids (default: the tier's max_batch)."""
    ids = [str(job_id) for job_id in job_ids]
    sent = 0
    with app.producer_or_acquire() as producer:
        for chunk in chunked(ids, chunk_size or tier.max_batch):
            app.send_task(SCORE_TASK, args=[tier.name, list(chunk)], queue=tier.queue, producer=producer)
            sent += 1
    return sent
