"""Putting job ids on a tier's queue: the only place that sends Celery messages, and the one place
that knows their shape (the task name; args `[tier_name, [job_id, ...]]`; kwargs `{"shadow": true}` for
a shadow message: the last tier answers jobs a cheaper tier kept, for the live audit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence

from kombu.exceptions import OperationalError

from cascade.router.config import Tier
from cascade.router.redact import redact, redact_url

SCORE_TASK = "cascade.score"


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached, so messages were not sent (the jobs stay queued in the database)."""


def is_shadow(message_kwargs: dict | None) -> bool:
    return bool((message_kwargs or {}).get("shadow"))


def send_jobs(app, tier: Tier, job_ids: Iterable[uuid.UUID | str], *, chunk_size: int | None = None, shadow: bool = False) -> int:
    """Enqueue jobs on `tier` in messages of up to `chunk_size` ids (default: the tier's max_batch)."""
    size = tier.max_batch if chunk_size is None else chunk_size
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 job id per message, got {size}")
    ids = [str(job_id) for job_id in job_ids]
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for chunk in chunked(ids, size):
                app.send_task(
                    SCORE_TASK, args=[tier.name, list(chunk)], kwargs={"shadow": True} if shadow else {}, queue=tier.queue,
                    producer=producer,
                )
                sent += 1
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(f"broker unreachable at {redact_url(str(app.conf.broker_url))} ({redact(str(exc))})") from exc
    return sent
