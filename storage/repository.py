"""Repository functions over `jobs` and `attempts`. Every write is idempotent under redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session, selectinload

from cascade.router.policy import Decision
from cascade.router.redact import redact
from cascade.storage.bulk import insert_new, is_postgres, key_in
from cascade.storage.models import Attempt, Job, JobStatus, utcnow


class ExternalIdConflict(ValueError):
    """An external id that already names a different question."""


@dataclass(frozen=True)
class NewJob:
    question: str  # the question, or a free-form job's prompt
    choices: list[str]  # [] for a free-form job
    gold: str | None = None  # the correct letter (choice jobs)
    external_id: str | None = None
    kind: str = "choice"
    gold_aliases: list[str] | None = None  # accepted answers (free-form jobs)
    grader: str | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    stop_tier: str | None = None  # pinned: this tier answers and never escalates (it is also where the job starts)
    api_key_id: uuid.UUID | None = None  # the HTTP service's key that submitted it
    callback_url: str | None = None  # POSTed the finished job

    def stored(self) -> dict[str, Any]:
        """The job's columns that say what it asks (the same in `jobs` whichever way it came in)."""
        return {
            "stop_tier": self.stop_tier,
            "api_key_id": self.api_key_id,
            "callback_url": self.callback_url,
            "callback_state": "pending" if self.callback_url else None,
            "kind": self.kind,
            "question": self.question,
            "choices": list(self.choices),
            "gold": self.gold,
            "gold_aliases": self.gold_aliases,
            "grader": self.grader,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
        }


JOB_JSON_COLUMNS = ("choices", "gold_aliases", "stop")


@dataclass(frozen=True)
class AttemptRecord:
    """What one tier did with one job, ready to be written."""

    job_id: uuid.UUID
    tier: str
    tier_index: int
    model: str
    decision: str
    answer: str | None = None
    correct: bool | None = None
    p_t: float | None = None
    p_t_options: float | None = None
    p_t_aggregate: str | None = None
    token_logprobs: list[float] | None = None
    p_ik: float | None = None
    tau_t: float | None = None
    tau_ik: float | None = None
    reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    flops: float = 0.0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    worker: str | None = None
    error: str | None = None
    shadow: bool = False


@dataclass(frozen=True)
class PendingJob:
    """The part of a job a tier needs to score it (and grade its answer)."""

    id: uuid.UUID
    question: str
    choices: list[str]
    kind: str = "choice"
    gold: str | None = None
    gold_aliases: list[str] | None = None
    grader: str | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    stop_tier: str | None = None

    @property
    def accepted_answers(self) -> list[str] | None:
        """What the grader compares the answer with: the gold letter, or the gold aliases."""
        if self.kind == "open":
            return self.gold_aliases
        return [self.gold] if self.gold else None


_PENDING_COLUMNS = (Job.id, Job.question, Job.choices, Job.kind, Job.gold, Job.gold_aliases, Job.grader, Job.max_tokens, Job.stop,
                    Job.stop_tier)


def _pending(row) -> PendingJob:
    return PendingJob(
        id=row.id, question=row.question, choices=list(row.choices or []), kind=row.kind or "choice", gold=row.gold,
        gold_aliases=row.gold_aliases, grader=row.grader, max_tokens=row.max_tokens, stop=row.stop, stop_tier=row.stop_tier,
    )


ATTEMPT_JSON_COLUMNS = ("token_logprobs",)
ZERO_TOTALS = {"tokens_in": 0, "tokens_out": 0, "flops": 0.0, "cost_usd": 0.0, "latency_ms": 0.0}


def add_jobs(session: Session, jobs: Sequence[NewJob], *, first_tier: str) -> list[tuple[uuid.UUID, bool]]:
    """Insert jobs queued on the first tier. A repeated external id returns the existing job.

    Returns (job id, created) for each input, in order.
    """
    rows = [
        {
            "id": uuid.uuid4(),
            "external_id": job.external_id,
            **job.stored(),
            "status": JobStatus.QUEUED.value,
            "pending_tier": first_tier,
            "created_at": utcnow(),
            **ZERO_TOTALS,
        }
        for job in jobs
    ]
    if not rows:
        return []
    created = {row[0] for row in insert_new(session, "jobs", rows, conflict=("external_id",), returning=("id",), json_columns=JOB_JSON_COLUMNS)}
    result = []
    missing = [r["external_id"] for r in rows if r["id"] not in created]
    existing = {}
    if missing:
        existing = {
            row.external_id: row
            for row in session.execute(select(Job.external_id, Job.id, Job.kind, Job.question, Job.choices).where(Job.external_id.in_(missing)))
        }
    for row in rows:
        if row["id"] in created:
            result.append((row["id"], True))
            continue
        first = existing[row["external_id"]]
        if (first.kind, first.question, list(first.choices)) != (row["kind"], row["question"], row["choices"]):
            raise ExternalIdConflict(
                f"external id {row['external_id']!r} already names another question (job {first.id}): "
                "give this question an external id of its own"
            )
        result.append((first.id, False))
    return result


