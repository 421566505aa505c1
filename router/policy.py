"""The escalation rule: keep an answer only when both signals clear their thresholds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from cascade.router.config import Tier
from cascade.router.prompts import JobKind


class Decision(str, Enum):
    """What a tier did with a query; stored as readable text in `attempts.decision`."""

    ACCEPTED = "accepted"
    ESCALATED = "escalated"
    FAILED = "failed"
    ABSTAINED = "abstained"  # the last tier was too unsure to answer: the job is done with no answer


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def decide(p_t: float, p_ik: float | None, tier: Tier, *, is_last: bool, kind: str = JobKind.CHOICE.value) -> Verdict:
    """Keep iff P(T) >= tau_t and (P(IK) >= tau_ik or the tier has no probe for this kind of job).
    The last tier always answers, unless it has `abstain_below` and its P(T) is below that."""
    if is_last:
        if tier.abstain_below is not None and p_t < tier.abstain_below:
            return Verdict(Decision.ABSTAINED, f"P(T) {p_t:.3f} < abstain_below {tier.abstain_below}")
        return Verdict(Decision.ACCEPTED, "last tier")
    tau_t, tau_ik = tier.tau_t_for(kind), tier.tau_ik_for(kind)
    if p_t < tau_t:
        return Verdict(Decision.ESCALATED, f"P(T) {p_t:.3f} < {tau_t}")
    if tier.probe_for(kind) is not None:
        if p_ik is None:
            return Verdict(Decision.ESCALATED, "P(IK) missing")
        if p_ik < tau_ik:
            return Verdict(Decision.ESCALATED, f"P(IK) {p_ik:.3f} < {tau_ik}")
    return Verdict(Decision.ACCEPTED, "confident")


def shadowed(job_id: uuid.UUID, rate: float) -> bool:
    """Whether a kept answer is also sent to the last tier for the live audit: a share `rate` of jobs,
    chosen by the job id's random bits, so a redelivered message picks the same jobs."""
    return (job_id.int >> 64) / 2.0**64 < rate
