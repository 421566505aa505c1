"""Free-form evaluation data read from the user's copies: PopQA (CSV with `possible_answers`), NQ-open
(JSONL with `answer` aliases) and GSM8K (JSONL, final number after `####`). Each becomes rows of
{id, question (the prompt), gold (accepted answers), grader, max_tokens} for a batch run; the
prompts are this project's own wording. Nothing from these files ships with the project."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cascade.workers.lab.sampling import stratified

SHORT_ANSWER = "Answer with only the answer (a name, a number or a short phrase), no sentence and no explanation.\n\nQuestion: {question}"
WORKED_ANSWER = "Solve the problem. Show brief working, then write the final answer as a number after '####'.\n\nProblem: {question}"


class OpenBenchmark:
    """How one benchmark's rows are read, prompted and graded."""

    def __init__(self, name: str, grader: str, template: str, max_tokens: int):
        self.name, self.grader, self.template, self.max_tokens = name, grader, template, max_tokens

    def rows(self, path: Path, sample: int | None, seed: int, *, part: str = "all", max_tokens: int | None = None,
             grader: str | None = None) -> list[dict[str, Any]]:
        """A seeded sample (stratified by the reader's groups: PopQA's relations) as batch rows, from one
        half of the file (`part` fit or test: two fixed disjoint halves, the same for every seed) or all."""
        if not path.is_file():
            raise ValueError(f"{self.name}: data file {path} not found: pass --data")
        groups: dict[str, list[dict[str, Any]]] = {}
        for i, (question, aliases, group) in enumerate(READERS[self.name](path)):
            if not aliases:
                continue
            groups.setdefault(group or self.name, []).append({
                "id": f"{self.name}-{i}",
                "question": self.template.format(question=question.strip()),
                "gold": aliases,
                "grader": grader or self.grader,
                "max_tokens": max_tokens or self.max_tokens,
            })
        if not groups:
            raise ValueError(f"{self.name}: no questions with gold answers in {path}")
        if part != "all":
            groups = {name: half(rows, part) for name, rows in groups.items()}
        return stratified(groups, sample, seed)


def _popqa(path: Path) -> Iterator[tuple[str, list[str], str | None]]:
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            yield row["question"], _aliases(row.get("possible_answers")), row.get("prop")


def _nq(path: Path) -> Iterator[tuple[str, list[str], str | None]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                yield row["question"], _aliases(row.get("answer")), None


def _gsm8k(path: Path) -> Iterator[tuple[str, list[str], str | None]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                final = str(row.get("answer", "")).rsplit("####", 1)[-1].strip()
                yield row["question"], [final] if final else [], None


def _aliases(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [value]
    return [str(v) for v in value or [] if str(v).strip()]


READERS = {"popqa": _popqa, "nq": _nq, "gsm8k": _gsm8k}
BENCHMARKS = {
    "popqa": OpenBenchmark("popqa", "contains", SHORT_ANSWER, 24),
    "nq": OpenBenchmark("nq", "exact", SHORT_ANSWER, 24),
    "gsm8k": OpenBenchmark("gsm8k", "number", WORKED_ANSWER, 256),
}


PARTS = ("all", "fit", "test")
_HALVES_SEED = 20260  # fixed: the fit and test halves never change with the sampling seed


def half(rows: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    """One of two fixed disjoint halves of `rows`: probes and thresholds fit on one, evaluation on the other."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: use one of {', '.join(PARTS)}")
    order = list(range(len(rows)))
    random.Random(_HALVES_SEED).shuffle(order)
    cut = len(rows) // 2
    chosen = order[:cut] if part == "fit" else order[cut:]
    return [rows[i] for i in sorted(chosen)]
