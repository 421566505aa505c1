"""Batch runs in the database: creating or resuming a batch, fast idempotent row inserts, counts,
the lifecycle, cancellation, and the export stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, selectinload

from cascade.storage.bulk import insert_new
from cascade.storage.models import Batch, BatchStatus, Job, JobStatus, utcnow
from cascade.storage.repository import JOB_JSON_COLUMNS, ZERO_TOTALS

MAX_STORED_ERRORS = 100


class BatchError(Exception):
    """A batch cannot be created, found or changed as asked."""


@dataclass(frozen=True)
class BatchRow:
    """One input row to store: valid (question set) or failed (error set)."""

    index: int  # its position in the file as a person counts it (1-based line or row)
    row_id: str
    question: str = ""  # the question, or a free-form row's prompt
    choices: list[str] | None = None  # None or [] for a free-form row
    gold: str | None = None  # the correct letter (choice rows)
    error: str | None = None
    kind: str = "choice"
    gold_aliases: list[str] | None = None  # accepted answers (free-form rows)
    grader: str | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    stop_tier: str | None = None  # pinned to one tier (a batch request naming a tier's model)


@dataclass
class InsertOutcome:
    new: list[tuple[uuid.UUID, BatchRow]] = field(default_factory=list)  # rows stored by this call
    resumed: list[uuid.UUID] = field(default_factory=list)  # stored earlier, still waiting on the first tier
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (position, message) of rows whose id repeats


def create_or_resume(session: Session, *, name: str, source: str, id_field: str) -> tuple[Batch, bool]:
    """The batch called `name`, created if new. Returns (batch, resumed)."""
    batch = session.scalars(select(Batch).where(Batch.name == name)).first()
    if batch is not None:
        if batch.status in (BatchStatus.CANCELLING.value, BatchStatus.CANCELLED.value):
            raise BatchError(f"batch {name!r} was cancelled; submit under another --name")
        if batch.status == BatchStatus.FAILED.value and not batch.rows_read:
            batch.id_field = id_field  # refused before any row was stored: the fix may name another column
        if batch.id_field != id_field:
            raise BatchError(f"batch {name!r} was submitted with --id-field {batch.id_field!r}, not {id_field!r}")
        if batch.status == BatchStatus.FAILED.value:
            batch.status = BatchStatus.VALIDATING.value
        return batch, True
    batch = Batch(
        id=uuid.uuid4(),
        name=name,
        status=BatchStatus.VALIDATING.value,
        source=source,
        id_field=id_field,
        rows_read=0,
        rows_rejected=0,
        errors=[],
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    return batch, False


def get_batch(session: Session, name_or_id: str) -> Batch:
    try:
        stmt = select(Batch).where((Batch.name == name_or_id) | (Batch.id == uuid.UUID(name_or_id)))
    except ValueError:  # not a uuid: a name
        stmt = select(Batch).where(Batch.name == name_or_id)
    batch = session.scalars(stmt).first()
    if batch is None:
        raise BatchError(f"no batch named {name_or_id!r}: see `cascade batch list`")
    return batch


def insert_rows(
    session: Session, batch_id: uuid.UUID, rows: Sequence[BatchRow], *, first_tier: str, label: str = "line",
    api_key_id: uuid.UUID | None = None,
) -> InsertOutcome:
    """Store rows as jobs, skipping row ids already stored (a resumed run) and reporting repeats.
    `label` names what a position counts in messages ("line" or "row")."""
    outcome = InsertOutcome()
    if not rows:
        return outcome
    # Within one window, the first occurrence of an id wins; later ones are duplicates.
    first_seen: dict[str, BatchRow] = {}
    unique_rows: list[BatchRow] = []
    for row in rows:
        if row.row_id in first_seen:
            outcome.duplicates.append(_duplicate(row, first_seen[row.row_id].index, label))
        else:
            first_seen[row.row_id] = row
            unique_rows.append(row)
    now = utcnow()
    records = [
        {
            "id": uuid.uuid4(),
            "batch_id": batch_id,
            "row_id": row.row_id,
            "row_index": row.index,
            "kind": row.kind,
            "question": row.question,
            "choices": row.choices or [],
            "gold": row.gold,
            "gold_aliases": row.gold_aliases,
            "grader": row.grader,
            "max_tokens": row.max_tokens,
            "stop": row.stop,
            "stop_tier": row.stop_tier,
            "api_key_id": api_key_id,
            "status": JobStatus.QUEUED.value if row.error is None else JobStatus.FAILED.value,
            "pending_tier": first_tier if row.error is None else None,
            "error": row.error,  # the reason alone: its position is row_index, so equal reasons group
            "created_at": now,
            "finished_at": None if row.error is None else now,
            **ZERO_TOTALS,
        }
        for row in unique_rows
    ]
    new_row_ids = {
        row_id
        for (row_id,) in insert_new(
            session, "jobs", records, conflict=("batch_id", "row_id"), returning=("row_id",), json_columns=JOB_JSON_COLUMNS
        )
    }
    inserted = {r["row_id"]: r["id"] for r in records if r["row_id"] in new_row_ids}
    conflicted = [row for row in unique_rows if row.row_id not in inserted]
    for row in unique_rows:
        if row.row_id in inserted and row.error is None:
            outcome.new.append((inserted[row.row_id], row))
    if conflicted:
        existing = session.execute(
            select(Job.row_id, Job.row_index, Job.id, Job.status, Job.pending_tier).where(
                Job.batch_id == batch_id, Job.row_id.in_([r.row_id for r in conflicted])
            )
        ).all()
        by_id = {r.row_id: r for r in existing}
        for row in conflicted:
            stored = by_id[row.row_id]
            if stored.row_index != row.index:
                outcome.duplicates.append(_duplicate(row, stored.row_index, label))
            elif stored.status == JobStatus.QUEUED.value and stored.pending_tier == first_tier:
                outcome.resumed.append(stored.id)
    return outcome


def _duplicate(row: BatchRow, first_index: int, label: str) -> tuple[int, str]:
    return row.index, f"{label} {row.index}: duplicate id {row.row_id!r} (first at {label} {first_index}); row rejected"


def analyze(session: Session) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL), so that lookups by key
    are not planned as scans of every queued row."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE jobs"))
        session.execute(text("ANALYZE attempts"))


def note_progress(session: Session, batch: Batch, *, rows_read: int, duplicates: list[str]) -> None:
    """Record how far the file has been read and the rows rejected for the first time (a resumed run
    passes only rows beyond where the last run stopped, so nothing is counted twice)."""
    batch.rows_read = max(rows_read, batch.rows_read or 0)
    if duplicates:
        batch.rows_rejected = (batch.rows_rejected or 0) + len(duplicates)
        room = MAX_STORED_ERRORS - len(batch.errors or [])
        if room > 0:
            batch.errors = list(batch.errors or []) + duplicates[:room]


def counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """Jobs of the batch by status, plus total."""
    rows = session.execute(
        select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    ).all()
    out = {status.value: 0 for status in JobStatus}
    out.update({status: n for status, n in rows})
    out["total"] = sum(n for _, n in rows)
    return out


def refresh(session: Session, batch: Batch) -> dict[str, int]:
    """Move the batch along its lifecycle from its jobs' states; returns the counts."""
    tally = counts(session, batch.id)
    if tally[JobStatus.QUEUED.value] == 0:
        if batch.status in (BatchStatus.IN_PROGRESS.value, BatchStatus.FINALIZING.value):
            batch.status = BatchStatus.COMPLETED.value
            batch.finished_at = utcnow()
        elif batch.status == BatchStatus.CANCELLING.value:
            batch.status = BatchStatus.CANCELLED.value
            batch.finished_at = utcnow()
    return tally


