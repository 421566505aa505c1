"""Tables `jobs` and `attempts`: the audit interface. Keep these names stable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(str, Enum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BatchStatus(str, Enum):
    """The lifecycle of a batch run, as in the OpenAI Batch API."""

    VALIDATING = "validating"  # rows are being read and queued
    IN_PROGRESS = "in_progress"  # every row is in; jobs are running
    FINALIZING = "finalizing"  # every job has ended; totals are being settled
    COMPLETED = "completed"
    FAILED = "failed"  # the input could not be read at all
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    """One question, from submission to its final answer."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("batches.id", ondelete="CASCADE"))
    row_id: Mapped[str | None] = mapped_column(String(255))  # the row's id in the batch's input file
    row_index: Mapped[int | None] = mapped_column(BigInteger)  # its position in the file, from 0
    kind: Mapped[str] = mapped_column(String(8), default="choice", server_default="choice")  # choice | open
    question: Mapped[str] = mapped_column(Text)  # the question, or a free-form job's prompt
    choices: Mapped[list[str]] = mapped_column(JSON)  # [] for a free-form job
    gold: Mapped[str | None] = mapped_column(String(8))  # the correct option's letter (choice jobs)
    gold_aliases: Mapped[list[str] | None] = mapped_column(JSON)  # accepted answers (free-form jobs)
    grader: Mapped[str | None] = mapped_column(String(16))  # how answers are graded: router.grading.GRADERS
    max_tokens: Mapped[int | None] = mapped_column(Integer)  # free-form: new tokens asked for; None: the tier's
    stop: Mapped[list[str] | None] = mapped_column(JSON)  # free-form: stop sequences; None: the tier's
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    pending_tier: Mapped[str | None] = mapped_column(String(64))  # the tier whose queue holds the job
    answer: Mapped[str | None] = mapped_column(Text)  # an option letter, or the generated text; None: abstained
    correct: Mapped[bool | None] = mapped_column(Boolean)  # the final answer graded; None: no gold
    final_tier: Mapped[str | None] = mapped_column(String(64))
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    flops: Mapped[float] = mapped_column(Double, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Double, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Double, default=0.0)  # model time summed over attempts
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_tier: Mapped[str | None] = mapped_column(String(64))  # a job pinned to a tier: it answers there, never escalates
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("api_keys.id", ondelete="SET NULL"))
    callback_url: Mapped[str | None] = mapped_column(Text)  # POSTed the finished job (webhooks)
    callback_state: Mapped[str | None] = mapped_column(String(16))  # pending | delivered | failed
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.tier_index", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'done', 'failed', 'cancelled')", name="status"),
        CheckConstraint("kind IN ('choice', 'open')", name="kind"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        UniqueConstraint("batch_id", "row_id", name="uq_jobs_batch_id_row_id"),
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_api_key_id", "api_key_id"),
        Index("ix_jobs_callback_pending", "callback_state", "callback_next_at"),
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "external_id": self.external_id,
            "batch_id": str(self.batch_id) if self.batch_id else None,
            "row_id": self.row_id,
            "status": self.status,
            "kind": self.kind,
            "question": self.question,
            "choices": self.choices,
            "gold": self.gold if self.kind != "open" else self.gold_aliases,
            "grader": self.grader,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "answer": self.answer,
            "correct": self.correct,
            "final_tier": self.final_tier,
            "pending_tier": self.pending_tier,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "flops": self.flops,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "stop_tier": self.stop_tier,
            "api_key_id": str(self.api_key_id) if self.api_key_id else None,
            "callback_url": self.callback_url,
            "callback_state": self.callback_state,
            "path": [a.as_dict() for a in self.attempts],
        }


class Batch(Base):
    """An offline dataset pushed through the cascade; its jobs carry its id and their row ids."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.VALIDATING.value)
    source: Mapped[str | None] = mapped_column(Text)
    id_field: Mapped[str] = mapped_column(String(255), default="id")
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)  # duplicate ids: no job row
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)  # the first submit-time errors
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("api_keys.id", ondelete="SET NULL"))
    input_file_id: Mapped[str | None] = mapped_column(String(64))  # batches made through the OpenAI-style API
    request_meta: Mapped[dict | None] = mapped_column(JSON)  # endpoint, completion_window, metadata

    __table_args__ = (
        CheckConstraint(
            "status IN ('validating', 'in_progress', 'finalizing', 'completed', 'failed', 'cancelling', 'cancelled')",
            name="status",
        ),
    )


class Attempt(Base):
    """One tier's try at one job: its answer, signals, thresholds, decision and cost."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(64))
    tier_index: Mapped[int] = mapped_column(SmallInteger)
    model: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # an option letter, or the generated text
    correct: Mapped[bool | None] = mapped_column(Boolean)  # this tier's answer graded; None: no gold
    p_t: Mapped[float | None] = mapped_column(Double)  # free-form: the tier's p_t_aggregate of token_logprobs
    p_t_options: Mapped[float | None] = mapped_column(Double)
    p_ik: Mapped[float | None] = mapped_column(Double)
    p_t_aggregate: Mapped[str | None] = mapped_column(String(16))  # free-form: how p_t was aggregated
    token_logprobs: Mapped[list[float] | None] = mapped_column(JSON)  # free-form: each generated token's log-prob
    tau_t: Mapped[float | None] = mapped_column(Double)
    tau_ik: Mapped[float | None] = mapped_column(Double)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    flops: Mapped[float] = mapped_column(Double, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Double, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Double, default=0.0)
    worker: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    # A shadow attempt: the last tier also answered a job a cheaper tier kept, for the live audit.
    # It never changes the job's answer, and its cost is audit cost, not the job's.
    shadow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="attempts")

    __table_args__ = (
        UniqueConstraint("job_id", "tier", name="uq_attempts_job_id_tier"),
        CheckConstraint("decision IN ('accepted', 'escalated', 'failed', 'abstained')", name="decision"),
        Index("ix_attempts_tier_decision", "tier", "decision"),
        Index("ix_attempts_created_at", "created_at"),
        Index("ix_attempts_tier_p_t", "tier", "p_t"),
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "answer": self.answer,
            "correct": self.correct,
            "p_t": self.p_t,
            "p_t_options": self.p_t_options,
            "p_t_aggregate": self.p_t_aggregate,
            "token_logprobs": self.token_logprobs,
            "p_ik": self.p_ik,
            "tau_t": self.tau_t,
            "tau_ik": self.tau_ik,
            "decision": self.decision,
            "reason": self.reason,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "flops": self.flops,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "worker": self.worker,
            "shadow": self.shadow,
            "error": self.error,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class ApiKey(Base):
    """A key for the HTTP service: stored only as a SHA-256 hash, with an optional budget and rate."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to tell keys apart in listings
    webhook_secret: Mapped[str] = mapped_column(String(64))  # signs this key's webhook deliveries (HMAC-SHA256)
    budget_usd: Mapped[float | None] = mapped_column(Double)  # None: no budget
    rpm: Mapped[int | None] = mapped_column(Integer)  # requests per minute; None: no limit
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StoredFile(Base):
    """A file uploaded through the OpenAI-style Files API (batch input)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("api_keys.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One try at POSTing a finished job to its callback URL."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_ms: Mapped[float] = mapped_column(Double, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