def unstarted(session: Session, job_ids: Sequence[uuid.UUID], *, tier: str) -> list[uuid.UUID]:
    """Of `job_ids`, those still queued on `tier` with no attempt anywhere: a message for them may never
    have been sent (the broker was down at submit), so re-sending them is how a resubmit finishes them."""
    if not job_ids:
        return []
    tried = select(Attempt.id).where(Attempt.job_id == Job.id).exists()
    return list(
        session.scalars(
            select(Job.id).where(key_in(session, Job.id, list(job_ids)), Job.status == JobStatus.QUEUED.value, Job.pending_tier == tier, ~tried)
        )
    )


@dataclass
class TierWork:
    """What a tier must do with the job ids of one message."""

    pending: list[PendingJob]  # queued on this tier and not yet tried here
    reforward: dict[str, list[uuid.UUID]]  # escalated here earlier but never picked up: tier -> ids
    skipped: int  # finished, cancelled, or already tried


def work_for_tier(session: Session, job_ids: Iterable[uuid.UUID], tier: str) -> TierWork:
    """Sort a message's job ids into new work, jobs to forward again, and jobs to skip.

    Both reads look rows up by key only, so the plan stays an index lookup whatever the
    statistics say about the status column (a fresh bulk load has none).
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return TierWork([], {}, 0)
    tried = dict(
        session.execute(select(Attempt.job_id, Attempt.decision).where(key_in(session, Attempt.job_id, ids), Attempt.tier == tier)
        ).all()
    )
    rows = session.execute(select(*_PENDING_COLUMNS, Job.status, Job.pending_tier).where(key_in(session, Job.id, ids))).all()
    pending: list[PendingJob] = []
    reforward: dict[str, list[uuid.UUID]] = {}
    for row in rows:
        if row.status != JobStatus.QUEUED.value:
            continue
        decision = tried.get(row.id)
        if decision is None and row.pending_tier == tier:
            pending.append(_pending(row))
        elif decision == Decision.ESCALATED.value and row.pending_tier not in (None, tier):
            reforward.setdefault(row.pending_tier, []).append(row.id)
    return TierWork(pending, reforward, len(ids) - len(pending))


def shadow_work(session: Session, job_ids: Iterable[uuid.UUID], tier: str) -> list[PendingJob]:
    """Of a shadow message's jobs, those a cheaper tier answered and `tier` has not answered yet."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return []
    tried = select(Attempt.id).where(Attempt.job_id == Job.id, Attempt.tier == tier).exists()
    rows = session.execute(
        select(*_PENDING_COLUMNS).where(key_in(session, Job.id, ids), Job.status == JobStatus.DONE.value, Job.final_tier != tier, ~tried)
    ).all()
    return [_pending(row) for row in rows]


def record_shadows(session: Session, records: Sequence[AttemptRecord]) -> set[uuid.UUID]:
    """Write shadow attempts; the jobs are left as they are (answer, status and totals). Idempotent."""
    if not records:
        return set()
    now = utcnow()
    rows = [{**vars(r), "shadow": True, "error": None if r.error is None else redact(r.error), "created_at": now} for r in records]
    return {row[0] for row in insert_new(session, "attempts", rows, conflict=("job_id", "tier"), returning=("job_id",), json_columns=ATTEMPT_JSON_COLUMNS)}


