"""Scoring throughput: a tier worker through the whole system (Celery task, database writes) against
the same loaded model's bare batched forward pass in the same process, at batch 1 and at the tuned
batch; fixed-length prompts and prompts with the lengths of real MMLU questions.

    python benchmarks/scoring.py                       # CPU, tiny random-weight model
    python benchmarks/scoring.py --json
    python benchmarks/scoring.py --device cuda         # Llama-3.1-8B shape, random weights, bf16
    python benchmarks/scoring.py --device cuda --compile

"Through the system" runs a batch run (`cascade batch submit`'s path) into a Celery worker in this
process, on the in-memory broker and SQLite unless --broker-url/--database-url name real ones; the
model is loaded once and shared, so the ratio isolates what the system adds around the forward pass.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model", help="default: tiny:bench (26M) on CPU, tiny:llama3-8b-shape on CUDA")
    parser.add_argument("--batch", type=int, help="the tuned batch size (default 16 on CPU, 128 on CUDA)")
    parser.add_argument("--queries", type=int, help="questions per measurement (default 128 CPU, 2048 CUDA)")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="length of the fixed-length prompts")
    parser.add_argument("--mmlu-dir", help="a folder of MMLU CSVs to draw real lengths from (default: the shipped sample)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument("--broker-url", help="default: in-memory broker")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def mmlu_prompts(mmlu_dir: str | None) -> list[tuple[str, list[str]]]:
    if mmlu_dir is None:
        from cascade.workers.lab.samples import sample_questions

        return [(r["question"], r["choices"]) for r in sample_questions()]
    import csv

    rows = []
    for path in sorted(Path(mmlu_dir).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            rows += [(r[0], r[1:5]) for r in csv.reader(fh) if len(r) == 6]
    return rows


def build_questions(backend, n: int, *, fixed_tokens: int | None, pool, rng) -> list:
    """Questions whose prompts have `fixed_tokens` tokens each, or the lengths of real MMLU questions."""
    from cascade.router.prompts import make_question

    out = []
    for i in range(n):
        if fixed_tokens is None:
            text, choices = pool[rng.randrange(len(pool))]
            out.append(make_question(text, choices))
            continue
        base = make_question(f"Question {i}: which option is correct?", ["alpha", "beta", "gamma", "delta"])
        have = backend.count_tokens([base])[0]
        filler = " ".join(rng.choice(["data", "model", "query", "token", "value"]) for _ in range(max(0, fixed_tokens - have)))
        question = make_question(f"Question {i}: {filler} which option is correct?", list(base.choices))
        # Trim or pad a word at a time until the prompt has exactly the wanted length (or close).
        for _ in range(64):
            count = backend.count_tokens([question])[0]
            if count == fixed_tokens:
                break
            words = question.text.split(" ")
            words = words[:-2] + words[-1:] if count > fixed_tokens else words[:1] + ["data"] + words[1:]
            question = make_question(" ".join(words), list(question.choices))
        out.append(question)
    return out


def padding_of_random_batches(lengths: list[int], batch: int, rng) -> float:
    """The padding share if the same prompts were batched in arrival order, unsorted."""
    order = list(lengths)
    rng.shuffle(order)
    slots = sum(max(order[i : i + batch]) * len(order[i : i + batch]) for i in range(0, len(order), batch))
    return 1 - sum(order) / slots


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_system(settings, rows: list[dict], batch: int, workdir: Path) -> float:
    """Jobs/s of a batch run of `rows` (the `cascade batch submit` path) through a worker in this process."""
    import uuid as uuidlib
    from contextlib import ExitStack

    from sqlalchemy import func, select

    from cascade.storage.engine import session_scope
    from cascade.storage.migrate import upgrade
    from cascade.storage.models import Job
    from cascade.workers.batch.runs import status, submit_file
    from cascade.workers.client import Cascade
    from cascade.workers.runtime.app import create_app

    data = workdir / f"{uuidlib.uuid4().hex}.jsonl"
    with open(data, "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            fh.write(json.dumps({"id": i, **row}) + "\n")
    with ExitStack() as stack:
        upgrade(settings.database_url)
        app = create_app(settings)
        from celery.contrib.testing.worker import start_worker

        # The worker runs in this process so that it shares the loaded model with the bare measurement.
        stack.enter_context(
            start_worker(app, pool="solo", queues=settings.config.queues, perform_ping_check=False, loglevel="ERROR")
        )
        client = Cascade(settings=settings, app=app)
        started = datetime.now(UTC)
        summary = submit_file(client, data, name=f"scoring-{uuidlib.uuid4().hex[:8]}", chunk_size=batch)
        # Poll slowly (polling steals CPU from the forward pass); the end time comes from the rows.
        while status(client, summary["name"])["status"] != "completed":
            time.sleep(0.25)
        with session_scope(settings.database_url) as session:
            finished = session.scalar(select(func.max(Job.finished_at)).where(Job.batch_id == uuidlib.UUID(summary["id"])))
        if finished.tzinfo is None:  # SQLite returns naive UTC
            finished = finished.replace(tzinfo=UTC)
        return len(rows) / (finished - started).total_seconds()


def main() -> None:
    args = parse_args()
    on_gpu = args.device.startswith("cuda")
    model = args.model or ("tiny:llama3-8b-shape" if on_gpu else "tiny:bench")
    batch = args.batch or (128 if on_gpu else 16)
    n = args.queries or (2048 if on_gpu else 128)
    rng = random.Random(args.seed)

    from cascade.router.config import parse_config
    from cascade.workers.runtime.scoring import scorer_for
    from cascade.workers.runtime.settings import Settings

    tier = {
        "name": "bench",
        "backend": "transformers",
        "model": model,
        "device": args.device,
        "max_batch": batch,
        "max_wait_ms": 0,
        "compile": args.compile,
    }
    config = parse_config({"tiers": [tier]})
    load_s = timed(lambda: scorer_for(config, "bench"))
    backend = scorer_for(config, "bench").backend
    pool = mmlu_prompts(args.mmlu_dir)
    workloads = {
        f"fixed {args.prompt_tokens} tokens": build_questions(backend, n, fixed_tokens=args.prompt_tokens, pool=pool, rng=rng),
        "MMLU lengths": build_questions(backend, n, fixed_tokens=None, pool=pool, rng=rng),
    }
    tmp = tempfile.TemporaryDirectory(prefix="cascade-scoring-")
    settings = Settings(
        config=config,
        broker_url=args.broker_url or "memory://localhost/",
        database_url=args.database_url or f"sqlite:///{tmp.name}/bench.sqlite",
    )
    results = {}
    for label, questions in workloads.items():
        backend.score(questions[:batch])  # warm-up (and compilation)
        sync(args.device)
        ones = questions[:256]  # batch 1 is slow: at most 256 of the same questions
        batch1_s = timed(lambda ones=ones: [backend.score([q]) for q in ones] and sync(args.device))
        backend.padding.reset()
        bare_s = timed(lambda questions=questions: backend.score(questions) and sync(args.device))
        padding_sorted = backend.padding.share
        backend.padding.reset()
        random_pad = padding_of_random_batches(backend.count_tokens(questions), batch, rng)
        rows = [{"question": q.text, "choices": list(q.choices)} for q in questions]
        system_qps = run_system(settings, rows, batch, Path(tmp.name))
        token_counts = backend.count_tokens(questions)
        results[label] = {
            "batch1_qps": round(len(ones) / batch1_s, 2),
            "bare_qps": round(n / bare_s, 2),
            "system_qps": round(system_qps, 2),
            "system_vs_bare": round(system_qps / (n / bare_s), 3),
            "padding_share_sorted": round(padding_sorted, 4),
            "padding_share_random_batches": round(random_pad, 4),
            "median_prompt_tokens": statistics.median(token_counts),
            "max_prompt_tokens": max(token_counts),
        }
    tmp.cleanup()
    headline = results[f"fixed {args.prompt_tokens} tokens"]
    summary = {
        "device": args.device,
        "model": model,
        "params": backend.params,
        "batch": batch,
        "queries": n,
        "compile": args.compile,
        "load_s": round(load_s, 2),
        "system_qps": headline["system_qps"],
        "bare_qps": headline["bare_qps"],
        "batch1_qps": headline["batch1_qps"],
        "system_vs_bare": headline["system_vs_bare"],
        "workloads": results,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{args.device}, {model} ({backend.params / 1e6:.1f}M params), batch {batch}, {n} queries, compile={args.compile}")
    print(f"{'workload':<22}{'batch 1 q/s':>12}{'bare q/s':>10}{'system q/s':>12}{'system/bare':>12}{'pad sorted':>11}{'pad random':>11}")
    for label, r in results.items():
        print(
            f"{label:<22}{r['batch1_qps']:>12.1f}{r['bare_qps']:>10.1f}{r['system_qps']:>12.1f}"
            f"{r['system_vs_bare']:>12.2f}{r['padding_share_sorted']:>11.1%}{r['padding_share_random_batches']:>11.1%}"
        )


if __name__ == "__main__":
    main()
