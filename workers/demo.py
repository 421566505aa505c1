"""`cascade demo`: push the shipped multiple-choice sample through the cascade and summarise it.

With no broker or database configured it needs no servers: SQLite in a temporary folder, Celery's
in-memory broker and an in-process worker running the same task on the same tier queues as
production. With CASCADE_BROKER_URL / CASCADE_DATABASE_URL set it uses those (and your workers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from router.cost import call_flops, reduced_cc
from router.prompts import make_question
from storage.engine import session_scope
from storage.models import Job, JobStatus
from workers.backends import create_backend
from workers.embedded import running_cascade
from workers.samples import sample_questions
from workers.scoring import scorer_for
from workers.settings import Settings


def run_demo(
    settings: Settings,
    *,
    limit: int | None = None,
    reference: bool = False,
    timeout_s: float = 900.0,
    echo: Callable[[str], None] = lambda _msg: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    rows = sample_questions()[:limit] if limit else sample_questions()
    with running_cascade(settings, echo=echo, prefix="cascade-demo-") as client:
        settings = client.settings
        run = uuid.uuid4().hex[:8]
        job_ids = client.submit_many(
            {"question": r["question"], "choices": r["choices"], "gold": r["answer"], "external_id": f"demo:{run}:{r['id']}"}
            for r in rows
        )
        echo(f"submitted {len(job_ids)} questions to tier {settings.config.first.name}")
        client.wait_all(job_ids, timeout=timeout_s, on_progress=on_progress)
        return summarise(settings, job_ids, rows, reference=reference)


def summarise(settings: Settings, job_ids: list[str], rows: list[dict], *, reference: bool) -> dict[str, Any]:
    """The demo's report: counts per tier, accuracy, reduced compute and (with reference) PD."""
    config = settings.config
    ids = [uuid.UUID(j) for j in job_ids]
    with session_scope(settings.require_database()) as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(ids)).options(selectinload(Job.attempts))).all()
        jobs = sorted(jobs, key=lambda j: ids.index(j.id))
        tiers = {t.name: {"answered": 0, "escalated": 0, "failed": 0} for t in config.tiers}
        for job in jobs:
            for attempt in job.attempts:
                key = {"accepted": "answered"}.get(attempt.decision, attempt.decision)
                tiers.setdefault(attempt.tier, {"answered": 0, "escalated": 0, "failed": 0})[key] += 1
        done = sum(j.status == JobStatus.DONE.value for j in jobs)
        failed = sum(j.status == JobStatus.FAILED.value for j in jobs)
        graded = [j for j in jobs if j.gold]
        correct = sum(j.answer == j.gold for j in graded)
        cascade_flops = [j.flops for j in jobs]
        largest_flops = _largest_alone_flops(settings, jobs)
    questions = [make_question(r["question"], r["choices"]) for r in rows]
    report: dict[str, Any] = {
        "jobs": len(jobs),
        "done": done,
        "failed": failed,
        "tiers": tiers,
        "accuracy": round(100.0 * correct / len(graded), 2) if graded else None,
        "reduced_cc": round(100.0 * reduced_cc(cascade_flops, largest_flops), 2),
        "pd_pp": None,
        "largest_accuracy": None,
    }
    if reference and graded:
        scorer = scorer_for(config, config.last.name)
        answers = scorer.backend.score(questions)
        right = sum(getattr(a, "answer", None) == r["answer"] for a, r in zip(answers, rows))
        report["largest_accuracy"] = round(100.0 * right / len(rows), 2)
        report["pd_pp"] = round(report["accuracy"] - report["largest_accuracy"], 2)
    return report


def _largest_alone_flops(settings: Settings, jobs: list[Job]) -> list[float]:
    """What the last tier would have spent answering every job itself."""
    last = settings.config.last
    seen = {j.id: a for j in jobs for a in j.attempts if a.tier == last.name and a.tokens_in}
    params = last.params
    if params is None and seen:
        any_attempt = next(iter(seen.values()))
        params = any_attempt.flops / (2.0 * (any_attempt.tokens_in + any_attempt.tokens_out))
    backend = None
    if params is None:
        backend = scorer_for(settings.config, last.name).backend
        params = backend.params
    missing = [j for j in jobs if j.id not in seen]
    counted: dict[uuid.UUID, int] = {}
    if missing:
        if backend is None:
            backend = create_backend(last)
            backend.load_tokenizer()
        tokens = backend.count_tokens([make_question(j.question, j.choices) for j in missing])
        counted = {j.id: n for j, n in zip(missing, tokens)}
    return [
        call_flops(params, seen[j.id].tokens_in, seen[j.id].tokens_out) if j.id in seen else call_flops(params, counted[j.id], 1)
        for j in jobs
    ]


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'tier':<12}{'answered':>10}{'escalated':>11}{'failed':>8}{'share':>8}"]
    total = max(1, report["jobs"])
    for name, counts in report["tiers"].items():
        share = 100.0 * counts["answered"] / total
        lines.append(f"{name:<12}{counts['answered']:>10}{counts['escalated']:>11}{counts['failed']:>8}{share:>7.1f}%")
    lines.append("")
    lines.append(f"jobs {report['jobs']}  done {report['done']}  failed {report['failed']}")
    acc = report["accuracy"]
    lines.append(f"accuracy {acc:.2f}%" if acc is not None else "accuracy n/a (no gold answers)")
    lines.append(f"reduced compute vs largest tier alone: {report['reduced_cc']:.2f}%")
    if report["pd_pp"] is not None:
        lines.append(f"largest tier alone {report['largest_accuracy']:.2f}%  PD {report['pd_pp']:+.2f} pp")
    return "\n".join(lines)
