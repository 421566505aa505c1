"""Labelled questions for probes, calibration and evaluation: MMLU's CSV folders, GPQA's zip, and any
JSONL/CSV/Parquet file with gold answers. Evaluation data stays outside the project: users pass paths."""

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

from cascade.router.prompts import Question, make_question, normalise_gold

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


def stratified(groups: dict[str, list[dict]], sample: int | None, seed: int) -> list[dict]:
    """`sample` rows drawn from every group in proportion to its size (at least one each), seeded."""
    total = sum(len(v) for v in groups.values())
    if not sample or sample >= total:
        return [row for rows in groups.values() for row in rows]
    rng = random.Random(seed)
    picked = []
    for rows in groups.values():
        take = max(1, round(sample * len(rows) / total))
        picked += rng.sample(rows, min(take, len(rows)))
    rng.shuffle(picked)
    return picked[:sample]


@dataclass
class Labelled:
    questions: list[Question]
    gold: list[str]

    def digest(self) -> str:
        h = hashlib.sha256()
        for q, g in zip(self.questions, self.gold):
            h.update(json.dumps([q.text, list(q.choices), g]).encode())
        return h.hexdigest()[:16]


def load_labelled(spec: str, *, limit: int | None = None, seed: int = 0) -> Labelled:
    """Labelled multiple-choice questions from MMLU-style CSV folders (comma-separated list) or a
    JSONL/CSV/Parquet file with an `answer` field. With `limit`, a seeded sample."""
    from cascade.workers.batch.datasets import read_rows

    questions, gold = [], []
    for part in spec.split(","):
        path = Path(part)
        if path.is_dir():
            for rows in read_mmlu_folder(path).values():
                for row in rows:
                    q = make_question(row["question"], row["choices"])
                    questions.append(q)
                    gold.append(normalise_gold(row["answer"], q))
        else:
            for row in read_rows(path):
                if row.error is None and row.gold:
                    questions.append(make_question(row.question, row.choices))
                    gold.append(row.gold)
    if not questions:
        raise ValueError(f"no labelled questions in {spec}")
    if limit and limit < len(questions):
        order = np.random.default_rng(seed).permutation(len(questions))[:limit]
        questions, gold = [questions[i] for i in order], [gold[i] for i in order]
    return Labelled(questions, gold)
