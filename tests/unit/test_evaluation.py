"""`cascade eval` on the embedded cascade, and the benchmark readers."""

import csv
import json
import os
import subprocess
import sys

import pytest

from cascade.workers.lab.labelled_data import gpqa_rows, mmlu_rows
from cascade.workers.lab.samples import sample_questions
from tests.conftest import shared_file


@pytest.fixture
def mmlu_dir(tmp_path):
    for i, row in enumerate(sample_questions()):  # one question per subject
        path = tmp_path / "val" / f"subject{i:02d}_val.csv"
        path.parent.mkdir(exist_ok=True)
        with open(path, "a", newline="") as fh:
            csv.writer(fh).writerow([row["question"], *row["choices"], row["answer"]])
    return tmp_path


def test_mmlu_samples_are_seeded_and_stratified(mmlu_dir):
    a, b = mmlu_rows(mmlu_dir, "val", 20, seed=1), mmlu_rows(mmlu_dir, "val", 20, seed=1)
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 20
    assert len({r["subject"] for r in a}) == 20  # one question per subject here
    assert [r["id"] for r in mmlu_rows(mmlu_dir, "val", 20, seed=2)] != [r["id"] for r in a]
    with pytest.raises(ValueError, match="no MMLU split folder"):
        mmlu_rows(mmlu_dir, "test", 5, seed=0)


def test_gpqa_diamond_is_read_in_memory_with_shuffled_options():
    rows = gpqa_rows(shared_file("data", "gpqa", "dataset.zip"), "deserted-untie-orchid", None, seed=0)
    assert len(rows) == 198
    assert {r["answer"] for r in rows} == set("ABCD")  # the correct option is not always first
    assert all(len(r["choices"]) == 4 for r in rows)


@pytest.mark.slow
def test_eval_reports_accuracy_pd_auroc_and_ablation(mmlu_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
    result = subprocess.run(
        [sys.executable, "-m", "cascade.workers", "--config", "tiny", "eval", "mmlu", "--split", "val", "--sample", "24",
         "--data-dir", str(mmlu_dir), "--ablate", "--ablate-tau-t", "0", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 24
    assert report["pd_pp"] == pytest.approx(report["accuracy"] - report["largest_accuracy"], abs=0.01)
    assert report["alone_accuracy"]["large"] == pytest.approx(report["largest_accuracy"], abs=0.01)
    assert sum(report["answered"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(report["ablation"]) == {"P(T) and P(IK)", "P(T) only"}  # the demo tiers have no probe
    same = report["ablation"]["P(T) and P(IK)"]  # the live thresholds, replayed
    assert same["accuracy"] == pytest.approx(report["accuracy"], abs=0.01)
    never = report["ablation"]["P(T) only"]  # --ablate-tau-t 0: the small tier keeps every answer
    assert never["escalation_rate"] == 0.0 and never["accuracy"] == pytest.approx(report["alone_accuracy"]["small"], abs=0.01)
    assert 0.0 <= report["auroc"]["small"]["p_t"] <= 1.0


def test_a_stratified_sample_has_exactly_the_size_asked_for():
    from cascade.workers.lab.sampling import stratified

    groups = {f"g{i}": [{"id": f"g{i}-{j}"} for j in range(7)] for i in range(9)}  # 63 rows, 9 groups of 7
    for size in (10, 20, 31, 50):
        rows = stratified(groups, size, seed=1)
        assert len(rows) == size and len({r["id"] for r in rows}) == size
        assert {r["id"].split("-")[0] for r in rows} == set(groups) or size < 9
