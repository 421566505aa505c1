"""Labelled questions for probes, calibration and evaluation: MMLU's CSV folders, GPQA's zip, the
free-form benchmarks (`popqa:FILE`, `nq:FILE`, `gsm8k:FILE`), and any JSONL/CSV/Parquet file with
gold answers (multiple-choice rows, or free-form rows with a prompt and accepted answers). Evaluation
data stays outside the project: users pass paths."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.prompts import JobKind, OpenPrompt, make_open_prompt, make_question, normalise_gold
from cascade.workers.lab.sampling import stratified

GPQA_PUBLIC_PASSWORD = "deserted-untie-orchid"  # stated in the GPQA authors' README


def read_mmlu_folder(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every question of an MMLU split folder (SUBJECT_SPLIT.csv files, no header), by subject, in
    file order: rows of {id, subject, question, choices, answer}."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.csv")):
        subject, _, split = path.stem.rpartition("_")
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if len(row) == 6:
                    by_subject.setdefault(subject, []).append(
                        {"id": f"{subject}-{split}-{i}", "subject": subject, "question": row[0], "choices": row[1:5], "answer": row[5]}
                    )
    return by_subject


def mmlu_rows(root: Path, split: str, sample: int | None, seed: int) -> list[dict[str, Any]]:
    """A sample of one MMLU split stratified over subjects (each subject's share of the split, at least one)."""
    folder = root / split
    if not folder.is_dir():
        raise ValueError(f"no MMLU split folder {folder}: pass --data-dir pointing at a folder with dev/, val/, test/")
    return stratified(read_mmlu_folder(folder), sample, seed)


def gpqa_rows(zip_path: Path, password: str, sample: int | None, seed: int) -> list[dict[str, Any]]:
    """GPQA diamond, read in memory from the password-protected zip; options shuffled with the seed."""
    with zipfile.ZipFile(zip_path) as archive:
        text = archive.read("dataset/gpqa_diamond.csv", pwd=password.encode()).decode("utf-8")
    rng = random.Random(seed)
    by_domain: dict[str, list[dict]] = {}
    for i, row in enumerate(csv.DictReader(io.StringIO(text))):
        options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
        options = [o.strip() for o in options]
        order = list(range(4))
        rng.shuffle(order)
        choices = [options[k] for k in order]
        domain = row.get("High-level domain", "gpqa")
        by_domain.setdefault(domain, []).append(
            {"id": row.get("Record ID") or f"gpqa-{i}", "subject": domain, "question": row["Question"].strip(),
             "choices": choices, "answer": "ABCD"[order.index(0)]}
        )
    return stratified(by_domain, sample, seed)


@dataclass
class Labelled:
    """Questions of one kind with their gold: letters for multiple-choice, accepted answers (and a
    grader each) for free-form prompts."""

    questions: list  # Question, or OpenPrompt for free-form
    gold: list  # a letter each, or a list of accepted answers each
    kind: str = JobKind.CHOICE.value
    graders: list[str] | None = None  # free-form: how each answer is graded

    def digest(self) -> str:
        h = hashlib.sha256()
        for i, (q, g) in enumerate(zip(self.questions, self.gold)):
            if self.kind == JobKind.OPEN.value:
                h.update(json.dumps([q.text, q.max_tokens, list(q.stop), g, self.graders[i]]).encode())
            else:
                h.update(json.dumps([q.text, list(q.choices), g]).encode())
        return h.hexdigest()[:16]

    def take(self, order) -> Labelled:
        return Labelled([self.questions[i] for i in order], [self.gold[i] for i in order], self.kind,
                        None if self.graders is None else [self.graders[i] for i in order])


def load_labelled(spec: str, *, limit: int | None = None, seed: int = 0) -> Labelled:
    """Labelled questions from MMLU-style CSV folders (comma-separated list), free-form benchmark files
    (`popqa:FILE`, `nq:FILE`, `gsm8k:FILE`, optionally `popqa:FILE:fit` for one fixed half), or a
    JSONL/CSV/Parquet file with gold answers. With `limit`, a seeded sample. All of one kind."""
    from cascade.workers.batch.datasets import read_rows
    from cascade.workers.lab.open_datasets import BENCHMARKS

    questions, gold, graders, kinds = [], [], [], set()
    for part in spec.split(","):
        name, _, rest = part.partition(":")
        if name in BENCHMARKS and rest:
            file, _, half = rest.partition(":")
            for row in BENCHMARKS[name].rows(Path(file), None, seed, part=half or "all"):
                questions.append(make_open_prompt(row["question"], max_tokens=row["max_tokens"]))
                gold.append(row["gold"])
                graders.append(row["grader"])
                kinds.add(JobKind.OPEN.value)
            continue
        path = Path(part)
        if path.is_dir():
            for rows in read_mmlu_folder(path).values():
                for row in rows:
                    q = make_question(row["question"], row["choices"])
                    questions.append(q)
                    gold.append(normalise_gold(row["answer"], q))
                    kinds.add(JobKind.CHOICE.value)
        else:
            for row in read_rows(path):
                if row.error is not None:
                    continue
                if row.kind == JobKind.OPEN.value and row.gold_aliases:
                    questions.append(OpenPrompt(row.question, row.max_tokens or DEFAULT_OPEN_TOKENS, tuple(row.stop or ())))
                    gold.append(list(row.gold_aliases))
                    graders.append(row.grader)
                    kinds.add(JobKind.OPEN.value)
                elif row.gold:
                    questions.append(make_question(row.question, row.choices))
                    gold.append(row.gold)
                    kinds.add(JobKind.CHOICE.value)
    if not questions:
        raise ValueError(f"no labelled questions in {spec}")
    if len(kinds) > 1:
        raise ValueError(f"{spec} mixes multiple-choice and free-form questions: give each kind on its own")
    kind = kinds.pop()
    data = Labelled(questions, gold, kind, graders if kind == JobKind.OPEN.value else None)
    if limit and limit < len(questions):
        data = data.take(np.random.default_rng(seed).permutation(len(questions))[:limit])
    return data


DEFAULT_OPEN_TOKENS = 32  # new tokens for a labelled free-form row that does not say