CANCEL_CHUNK = 5000
CANCEL_PASSES = 100


def cancel(session: Session, batch: Batch) -> int:
    """Stop the batch: its still-queued jobs are cancelled (workers skip them). Returns how many.

    Workers may be updating the same rows. One UPDATE over the whole batch would take row locks
    in scan order while a worker takes them in its own order, and PostgreSQL would abort one of
    the two as a deadlock; so rows a worker holds are skipped (FOR UPDATE SKIP LOCKED, in id
    order), each pass commits, and a later pass picks them up once that worker has committed.
    A batch already cancelled is swept again: a submit still reading its file may have stored rows since.
    """
    if batch.status == BatchStatus.COMPLETED.value:
        return 0
    if batch.status != BatchStatus.CANCELLED.value:
        batch.status = BatchStatus.CANCELLING.value
    locking = session.get_bind().dialect.name == "postgresql"
    queued = (Job.batch_id == batch.id, Job.status == JobStatus.QUEUED.value)
    cancelled = 0
    for _ in range(CANCEL_PASSES):
        query = select(Job.id).where(*queued).order_by(Job.id)
        ids = session.scalars(query.with_for_update(skip_locked=True) if locking else query).all()
        for start in range(0, len(ids), CANCEL_CHUNK):
            result = session.execute(
                update(Job)
                .where(Job.id.in_(ids[start : start + CANCEL_CHUNK]), Job.status == JobStatus.QUEUED.value)
                .values(status=JobStatus.CANCELLED.value, pending_tier=None, error="cancelled", finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            cancelled += result.rowcount or 0
        if not session.scalar(select(func.count()).select_from(Job).where(*queued)):
            break
        session.commit()  # release ours, so a worker waiting on them can finish and release its own
        time.sleep(0.05)
    refresh(session, batch)
    return cancelled


def iter_export(session: Session, batch_id: uuid.UUID, *, chunk: int = 1000) -> Iterator[dict[str, Any]]:
    """Every job of the batch in file order, with its path through the tiers."""
    for job in iter_jobs(session, batch_id, chunk=chunk):
        yield export_record(job)


def iter_jobs(session: Session, batch_id: uuid.UUID, *, chunk: int = 1000) -> Iterator[Job]:
    """Every job of the batch in file order, with its attempts loaded, `chunk` rows at a time."""
    last = -1
    while True:
        jobs = session.scalars(
            select(Job)
            .where(Job.batch_id == batch_id, Job.row_index > last)
            .order_by(Job.row_index)
            .limit(chunk)
            .options(selectinload(Job.attempts))
        ).all()
        if not jobs:
            return
        yield from jobs
        last = jobs[-1].row_index
        session.expunge_all()


def export_record(job: Job) -> dict[str, Any]:
    return {
        "id": job.row_id,
        "job_id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "answer": job.answer,
        "gold": job.gold_aliases if job.kind == "open" else job.gold,
        "correct": job.correct,
        "final_tier": job.final_tier,
        "path": [
            {"tier": a.tier, "decision": a.decision, "answer": a.answer, "correct": a.correct, "p_t": a.p_t,
             "p_t_options": a.p_t_options, "p_t_aggregate": a.p_t_aggregate, "p_ik": a.p_ik}
            for a in sorted(job.attempts, key=lambda a: a.tier_index)
        ],
        "tokens_in": job.tokens_in,
        "tokens_out": job.tokens_out,
        "flops": job.flops,
        "cost_usd": job.cost_usd,
        "latency_ms": job.latency_ms,
        "error": job.error,
    }


def list_batches(session: Session, limit: int = 50) -> list[Batch]:
    return list(session.scalars(select(Batch).order_by(Batch.created_at.desc()).limit(limit)))


__all__ = [
    "BatchError",
    "BatchRow",
    "InsertOutcome",
    "analyze",
    "cancel",
    "counts",
    "create_or_resume",
    "get_batch",
    "insert_rows",
    "iter_export",
    "list_batches",
    "note_progress",
    "refresh",
]
