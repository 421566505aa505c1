"""The escalation rule: keep an answer only when both signals clear their thresholds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from cascade.router.config import Tier


class Decision(str, Enum):
    """What a tier did with a query; stored as readable text in `attempts.decision`."""

    ACCEPTED = "accepted"
    ESCALATED = "escalated"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def decide(p_t: float, p_ik: float | None, tier: Tier, *, is_last: bool) -> Verdict:
    """Keep iff P(T) >= tau_t and (P(IK) >= tau_ik or the tier has no probe); the last tier always answers."""
    if is_last:
        return Verdict(Decision.ACCEPTED, "last tier")
    if p_t < tier.tau_t:
        return Verdict(Decision.ESCALATED, f"P(T) {p_t:.3f} < {tier.tau_t}")
    if tier.uses_probe:
        if p_ik is None:
            return Verdict(Decision.ESCALATED, "P(IK) missing")
        if p_ik < tier.tau_ik:
            return Verdict(Decision.ESCALATED, f"P(IK) {p_ik:.3f} < {tier.tau_ik}")
    return Verdict(Decision.ACCEPTED, "confident")


def shadowed(job_id: uuid.UUID, rate: float) -> bool:
    """Whether a kept answer is also sent to the last tier for the live audit: a share `rate` of jobs,
    chosen by the job id's random bits, so a redelivered message picks the same jobs."""
    return (job_id.int >> 64) / 2.0**64 < rate
