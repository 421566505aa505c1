"""Counts behind the live audit: for each tier that keeps answers, how many it kept, and how its kept
answers compare with the last tier's shadow answers (agreement, and against gold where it exists),
overall or per time window. The estimate itself is `router.risk.live_pd`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session, aliased

from cascade.router.policy import Decision
from cascade.storage.audit import AuditFilter, epoch_s
from cascade.storage.models import Attempt, Job, JobStatus


@dataclass
class ShadowCounts:
    tier: str
    window_start_s: float | None  # seconds since the epoch; None: the whole filter
    kept: int  # answers the tier kept (jobs it finished)
    shadowed: int  # of those, answered by the last tier too
    agree: int  # ... with the same answer
    graded: int  # shadowed jobs with a gold answer
    better: int  # kept right, last tier wrong
    worse: int  # kept wrong, last tier right


def finished_jobs(session: Session, where: AuditFilter) -> int:
    return int(session.scalar(select(func.count()).select_from(Job).where(*where.jobs(), Job.status == JobStatus.DONE.value)) or 0)


def shadow_counts(session: Session, where: AuditFilter, tiers: list[str], last: str, *, window_s: float | None = None) -> list[ShadowCounts]:
    """Per tier in `tiers` (the ones before `last`) and, with `window_s`, per window of the kept attempt's time."""
    kept, shade = aliased(Attempt), aliased(Attempt)
    bucket = cast(func.floor(epoch_s(session, kept.created_at) / window_s), Integer) if window_s else None
    untiered = AuditFilter(where.batch_id, where.since, where.until)  # every tier before the last
    kept_conditions = [
        kept.decision == Decision.ACCEPTED.value,
        kept.tier.in_(tiers),
        *untiered.attempts(of=kept),
    ]
    group = [kept.tier] + ([bucket] if bucket is not None else [])
    totals = {
        tuple(row[:-1]): row[-1]
        for row in session.execute(select(*group, func.count()).select_from(kept).where(*kept_conditions).group_by(*group))
    }
    right, shadow_right = kept.correct.is_(True), shade.correct.is_(True)
    paired = session.execute(
        select(
            *group,
            func.count(),
            func.sum(case((kept.answer == shade.answer, 1), else_=0)),
            func.sum(case((kept.correct.is_not(None), 1), else_=0)),
            func.sum(case((and_(right, ~shadow_right), 1), else_=0)),
            func.sum(case((and_(shadow_right, ~right), 1), else_=0)),
        )
        .select_from(kept)
        .join(shade, and_(shade.job_id == kept.job_id, shade.tier == last, shade.shadow.is_(True), shade.decision == Decision.ACCEPTED.value))
        .join(Job, Job.id == kept.job_id)
        .where(*kept_conditions)
        .group_by(*group)
    ).all()
    by_key = {tuple(row[: len(group)]): row[len(group):] for row in paired}
    out = []
    for key, n_kept in sorted(totals.items(), key=lambda item: (tiers.index(item[0][0]), item[0][1:])):
        n, agree, graded, better, worse = by_key.get(key, (0, 0, 0, 0, 0))
        start = float(key[1] * window_s) if window_s else None
        out.append(ShadowCounts(key[0], start, int(n_kept), int(n), int(agree or 0), int(graded or 0), int(better or 0), int(worse or 0)))
    return out


def audit_cost(session: Session, where: AuditFilter) -> dict[str, float]:
    """What the shadow attempts cost: audit cost, kept apart from the jobs' own."""
    n, flops, usd = session.execute(
        select(func.count(), func.sum(Attempt.flops), func.sum(Attempt.cost_usd)).where(*where.attempts(shadow=True))
    ).one()
    return {"attempts": int(n or 0), "flops": float(flops or 0.0), "cost_usd": float(usd or 0.0)}



@dataclass
class ShadowLabel:
    """One finished job as calibration data for a tier whose next tier is the last: what the tier
    said, and what the last tier answered (it was escalated there, or shadowed there)."""

    p_t: float
    p_ik: float | None
    answer: str | None
    flops: float
    last_answer: str | None
    last_flops: float
    gold: str | None
    kept: bool
    correct: bool | None = None  # the tier's answer graded at write time (None: no gold)
    last_correct: bool | None = None


def shadow_labels(session: Session, where: AuditFilter, tier: str, last: str) -> list[ShadowLabel]:
    """Jobs the tier answered in the filter and the last tier answered too (escalated, or shadowed)."""
    own, other = aliased(Attempt), aliased(Attempt)
    rows = session.execute(
        select(own.p_t, own.p_ik, own.answer, own.flops, other.answer, other.flops, Job.gold, own.decision, own.correct, other.correct)
        .select_from(own)
        .join(Job, Job.id == own.job_id)
        .join(other, and_(other.job_id == own.job_id, other.tier == last, other.decision == Decision.ACCEPTED.value))
        .where(own.tier == tier, own.decision.in_([Decision.ACCEPTED.value, Decision.ESCALATED.value]), *where.attempts(of=own))
    ).all()
    return [
        ShadowLabel(float(r[0] or 0.0), r[1], r[2], float(r[3] or 0.0), r[4], float(r[5] or 0.0), r[6], r[7] == Decision.ACCEPTED.value, r[8], r[9])
        for r in rows
    ]


def kept_count(session: Session, where: AuditFilter, tier: str) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.tier == tier, Attempt.decision == Decision.ACCEPTED.value, *where.attempts())
    ) or 0)