def record_attempts(
    session: Session, records: Sequence[AttemptRecord], *, next_tier: str | None
) -> set[uuid.UUID]:
    """Move the records' jobs on and write their attempts. Returns the job ids whose attempt was new.

    Only jobs still queued on the record's tier move, and only their attempts are written: a job a
    redelivered message already moved (its attempt exists), or one cancelled while it was scored, is
    skipped whole, so nothing is duplicated or counted twice. The job updates come first and lock
    the rows they change (in id order), so a concurrent cancel either waits for this write or finds
    the jobs moved on, and no attempt is ever written for a job that did not take that step.
    """
    if not records:
        return set()
    now = utcnow()
    live: set[uuid.UUID] = set()
    finished: list[uuid.UUID] = []
    for tier in dict.fromkeys(r.tier for r in records):
        moved, done = _move_waiting(session, [r for r in records if r.tier == tier], tier=tier, next_tier=next_tier, now=now)
        live |= moved
        finished += done
    rows = [
        {**vars(r), "error": None if r.error is None else redact(r.error), "created_at": now}
        for r in records
        if r.job_id in live
    ]
    inserted = {
        row[0] for row in insert_new(session, "attempts", rows, conflict=("job_id", "tier"), returning=("job_id",), json_columns=ATTEMPT_JSON_COLUMNS)
    }
    if finished:
        _roll_up_totals(session, finished)
    return inserted


def _move_waiting(
    session: Session, records: Sequence[AttemptRecord], *, tier: str, next_tier: str | None, now: datetime
) -> tuple[set[uuid.UUID], list[uuid.UUID]]:
    """Apply each record's decision to its job if the job still waits on `tier`; returns the jobs
    moved, and of those the ones that finished."""
    by_decision: dict[str, list[AttemptRecord]] = {}
    for record in records:
        by_decision.setdefault(record.decision, []).append(record)
    moved: set[uuid.UUID] = set()
    escalated = sorted(r.job_id for r in by_decision.get(Decision.ESCALATED.value, []))
    if escalated:
        if next_tier is None:
            raise ValueError("the last tier cannot escalate")
        moved |= set(
            session.scalars(
                update(Job)
                .where(key_in(session, Job.id, escalated), Job.status == JobStatus.QUEUED.value, Job.pending_tier == tier)
                .values(pending_tier=next_tier)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
        )
    finished: set[uuid.UUID] = set()
    accepted = by_decision.get(Decision.ACCEPTED.value, [])
    if accepted:
        finished |= _update_waiting_jobs(
            session,
            [{"job_id": r.job_id, "answer": r.answer, "correct": r.correct} for r in accepted],
            {"status": JobStatus.DONE.value, "final_tier": tier, "pending_tier": None, "finished_at": now},
            tier=tier,
        )
    abstained = by_decision.get(Decision.ABSTAINED.value, [])
    if abstained:
        # Done, with no answer: a graded job that got none is not right (and not a hallucination).
        finished |= _update_waiting_jobs(
            session,
            [{"job_id": r.job_id, "correct": None if r.correct is None else False} for r in abstained],
            {"status": JobStatus.DONE.value, "final_tier": tier, "pending_tier": None, "finished_at": now, "answer": None},
            tier=tier,
        )
    failed = by_decision.get(Decision.FAILED.value, [])
    if failed:
        finished |= _update_waiting_jobs(
            session,
            [{"job_id": r.job_id, "error": redact(f"{r.tier}: {r.error}")} for r in failed],
            {"status": JobStatus.FAILED.value, "pending_tier": None, "finished_at": now},
            tier=tier,
        )
    return moved | finished, sorted(finished)


_ARRAY_TYPES = {"correct": "boolean[]"}  # per-row values that are not text


def _update_waiting_jobs(session: Session, rows: list[dict[str, Any]], fixed: dict[str, Any], *, tier: str) -> set[uuid.UUID]:
    """Set per-job values (`rows`, keyed by job_id) plus `fixed` ones on the jobs still queued on
    `tier`; returns the ids updated. PostgreSQL gets one UPDATE ... FROM unnest(arrays) ... RETURNING;
    SQLite, a single writer, a read of the waiting jobs and an executemany."""
    rows = sorted(rows, key=lambda row: row["job_id"])
    per_row = [key for key in rows[0] if key != "job_id"]
    if is_postgres(session):
        # Array parameters instead of a VALUES list of hundreds of bound values.
        assignments = [f"{k} = :{k}" for k in fixed] + [f"{k} = v.{k}" for k in per_row]
        columns = ", ".join(["job_id", *per_row])
        arrays = ", ".join(["CAST(:ids AS uuid[])", *(f"CAST(:{k}_values AS {_ARRAY_TYPES.get(k, 'text[]')})" for k in per_row)])
        params: dict[str, Any] = {"ids": [row["job_id"] for row in rows], "waiting_on": tier, **fixed}
        for k in per_row:
            params[f"{k}_values"] = [row[k] for row in rows]
        result = session.execute(
            text(
                f"UPDATE jobs SET {', '.join(assignments)} FROM unnest({arrays}) AS v({columns}) "
                f"WHERE jobs.id = v.job_id AND jobs.status = '{JobStatus.QUEUED.value}' AND jobs.pending_tier = :waiting_on "
                "RETURNING jobs.id"
            ),
            params,
        )
        return {row[0] for row in result}
    waiting = set(
        session.scalars(
            select(Job.id).where(key_in(session, Job.id, [row["job_id"] for row in rows]), Job.status == JobStatus.QUEUED.value,
                                 Job.pending_tier == tier)
        )
    )
    rows = [row for row in rows if row["job_id"] in waiting]
    if rows:
        stmt = (
            update(Job.__table__)
            .where(Job.__table__.c.id == bindparam("b_job_id"))
            .values(**fixed, **{k: bindparam(f"b_{k}") for k in per_row})
        )
        session.connection().execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])
    return waiting


