"""`cascade demo`: push the shipped questions (multiple-choice) and prompts (free-form) through the
cascade as one batch and report on it with the same audit summary that `cascade audit summary --batch
NAME` prints.

With no broker or database configured it needs no servers: SQLite in a temporary folder, Celery's
in-memory broker and an in-process worker running the same task on the same tier queues as
production. With CASCADE_BROKER_URL / CASCADE_DATABASE_URL set it uses those (and your workers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from cascade.workers.lab.embedded import running_cascade
from cascade.workers.lab.evaluation import push_rows
from cascade.workers.lab.samples import sample_questions
from cascade.workers.runtime.settings import Settings


def run_demo(
    settings: Settings,
    *,
    limit: int | None = None,
    reference: bool = False,
    timeout_s: float = 900.0,
    echo: Callable[[str], None] = lambda _msg: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The audit summary of one demo batch (with `reference`: against the largest tier alone)."""
    rows = sample_questions() + sample_questions("demo_prompts.jsonl")
    rows = rows[:limit] if limit else rows
    with running_cascade(settings, echo=echo, prefix="cascade-demo-") as client:
        name = f"demo-{uuid.uuid4().hex[:8]}"
        prompts = sum(1 for r in rows if not r.get("choices"))
        echo(f"submitting {len(rows) - prompts} questions and {prompts} free-form prompts to tier "
             f"{client.settings.config.first.name} as batch {name}")
        report = push_rows(client, rows, name=name, reference=reference, timeout_s=timeout_s, on_progress=on_progress)
    report["batch"] = name
    return report
