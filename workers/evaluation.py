"""`cascade eval`: a fixed, seeded sample of a benchmark pushed through the real queues and workers,
once through the cascade and once through the largest tier alone (the reference), then measured:
accuracy, PD, reduced compute, AUROC of P(T) and P(IK), share answered per tier, and the
P(T)-only / P(IK)-only ablations replayed on the same per-question results.
"""

from __future__ import annotations

import csv
import io
import json
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from router.calibration import CalibrationData, evaluate
from storage.audit import paired_results, tier_params
from storage.batches import get_batch
from storage.engine import session_scope
from workers import batches as batch_runs
from workers.audit_report import make_filter, summary
from workers.embedded import running_cascade
from workers.settings import Settings

GPQA_PUBLIC_PASSWORD = "deserted-untie-orchid"  # stated in the GPQA authors' README


def mmlu_rows(root: Path, split: str, sample: int | None, seed: int) -> list[dict[str, Any]]:
    """A sample stratified over subjects (each subject's share of the split, at least one)."""
    folder = root / split
    if not folder.is_dir():
        raise ValueError(f"no MMLU split folder {folder}: pass --data-dir pointing at a folder with dev/, val/, test/")
    by_subject: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.csv")):
        subject = path.stem.rsplit("_", 1)[0]
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if len(row) == 6:
                    by_subject.setdefault(subject, []).append(
                        {"id": f"{subject}-{split}-{i}", "subject": subject, "question": row[0], "choices": row[1:5], "answer": row[5]}
                    )
    return _stratified(by_subject, sample, seed)


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
    return _stratified(by_domain, sample, seed)


def _stratified(groups: dict[str, list[dict]], sample: int | None, seed: int) -> list[dict]:
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


def _wait(client, names: list[str], timeout_s: float, on_progress: Callable[[int, int], None] | None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = [batch_runs.status(client, n) for n in names]
        if on_progress:
            done = sum(s["counts"]["total"] - s["counts"]["queued"] for s in states)
            on_progress(done, sum(s["counts"]["total"] for s in states))
        if all(s["status"] == "completed" for s in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"evaluation batches still running after {timeout_s} s")
        time.sleep(1.0)


def run_eval(
    settings: Settings,
    rows: list[dict[str, Any]],
    *,
    name: str,
    ablate: bool,
    ablate_thresholds: tuple[float | None, float | None] = (None, None),
    timeout_s: float,
    echo: Callable[[str], None] = lambda _m: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    config = settings.config
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cascade-eval-") as folder, running_cascade(settings, echo=echo, prefix="cascade-eval-") as client:
        data = Path(folder) / "questions.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        names = [name, f"{name}-{config.last.name}-alone"]
        started = time.monotonic()
        batch_runs.submit_file(client, data, name=names[0])
        batch_runs.submit_file(client, data, name=names[1], start_tier=config.last.name)
        _wait(client, names, timeout_s, on_progress)
        timings["cascade_and_reference_s"] = round(time.monotonic() - started, 1)
        url = client.database_url
        where = make_filter(url, batch=names[0], since=None, until=None, tier=None)
        report = summary(url, config, where, reference_batch=names[1])
        with session_scope(url) as session:
            pairs = paired_results(session, where.batch_id, get_batch(session, names[1]).id, config.first.name)
            params = {t: tier_params(session, t) or 0.0 for t in (config.first.name, config.last.name)}
    result: dict[str, Any] = {
        "questions": len(rows),
        "batches": names,
        "accuracy": report["accuracy"],
        "largest_accuracy": report["largest_accuracy"],
        "pd_pp": report["pd_pp"],
        "reduced_cc": report["reduced_cc"],
        "answered": {t["tier"]: round(t["answered"] / len(rows), 4) for t in report["tiers"]},
        "timings": timings,
    }
    first_p_t = np.array([p[0] or 0.0 for p in pairs])
    first_right = np.array([bool(p[1]) for p in pairs])
    last_p_t = np.array([p[4] or 0.0 for p in pairs])
    last_right = np.array([bool(p[5]) for p in pairs])
    p_ik = None if any(p[8] is None for p in pairs) else np.array([p[8] for p in pairs])
    last_p_ik = None if any(p[9] is None for p in pairs) else np.array([p[9] for p in pairs])
    from workers.pik import auroc

    result["auroc"] = {
        config.first.name: {"p_t": auroc(first_p_t, first_right), "p_ik": auroc(p_ik, first_right) if p_ik is not None else None},
        config.last.name: {"p_t": auroc(last_p_t, last_right), "p_ik": auroc(last_p_ik, last_right) if last_p_ik is not None else None},
    }
    result["alone_accuracy"] = {config.first.name: round(100 * first_right.mean(), 2), config.last.name: round(100 * last_right.mean(), 2)}
    if ablate and len(config.tiers) == 2:
        first = config.first
        data = CalibrationData(
            p_t=first_p_t,
            p_ik=p_ik,
            small_correct=first_right,
            large_correct=last_right,
            small_flops=2.0 * params[first.name] * np.array([p[2] + p[3] for p in pairs], dtype=float),
            large_flops=2.0 * params[config.last.name] * np.array([p[6] + p[7] for p in pairs], dtype=float),
        )
        # Each single-signal variant at its own threshold (calibrate --signal p_t / p_ik gives them),
        # by default the tier's.
        alone_t, alone_ik = ablate_thresholds
        variants = {"P(T) and P(IK)": (first.tau_t, first.tau_ik if p_ik is not None else None)}
        variants["P(T) only"] = (first.tau_t if alone_t is None else alone_t, None)
        if p_ik is not None:
            variants["P(IK) only"] = (0.0, first.tau_ik if alone_ik is None else alone_ik)
        result["ablation"] = {label: evaluate(data, t, ik).as_dict() for label, (t, ik) in variants.items()}
    return result
