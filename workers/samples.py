"""Multiple-choice samples shipped with the package (a few MMLU validation questions, MIT licensed)."""

from __future__ import annotations

import json
from typing import Any

from workers.settings import builtin_path


def sample_questions(name: str = "sample_mmlu.jsonl") -> list[dict[str, Any]]:
    """Rows of {id, subject, question, choices, answer}."""
    with open(builtin_path(name), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
