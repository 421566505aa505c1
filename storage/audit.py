"""Audit queries: what the cascade decided and what it cost, as SQL aggregations in the database.

Filters (batch, time range, tier) become WHERE clauses that the indexes of migration 0003 serve;
quantiles use percentile_cont on PostgreSQL and are computed in Python on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session, aliased

from cascade.router.intervals import pd_interval_from_counts, saving_interval_from_sums
from cascade.router.policy import Decision
from cascade.storage.bulk import is_postgres
from cascade.storage.models import Attempt, Job, JobStatus

SIGNAL_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
LATENCY_QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class AuditFilter:
    batch_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    tier: str | None = None
    api_key_id: uuid.UUID | None = None  # jobs submitted over HTTP with this key

    def jobs(self) -> list:
        conditions = []
        if self.batch_id is not None:
            conditions.append(Job.batch_id == self.batch_id)
        if self.api_key_id is not None:
            conditions.append(Job.api_key_id == self.api_key_id)
        if self.since is not None:
            conditions.append(Job.created_at >= self.since)
        if self.until is not None:
            conditions.append(Job.created_at < self.until)
        if self.tier is not None:
            conditions.append(Job.final_tier == self.tier)
        return conditions

    def attempts(self, *, shadow: bool = False, of=Attempt) -> list:
        """Conditions on attempts (`of`: the Attempt entity or an alias of it). Routing reports count
        the path jobs took; shadow attempts (the live audit's) are apart."""
        conditions = [of.shadow.is_(shadow)]
        if self.batch_id is not None:
            conditions.append(of.job_id.in_(select(Job.id).where(Job.batch_id == self.batch_id)))
        if self.api_key_id is not None:
            conditions.append(of.job_id.in_(select(Job.id).where(Job.api_key_id == self.api_key_id)))
        if self.since is not None:
            conditions.append(of.created_at >= self.since)
        if self.until is not None:
            conditions.append(of.created_at < self.until)
        if self.tier is not None:
            conditions.append(of.tier == self.tier)
        return conditions


def quantiles(session: Session, column, conditions: Sequence, qs: Sequence[float]) -> list[float | None]:
    """Quantiles of `column` over the filtered rows (None when there are none)."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import array

        stmt = select(func.percentile_cont(array([literal(q) for q in qs])).within_group(column)).where(
            column.is_not(None), *conditions
        )
        values = session.scalar(stmt)
        return [None if v is None else float(v) for v in values] if values else [None] * len(qs)
    base = select(column).where(column.is_not(None), *conditions)
    values = sorted(v for (v,) in session.execute(base) if v is not None)
    if not values:
        return [None] * len(qs)
    out = []
    for q in qs:  # linear interpolation, as percentile_cont
        position = q * (len(values) - 1)
        low = int(position)
        high = min(low + 1, len(values) - 1)
        out.append(values[low] + (values[high] - values[low]) * (position - low))
    return out


def tier_summary(session: Session, where: AuditFilter, tier_order: Sequence[str]) -> list[dict[str, Any]]:
    """Per tier: attempts, answered, escalated, failed, escalation rate, signal quantiles, accuracy of kept answers."""
    conditions = where.attempts()
    rows = session.execute(
        select(
            Attempt.tier,
            func.count(),
            func.sum(case((Attempt.decision == Decision.ACCEPTED.value, 1), else_=0)),
            func.sum(case((Attempt.decision == Decision.ESCALATED.value, 1), else_=0)),
            func.sum(case((Attempt.decision == Decision.FAILED.value, 1), else_=0)),
            func.sum(case((and_(Attempt.decision == Decision.ACCEPTED.value, Attempt.correct.is_not(None)), 1), else_=0)),
            func.sum(case((and_(Attempt.decision == Decision.ACCEPTED.value, Attempt.correct.is_(True)), 1), else_=0)),
            func.sum(case((Attempt.correct.is_not(None), 1), else_=0)),
            func.sum(case((Attempt.correct.is_(True), 1), else_=0)),
            func.sum(case((Attempt.decision == Decision.ABSTAINED.value, 1), else_=0)),
            func.sum(Attempt.tokens_in),
            func.sum(Attempt.tokens_out),
            func.sum(Attempt.flops),
            func.sum(Attempt.cost_usd),
            func.avg(Attempt.latency_ms),
        )
        .where(*conditions)
        .group_by(Attempt.tier)
    ).all()
    order = {name: i for i, name in enumerate(tier_order)}
    out = []
    for r in sorted(rows, key=lambda r: order.get(r[0], len(order))):
        tier, n, accepted, escalated, failed, graded_kept, right_kept, graded, right, abstained, t_in, t_out, flops, usd, latency = r
        tier_conditions = [*conditions, Attempt.tier == tier]
        out.append(
            {
                "tier": tier,
                "attempts": n,
                "answered": int(accepted or 0),
                "escalated": int(escalated or 0),
                "failed": int(failed or 0),
                "abstained": int(abstained or 0),
                "escalation_rate": round((escalated or 0) / n, 4) if n else None,
                "p_t": dict(zip(_names(SIGNAL_QUANTILES), quantiles(session, Attempt.p_t, tier_conditions, SIGNAL_QUANTILES))),
                "p_ik": dict(zip(_names(SIGNAL_QUANTILES), quantiles(session, Attempt.p_ik, tier_conditions, SIGNAL_QUANTILES))),
                "accuracy_of_kept": round(100.0 * right_kept / graded_kept, 2) if graded_kept else None,
                "accuracy_of_all_answers": round(100.0 * right / graded, 2) if graded else None,
                "tokens_in": int(t_in or 0),
                "tokens_out": int(t_out or 0),
                "flops": float(flops or 0.0),
                "cost_usd": float(usd or 0.0),
                "mean_latency_ms": round(float(latency or 0.0), 2),
            }
        )
    return out


def overall(session: Session, where: AuditFilter) -> dict[str, Any]:
    """Jobs by status, accuracy where gold answers exist, totals, latency quantiles and top errors."""
    conditions = where.jobs()
    statuses = dict(session.execute(select(Job.status, func.count()).where(*conditions).group_by(Job.status)).all())
    totals = session.execute(
        select(
            func.count(),
            func.sum(case((and_(Job.correct.is_not(None), Job.status == JobStatus.DONE.value), 1), else_=0)),
            func.sum(case((and_(Job.correct.is_(True), Job.status == JobStatus.DONE.value), 1), else_=0)),
            func.sum(case((and_(Job.correct.is_(False), Job.answer.is_not(None), Job.status == JobStatus.DONE.value), 1), else_=0)),
            func.sum(case((and_(Job.answer.is_(None), Job.status == JobStatus.DONE.value), 1), else_=0)),
            func.sum(case((Job.kind == "open", 1), else_=0)),
            func.sum(Job.tokens_in),
            func.sum(Job.tokens_out),
            func.sum(Job.flops),
            func.sum(Job.cost_usd),
        ).where(*conditions)
    ).one()
    n, graded, correct, wrong, abstained, open_jobs, t_in, t_out, flops, usd = totals
    done = statuses.get(JobStatus.DONE.value, 0)
    # End-to-end latency: from submission to the final answer.
    if is_postgres(session):
        elapsed = func.extract("epoch", Job.finished_at - Job.created_at) * 1000.0
    else:
        elapsed = (func.julianday(Job.finished_at) - func.julianday(Job.created_at)) * 86_400_000.0
    latency = quantiles(session, cast(elapsed, Float), [*conditions, Job.finished_at.is_not(None)], LATENCY_QUANTILES)
    errors = session.execute(
        select(Job.error, func.count())
        .where(*conditions, Job.status == JobStatus.FAILED.value)
        .group_by(Job.error)
        .order_by(func.count().desc())
        .limit(5)
    ).all()
    return {
        "jobs": int(n or 0),
        "statuses": {s.value: int(statuses.get(s.value, 0)) for s in JobStatus},
        "graded": int(graded or 0),
        "correct": int(correct or 0),
        "accuracy": round(100.0 * correct / graded, 2) if graded else None,
        # Answered, and wrong, among graded jobs (an abstention is no answer, so no hallucination).
        "hallucination_rate": round(100.0 * (wrong or 0) / graded, 2) if graded else None,
        "abstained": int(abstained or 0),
        "abstention_rate": round(100.0 * (abstained or 0) / done, 2) if done else None,
        "open_jobs": int(open_jobs or 0),
        "tokens_in": int(t_in or 0),
        "tokens_out": int(t_out or 0),
        "flops": float(flops or 0.0),
        "cost_usd": float(usd or 0.0),
        "latency_ms": {name: None if v is None else round(v, 1) for name, v in zip(_names(LATENCY_QUANTILES), latency)},
        "top_errors": [{"error": e, "count": c} for e, c in errors],
    }


def largest_tier_cost(session: Session, where: AuditFilter, *, first: str, last: str, last_params: float | None) -> dict[str, Any]:
    """Estimate what the largest tier would have spent answering every job.

    Jobs it answered have exact token counts. For the others, prompt tokens are the first tier's
    scaled by the ratio seen on jobs that visited both tiers (1.0 when none did: same tokenizer
    assumed), so the estimate is exact when the tiers share a tokenizer.
    """
    conditions = where.jobs()
    first_a, last_a = aliased(Attempt), aliased(Attempt)
    both = session.execute(
        select(func.sum(last_a.tokens_in), func.sum(first_a.tokens_in), func.sum(last_a.flops), func.sum(last_a.tokens_in + last_a.tokens_out))
        .select_from(Job)
        .join(first_a, and_(first_a.job_id == Job.id, first_a.tier == first))
        .join(last_a, and_(last_a.job_id == Job.id, last_a.tier == last, last_a.shadow.is_(False)))
        .where(*conditions)
    ).one()
    last_tokens, first_tokens, last_flops, last_all_tokens = both
    ratio = (last_tokens / first_tokens) if first_tokens else 1.0
    params = last_params
    if params is None and last_all_tokens:
        params = last_flops / (2.0 * last_all_tokens)
    if params is None:
        return {"largest_alone_flops": None, "estimated": True, "token_ratio": ratio}
    later = aliased(Attempt)
    visited_last = select(later.id).where(later.job_id == Attempt.job_id, later.tier == last, later.shadow.is_(False)).exists()
    exact = session.execute(
        select(func.sum(Attempt.tokens_in + Attempt.tokens_out))
        .join(Job, Job.id == Attempt.job_id)
        .where(Attempt.tier == last, Attempt.shadow.is_(False), *conditions)
    ).scalar() or 0
    estimated = session.execute(
        select(func.sum(Attempt.tokens_in * ratio + 1))
        .join(Job, Job.id == Attempt.job_id)
        .where(Attempt.tier == first, ~visited_last, *conditions)
    ).scalar() or 0
    return {
        "largest_alone_flops": 2.0 * params * (float(exact) + float(estimated)),
        "estimated": bool(estimated),
        "token_ratio": round(float(ratio), 4),
        "largest_params": params,
    }


def reference_accuracy(session: Session, batch_id: uuid.UUID, reference_id: uuid.UUID) -> dict[str, Any]:
    """Accuracy of the audited batch and of a reference batch (the largest tier alone) on their common
    row ids. The reference counts the largest tier's own answers, abstention aside: the baseline is
    that model answering everything."""
    ref, ref_attempt = aliased(Job), aliased(Attempt)
    right, ref_right = Job.correct.is_(True), ref_attempt.correct.is_(True)
    row = session.execute(
        select(
            func.count(),
            func.sum(case((right, 1), else_=0)),
            func.sum(case((ref_right, 1), else_=0)),
            func.sum(case((and_(Job.correct.is_(False), Job.answer.is_not(None)), 1), else_=0)),
            func.sum(case((and_(ref_attempt.correct.is_(False), ref_attempt.answer.is_not(None)), 1), else_=0)),
            func.sum(Job.flops),
            func.sum(ref.flops),
            func.sum(case((and_(right, ~ref_right), 1), else_=0)),
            func.sum(case((and_(ref_right, ~right), 1), else_=0)),
            func.sum(Job.flops * Job.flops),
            func.sum(ref.flops * ref.flops),
            func.sum(Job.flops * ref.flops),
        )
        .select_from(Job)
        .join(ref, and_(ref.row_id == Job.row_id, ref.batch_id == reference_id))
        .join(ref_attempt, and_(ref_attempt.job_id == ref.id, ref_attempt.tier == ref.final_tier, ref_attempt.shadow.is_(False)))
        .where(Job.batch_id == batch_id, Job.correct.is_not(None), ref_attempt.correct.is_not(None), Job.status == JobStatus.DONE.value,
               ref.status == JobStatus.DONE.value)
    ).one()
    n, right, ref_right, wrong, ref_wrong, flops, ref_flops, better, worse, sxx, syy, sxy = row
    if not n:
        return {"common_rows": 0}
    return {
        "common_rows": int(n),
        "accuracy": round(100.0 * right / n, 2),
        "largest_accuracy": round(100.0 * ref_right / n, 2),
        "pd_pp": round(100.0 * (right - ref_right) / n, 2),
        # PD relative to the largest tier's accuracy, as the paper reports it for open-ended QA.
        "pd_relative": round(100.0 * (right - ref_right) / ref_right, 2) if ref_right else None,
        "hallucination_rate": round(100.0 * (wrong or 0) / n, 2),
        "largest_hallucination_rate": round(100.0 * (ref_wrong or 0) / n, 2),
        "pd_interval": pd_interval_from_counts(int(n), int(better or 0), int(worse or 0)),
        "reduced_cc": round(100.0 * (1 - flops / ref_flops), 2) if ref_flops else None,
        "reduced_cc_interval": saving_interval_from_sums(int(n), float(flops or 0), float(ref_flops or 0), float(sxx or 0),
                                                         float(syy or 0), float(sxy or 0)),
    }


def list_jobs(
    session: Session,
    where: AuditFilter,
    *,
    decision: str | None = None,
    p_t_range: tuple[float | None, float | None] = (None, None),
    p_ik_range: tuple[float | None, float | None] = (None, None),
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Attempts matching the filters, newest first, with their job's outcome."""
    conditions = where.attempts()
    if decision:
        conditions.append(Attempt.decision == decision)
    for column, (low, high) in ((Attempt.p_t, p_t_range), (Attempt.p_ik, p_ik_range)):
        if low is not None:
            conditions.append(column >= low)
        if high is not None:
            conditions.append(column <= high)
    rows = session.execute(
        select(Attempt, Job.status, Job.answer, Job.final_tier, Job.gold, Job.external_id, Job.row_id)
        .join(Job, Job.id == Attempt.job_id)
        .where(*conditions)
        .order_by(Attempt.created_at.desc(), Attempt.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "job_id": str(a.job_id),
            "key": external_id or row_id,
            "tier": a.tier,
            "decision": a.decision,
            "answer": a.answer,
            "p_t": a.p_t,
            "p_ik": a.p_ik,
            "job_status": status,
            "final_answer": answer,
            "final_tier": final_tier,
            "gold": gold,
            "created_at": a.created_at.isoformat(),
        }
        for a, status, answer, final_tier, gold, external_id, row_id in rows
    ]


def epoch_s(session: Session, column):
    if is_postgres(session):
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def signal_histogram(session: Session, where: AuditFilter, tier: str, column_name: str, bins: int = 20) -> dict[str, list[int]]:
    """Counts of a signal (p_t or p_ik) in equal bins on [0, 1], split by whether the tier's answer was right."""
    column = getattr(Attempt, column_name)
    index = case((column >= 1.0, bins - 1), else_=cast(func.floor(column * bins), Integer))
    rows = session.execute(
        select(index, Attempt.correct, func.count())
        .where(*where.attempts(), Attempt.tier == tier, Attempt.correct.is_not(None), column.is_not(None))
        .group_by(index, Attempt.correct)
    ).all()
    out = {"correct": [0] * bins, "incorrect": [0] * bins}
    for i, ok, n in rows:
        out["correct" if ok else "incorrect"][int(i)] += n
    return out


def answered_over_time(session: Session, where: AuditFilter, buckets: int = 24) -> list[dict[str, Any]]:
    """Kept answers per tier in equal time buckets over the filtered attempts (grouped in SQL)."""
    kept = [*where.attempts(), Attempt.decision == Decision.ACCEPTED.value]
    epoch = epoch_s(session, Attempt.created_at)
    start, end = session.execute(select(func.min(epoch), func.max(epoch)).where(*kept)).one()
    if start is None:
        return []
    width = max((float(end) - float(start)) / buckets, 1e-6)
    index = cast(func.floor((epoch - float(start)) / width), Integer)
    rows = session.execute(select(index, Attempt.tier, func.count()).where(*kept).group_by(index, Attempt.tier)).all()
    out: dict[int, dict[str, int]] = {}
    for i, tier, n in rows:
        bucket = min(buckets - 1, int(i))
        out.setdefault(bucket, {})
        out[bucket][tier] = out[bucket].get(tier, 0) + n
    return [{"start_s": i * width, "counts": counts} for i, counts in sorted(out.items())]


def _names(qs: Sequence[float]) -> list[str]:
    return [f"p{round(q * 100):d}" for q in qs]


def paired_results(session: Session, batch_id: uuid.UUID, reference_id: uuid.UUID, first: str) -> list[tuple]:
    """Per common row: the first tier's (P(T), right, tokens in, tokens out) in the audited batch,
    the reference batch's (largest tier alone) (P(T), right, tokens in, tokens out), then the first
    tier's P(IK) and the largest tier's (None where it has no probe): the data to replay other
    thresholds on."""
    ref_job, ref_attempt = aliased(Job), aliased(Attempt)
    return session.execute(
        select(
            Attempt.p_t,
            Attempt.correct,
            Attempt.tokens_in,
            Attempt.tokens_out,
            ref_attempt.p_t,
            ref_attempt.correct,
            ref_attempt.tokens_in,
            ref_attempt.tokens_out,
            Attempt.p_ik,
            ref_attempt.p_ik,
            Attempt.token_logprobs,
            ref_attempt.token_logprobs,
        )
        .select_from(Job)
        .join(Attempt, and_(Attempt.job_id == Job.id, Attempt.tier == first))
        .join(ref_job, and_(ref_job.row_id == Job.row_id, ref_job.batch_id == reference_id))
        .join(ref_attempt, and_(ref_attempt.job_id == ref_job.id, ref_attempt.shadow.is_(False)))
        .where(Job.batch_id == batch_id, Attempt.correct.is_not(None), ref_attempt.correct.is_not(None))
        .order_by(Job.row_index)
    ).all()


def final_attempts(session: Session, batch_id: uuid.UUID) -> list[tuple]:
    """(P(T), right, tier) of the attempt that gave each graded job of the batch its final answer (or abstained)."""
    return session.execute(
        select(Attempt.p_t, Attempt.correct, Attempt.tier)
        .join(Job, and_(Job.id == Attempt.job_id, Attempt.tier == Job.final_tier, Attempt.shadow.is_(False)))
        .where(Job.batch_id == batch_id, Attempt.correct.is_not(None))
    ).all()


def tier_params(session: Session, tier: str) -> float | None:
    """The parameter count a tier's compute costs were computed with (FLOPs / 2 / tokens)."""
    row = session.execute(
        select(Attempt.flops, Attempt.tokens_in + Attempt.tokens_out)
        .where(Attempt.tier == tier, Attempt.tokens_in > 0)
        .limit(1)
    ).first()
    return row[0] / (2.0 * row[1]) if row else None
