"""The demo's questions and prompts, written for this project and shipped with the package: general
knowledge, arithmetic, extraction, ticket routing, sentiment, code and reasoning, easy to hard, with
gold answers (multiple-choice in demo_questions.jsonl, free-form in demo_prompts.jsonl)."""

from __future__ import annotations

import json
from typing import Any

from cascade.workers.runtime.settings import builtin_path


def sample_questions(name: str = "demo_questions.jsonl") -> list[dict[str, Any]]:
    """Rows of {id, subject, question, choices, answer}, or free-form {id, subject, question, gold, grader?, max_tokens}."""
    with open(builtin_path(name), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
