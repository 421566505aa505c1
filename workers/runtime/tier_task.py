"""The tier task: score the jobs in a message, write the attempts, then forward the unsure ones."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

from celery.exceptions import Reject, Retry

from cascade.router.errors import ConfigError, ProbeError
from cascade.router.policy import Decision, shadowed
from cascade.router.prompts import prompt_size
from cascade.storage.engine import is_unreachable, session_scope
from cascade.storage.repository import fail_jobs, record_attempts, record_shadows, shadow_work, work_for_tier
from cascade.workers.backends import BackendError
from cascade.workers.runtime.dispatch import SCORE_TASK, send_jobs
from cascade.workers.runtime.drain import drainer_for
from cascade.workers.runtime.scoring import scorer_for
from cascade.workers.runtime.settings import Settings

log = logging.getLogger("cascade.tasks")


class Activity:
    """When this process last started a tier step, and whether one is running (for the watchdog)."""

    def __init__(self) -> None:
        self.busy = False
        self.last_started = time.monotonic()

    def idle_for_s(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.last_started


activity = Activity()
MAX_RETRIES = 5  # for errors other than an unreachable database
RETRY_CAP_S = 30  # longest pause between tries; keep it well under the visibility timeout


def run_step(app, settings: Settings, tier_name: str, job_ids: list[str], *, shadow: bool = False) -> dict[str, Any]:
    """Score, decide, commit, then enqueue on the next tier, one forward pass (max_batch jobs) at a
    time, so progress is visible and a crash loses one pass. Safe to run twice for the same message.
    A tier with a shadow_rate also sends that share of the answers it keeps to the last tier."""
    config = settings.config
    tier = config.tier(tier_name)
    next_tier = config.next_tier(tier)
    ids = [uuid.UUID(str(job_id)) for job_id in job_ids]
    url = settings.require_database()
    if shadow:
        return run_shadow_step(settings, tier_name, ids)
    with session_scope(url) as session:
        work = work_for_tier(session, ids, tier.name)
    # work.reforward: jobs escalated by an earlier delivery that died before it could enqueue them.
    for target, target_ids in work.reforward.items():
        send_jobs(app, config.tier(target), list(dict.fromkeys(target_ids)))
    counts: Counter = Counter()
    scored = 0
    pending = sorted(work.pending, key=lambda job: prompt_size(job.question, job.choices))  # similar lengths share a pass: less padding
    for start in range(0, len(pending), tier.max_batch):
        records = scorer_for(config, tier.name).run(pending[start : start + tier.max_batch])
        scored += len(records)
        with session_scope(url) as session:
            inserted = record_attempts(session, records, next_tier=next_tier.name if next_tier else None)
        escalated = [r.job_id for r in records if r.decision == Decision.ESCALATED.value and r.job_id in inserted]
        if escalated and next_tier is not None:
            send_jobs(app, next_tier, escalated)
        if tier.shadow_rate and next_tier is not None:
            kept = [r.job_id for r in records if r.decision == Decision.ACCEPTED.value and r.job_id in inserted]
            picked = [job_id for job_id in kept if shadowed(job_id, tier.shadow_rate)]
            if picked:
                send_jobs(app, config.last, picked, shadow=True)
                counts["shadowed"] += len(picked)
        counts.update(r.decision for r in records if r.job_id in inserted)
    return {"tier": tier.name, "scored": scored, "skipped": work.skipped, **counts}


def run_shadow_step(settings: Settings, tier_name: str, ids: list[uuid.UUID]) -> dict[str, Any]:
    """The last tier answers jobs a cheaper tier kept, as shadow attempts: the jobs do not change."""
    url = settings.require_database()
    with session_scope(url) as session:
        pending = shadow_work(session, ids, tier_name)
    written = 0
    max_batch = settings.config.tier(tier_name).max_batch
    for start in range(0, len(pending), max_batch):
        records = [replace(r, shadow=True) for r in scorer_for(settings.config, tier_name).run(pending[start : start + max_batch])]
        with session_scope(url) as session:
            written += len(record_shadows(session, records))
    return {"tier": tier_name, "shadow": written, "skipped": len(ids) - len(pending)}


def register(app, settings: Settings) -> None:
    # max_retries=None: the task counts its own retries, because an unreachable database is
    # retried for as long as it lasts, while other errors give up after MAX_RETRIES.
    @app.task(name=SCORE_TASK, bind=True, max_retries=None)
    def score(self, tier_name: str, job_ids: list[str], shadow: bool = False) -> dict[str, Any]:
        activity.busy, activity.last_started = True, time.monotonic()
        try:
            return _score_message(self, tier_name, job_ids, shadow)
        finally:
            activity.busy = False

    def _score_message(self, tier_name: str, job_ids: list[str], shadow: bool) -> dict[str, Any]:
        drained = _drain(app, settings, tier_name, job_ids, shadow)
        all_ids = list(job_ids) + [job_id for d in drained for job_id in d.job_ids]
        try:
            outcome = _score_or_fail(self, app, settings, tier_name, all_ids, shadow)
        except Exception as exc:
            # No outcome was committed for (some of) these jobs: never ack, try again later.
            for d in drained:
                d.give_back()
            raise _again(self, tier_name, exc) from exc
        for d in drained:
            d.ack()
        outcome["messages"] = 1 + len(drained)
        return outcome


def _score_or_fail(task, app, settings: Settings, tier_name: str, job_ids: list[str], shadow: bool) -> dict[str, Any]:
    """The step's outcome, committed; raises when it should be tried again (nothing to ack yet)."""
    try:
        return run_step(app, settings, tier_name, job_ids, shadow=shadow)
    except (BackendError, ProbeError, ConfigError) as exc:
        # Permanent: retrying cannot help. Fail the jobs with the reason instead of losing them.
        log.error("tier %s cannot score %d job(s): %s", tier_name, len(job_ids), exc)
        error = str(exc)
    except Exception as exc:
        if is_unreachable(exc) or task.request.retries < MAX_RETRIES:
            raise
        log.exception("tier %s: giving up on %d job(s)", tier_name, len(job_ids))
        error = f"{type(exc).__name__}: {exc}"
    with session_scope(settings.require_database()) as session:  # raises while the database is down
        fail_jobs(session, [uuid.UUID(str(i)) for i in job_ids], tier=tier_name, error=error)
    return {"tier": tier_name, "failed": len(job_ids), "error": error}


