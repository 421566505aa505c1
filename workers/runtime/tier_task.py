"""The tier task: score the jobs in a message, write the attempts, then forward the unsure ones."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

from cascade.router.errors import ConfigError, ProbeError
from cascade.router.policy import Decision
from cascade.storage.engine import session_scope
from cascade.storage.repository import fail_jobs, record_attempts, work_for_tier
from cascade.workers.backends import BackendError
from cascade.workers.runtime.dispatch import SCORE_TASK, send_jobs
from cascade.workers.runtime.drain import drainer_for
from cascade.workers.runtime.scoring import scorer_for
from cascade.workers.runtime.settings import Settings

log = logging.getLogger("cascade.tasks")
MAX_RETRIES = 5


def run_step(app, settings: Settings, tier_name: str, job_ids: list[str]) -> dict[str, Any]:
    """Score, decide, commit, then enqueue on the next tier. Safe to run twice for the same message."""
    config = settings.config
    tier = config.tier(tier_name)
    next_tier = config.next_tier(tier)
    ids = [uuid.UUID(str(job_id)) for job_id in job_ids]
    url = settings.require_database()
    with session_scope(url) as session:
        work = work_for_tier(session, ids, tier.name)
    # work.reforward: jobs escalated by an earlier delivery that died before it could enqueue them.
    reforward = work.reforward
    records = scorer_for(config, tier.name).run(work.pending) if work.pending else []
    with session_scope(url) as session:
        inserted = record_attempts(session, records, next_tier=next_tier.name if next_tier else None)
    escalated = [r.job_id for r in records if r.decision == Decision.ESCALATED.value and r.job_id in inserted]
    if escalated and next_tier is not None:
        reforward.setdefault(next_tier.name, []).extend(escalated)
    for target, target_ids in reforward.items():
        send_jobs(app, config.tier(target), list(dict.fromkeys(target_ids)))
    counts = Counter(r.decision for r in records if r.job_id in inserted)
    return {"tier": tier.name, "scored": len(records), "skipped": work.skipped, **counts}


def register(app, settings: Settings) -> None:
    @app.task(name=SCORE_TASK, bind=True, max_retries=MAX_RETRIES)
    def score(self, tier_name: str, job_ids: list[str]) -> dict[str, Any]:
        drained = _drain(app, settings, tier_name, job_ids)
        all_ids = list(job_ids) + [job_id for d in drained for job_id in d.job_ids]
        try:
            outcome = run_step(app, settings, tier_name, all_ids)
        except (BackendError, ProbeError, ConfigError) as exc:
            # Permanent: retrying cannot help. Fail the jobs with the reason instead of losing them.
            log.error("tier %s cannot score %d job(s): %s", tier_name, len(all_ids), exc)
            _fail(settings, tier_name, all_ids, str(exc))
            outcome = {"tier": tier_name, "failed": len(all_ids), "error": str(exc)}
        except Exception as exc:
            if self.request.retries < MAX_RETRIES:
                for d in drained:
                    d.give_back()
                log.warning("tier %s: %s; retrying (%d)", tier_name, exc, self.request.retries + 1)
                raise self.retry(exc=exc, countdown=min(30, 2**self.request.retries))
            log.exception("tier %s: giving up on %d job(s)", tier_name, len(all_ids))
            _fail(settings, tier_name, all_ids, f"{type(exc).__name__}: {exc}")
            outcome = {"tier": tier_name, "failed": len(all_ids), "error": str(exc)}
        for d in drained:
            d.ack()
        outcome["messages"] = 1 + len(drained)
        return outcome


def _drain(app, settings: Settings, tier_name: str, job_ids: list[str]) -> list:
    """More waiting messages for the same tier, up to its max_batch, within its max_wait_ms."""
    try:
        tier = settings.config.tier(tier_name)
    except ConfigError:
        return []
    room = tier.max_batch - len(job_ids)
    if room <= 0 or tier.max_wait_ms <= 0:
        return []
    try:
        return drainer_for(app, tier).take(room, tier.max_wait_ms / 1000.0)
    except Exception:  # draining is an optimisation; the message in hand is still scored
        log.warning("tier %s: could not drain more messages", tier_name, exc_info=True)
        return []


def _fail(settings: Settings, tier_name: str, job_ids: list[str], error: str) -> None:
    try:
        with session_scope(settings.require_database()) as session:
            fail_jobs(session, [uuid.UUID(str(i)) for i in job_ids], tier=tier_name, error=error)
    except Exception:  # the jobs stay queued in the database; `cascade redrive` picks them up
        log.exception("could not record the failure of %d job(s)", len(job_ids))
