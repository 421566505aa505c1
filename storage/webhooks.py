"""Webhook deliveries in the database: which finished jobs still owe their callback, each try recorded,
and when to try again (exponential backoff). Rows are claimed with SKIP LOCKED, so several service
processes never deliver the same job at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cascade.storage.bulk import is_postgres
from cascade.storage.models import ApiKey, Job, JobStatus, WebhookDelivery, utcnow

MAX_ATTEMPTS = 8
BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 32)  # pause after each failed try


@dataclass(frozen=True)
class DueCallback:
    job_id: uuid.UUID
    url: str
    attempt: int  # this try's number, from 1
    secret: str | None


def due_callbacks(session: Session, limit: int = 32) -> list[DueCallback]:
    """Finished jobs whose callback is pending and due, locked for this transaction."""
    now = utcnow()
    stmt = (
        select(Job.id, Job.callback_url, Job.callback_attempts, ApiKey.webhook_secret)
        .outerjoin(ApiKey, ApiKey.id == Job.api_key_id)
        .where(Job.callback_state == "pending", Job.status.in_([JobStatus.DONE.value, JobStatus.FAILED.value]),
               or_(Job.callback_next_at.is_(None), Job.callback_next_at <= now))
        .order_by(Job.finished_at)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(of=Job, skip_locked=True)
    return [DueCallback(row.id, row.callback_url, int(row.callback_attempts or 0) + 1, row.webhook_secret) for row in session.execute(stmt)]


def record_delivery(session: Session, due: DueCallback, *, status_code: int | None, error: str | None, duration_ms: float) -> bool:
    """Record one try; the job's callback is delivered (2xx), retried later, or failed after MAX_ATTEMPTS."""
    delivered = status_code is not None and 200 <= status_code < 300
    session.add(WebhookDelivery(job_id=due.job_id, url=due.url, attempt=due.attempt, status_code=status_code, error=error,
                                delivered=delivered, duration_ms=duration_ms, created_at=utcnow()))
    if delivered:
        values = {"callback_state": "delivered", "callback_attempts": due.attempt}
    elif due.attempt >= MAX_ATTEMPTS:
        values = {"callback_state": "failed", "callback_attempts": due.attempt}
    else:
        pause = BACKOFF_S[min(due.attempt - 1, len(BACKOFF_S) - 1)]
        values = {"callback_attempts": due.attempt, "callback_next_at": utcnow() + timedelta(seconds=pause)}
    session.execute(update(Job).where(Job.id == due.job_id).values(**values).execution_options(synchronize_session=False))
    return delivered


def deliveries_of(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.attempt)))