def _roll_up_totals(session: Session, job_ids: list[uuid.UUID]) -> None:
    """Job totals are sums over its attempts, never increments, so they cannot double-count."""
    totals = (
        select(
            Attempt.job_id,
            func.sum(Attempt.tokens_in).label("tokens_in"),
            func.sum(Attempt.tokens_out).label("tokens_out"),
            func.sum(Attempt.flops).label("flops"),
            func.sum(Attempt.cost_usd).label("cost_usd"),
            func.sum(Attempt.latency_ms).label("latency_ms"),
        )
        .where(key_in(session, Attempt.job_id, job_ids), Attempt.shadow.is_(False))  # shadows are audit cost
        .group_by(Attempt.job_id)
        .subquery("totals")
    )
    session.execute(
        update(Job)
        .where(Job.id == totals.c.job_id)
        .values(
            tokens_in=totals.c.tokens_in,
            tokens_out=totals.c.tokens_out,
            flops=totals.c.flops,
            cost_usd=totals.c.cost_usd,
            latency_ms=totals.c.latency_ms,
        )
        .execution_options(synchronize_session=False)
    )


def fail_jobs(session: Session, job_ids: Iterable[uuid.UUID], *, tier: str, error: str) -> int:
    """Mark still-queued jobs failed without an attempt (the tier could not run at all)."""
    ids = list(job_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED.value, Job.pending_tier == tier)
        .values(status=JobStatus.FAILED.value, error=redact(f"{tier}: {error}"), pending_tier=None, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _roll_up_totals(session, ids)
    return result.rowcount or 0


def get_job(session: Session, job_id: uuid.UUID | str) -> Job | None:
    job_uuid = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    return session.scalars(select(Job).where(Job.id == job_uuid).options(selectinload(Job.attempts))).first()


def find_job(session: Session, key: str) -> Job | None:
    """A job by its id or by the caller's external id."""
    try:
        job = get_job(session, uuid.UUID(key))
    except ValueError:
        job = None
    if job is None:
        job = session.scalars(
            select(Job).where(Job.external_id == key).options(selectinload(Job.attempts))
        ).first()
    return job


def job_statuses(session: Session, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(list(job_ids))))
    return {r.id: r.status for r in rows}


def stranded_jobs(
    session: Session,
    *,
    older_than_s: float,
    tier: str,
    after: uuid.UUID | None = None,
    limit: int = 10_000,
) -> list[uuid.UUID]:
    """Up to `limit` jobs queued on `tier` and untouched for `older_than_s`, in id order after
    `after` (page on with the last id): what to re-enqueue after a broker loss."""
    cutoff: datetime = utcnow() - timedelta(seconds=older_than_s)
    last_attempt = select(func.max(Attempt.created_at)).where(Attempt.job_id == Job.id).scalar_subquery()
    stmt = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED.value, Job.pending_tier == tier)
        .where(func.coalesce(last_attempt, Job.created_at) < cutoff)
        .order_by(Job.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Job.id > after)
    return list(session.scalars(stmt))


__all__ = [
    "AttemptRecord",
    "NewJob",
    "PendingJob",
    "ExternalIdConflict",
    "record_shadows",
    "shadow_work",
    "add_jobs",
    "unstarted",
    "fail_jobs",
    "find_job",
    "TierWork",
    "work_for_tier",
    "get_job",
    "job_statuses",
    "record_attempts",
    "stranded_jobs",
]