def _again(task, tier_name: str, exc: Exception) -> Exception:
    """A retry of the message (a copy is sent before this one is acked), or, when even that cannot be
    sent, a requeue of this message after a pause."""
    countdown = min(RETRY_CAP_S, 2 ** min(task.request.retries, 5))
    reason = "database unreachable" if is_unreachable(exc) else f"{type(exc).__name__}: {exc}"
    log.warning("tier %s: %s; trying again in %d s (retry %d)", tier_name, reason, countdown, task.request.retries + 1)
    try:
        return task.retry(exc=exc, countdown=countdown)
    except Retry as retry:
        return retry
    except Exception:  # the broker is unreachable too: hold on, then put the message back
        log.warning("tier %s: cannot send the retry; requeueing the message", tier_name, exc_info=True)
        time.sleep(countdown)
        return Reject(reason, requeue=True)


def _drain(app, settings: Settings, tier_name: str, job_ids: list[str], shadow: bool) -> list:
    """More waiting messages for the same tier, up to its max_batch, within its max_wait_ms."""
    try:
        tier = settings.config.tier(tier_name)
    except ConfigError:
        return []
    room = tier.max_batch - len(job_ids)
    if room <= 0 or tier.max_wait_ms <= 0:
        return []
    try:
        return drainer_for(app, tier).take(room, tier.max_wait_ms / 1000.0, shadow=shadow)
    except Exception:  # draining is an optimisation; the message in hand is still scored
        log.warning("tier %s: could not drain more messages", tier_name, exc_info=True)
        return []
