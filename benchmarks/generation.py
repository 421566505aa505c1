"""Free-form generation throughput: free-form jobs through the whole system (batch run, Celery task,
database writes) against the same loaded model's bare batched generate loop in the same process.

    python benchmarks/generation.py                    # CPU, tiny random-weight model, 32 new tokens
    python benchmarks/generation.py --json
    python benchmarks/generation.py --device cuda      # Llama-3.1-8B shape, random weights, bf16

Every answer runs to exactly --new-tokens tokens (no stop sequences, and random weights rarely end
the text), so both sides generate the same number of tokens. The model is loaded once and shared,
so the ratio isolates what the system adds around generation.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scoring import run_system, sync, timed  # noqa: E402

WORDS = ("data", "model", "query", "token", "value", "river", "city", "author", "planet", "number")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model", help="default: tiny:bench (26M) on CPU, tiny:llama3-8b-shape on CUDA")
    parser.add_argument("--batch", type=int, help="jobs per generate call (default 16 on CPU, 128 on CUDA)")
    parser.add_argument("--jobs", type=int, help="free-form jobs per measurement (default 64 CPU, 1024 CUDA)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per answer")
    parser.add_argument("--prompt-words", type=int, default=24, help="words per prompt (about 1.3 tokens each on real tokenizers)")
    parser.add_argument("--broker-url", help="default: in-memory broker")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    on_gpu = args.device.startswith("cuda")
    model = args.model or ("tiny:llama3-8b-shape" if on_gpu else "tiny:bench")
    batch = args.batch or (128 if on_gpu else 16)
    n = args.jobs or (1024 if on_gpu else 64)
    rng = random.Random(args.seed)

    from cascade.router.config import parse_config
    from cascade.router.prompts import OpenPrompt
    from cascade.workers.runtime.scoring import scorer_for
    from cascade.workers.runtime.settings import Settings

    tier = {"name": "bench", "backend": "transformers", "model": model, "device": args.device, "max_batch": batch,
            "max_wait_ms": 0, "max_tokens": args.new_tokens, "max_tokens_limit": max(512, args.new_tokens)}
    config = parse_config({"tiers": [tier]})
    load_s = timed(lambda: scorer_for(config, "bench"))
    backend = scorer_for(config, "bench").backend
    texts = [f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(args.prompt_words)) + "?" for i in range(n)]
    prompts = [OpenPrompt(t, max_tokens=args.new_tokens) for t in texts]
    backend.generate(prompts[:batch])  # warm-up
    sync(args.device)
    answers = []
    bare_s = timed(lambda: answers.extend(backend.generate(prompts)) or sync(args.device))
    generated = sum(a.tokens_out for a in answers)
    tmp = tempfile.TemporaryDirectory(prefix="cascade-generation-")
    settings = Settings(
        config=config,
        broker_url=args.broker_url or "memory://localhost/",
        database_url=args.database_url or f"sqlite:///{tmp.name}/bench.sqlite",
    )
    system_jps = run_system(settings, [{"prompt": t, "max_tokens": args.new_tokens} for t in texts], batch, Path(tmp.name))
    tmp.cleanup()
    bare_jps = n / bare_s
    tokens_per_job = generated / n
    summary = {
        "device": args.device,
        "model": model,
        "params": backend.params,
        "batch": batch,
        "jobs": n,
        "new_tokens": args.new_tokens,
        "generated_tokens_per_job": round(tokens_per_job, 2),
        "load_s": round(load_s, 2),
        "bare_jobs_per_s": round(bare_jps, 2),
        "bare_tokens_per_s": round(bare_jps * tokens_per_job, 1),
        "system_jobs_per_s": round(system_jps, 2),
        "system_tokens_per_s": round(system_jps * tokens_per_job, 1),
        "system_vs_bare": round(system_jps / bare_jps, 3),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{args.device}, {model} ({backend.params / 1e6:.1f}M params), batch {batch}, {n} jobs, {args.new_tokens} new tokens each")
    print(f"{'':<8}{'jobs/s':>10}{'tokens/s':>11}")
    print(f"{'bare':<8}{summary['bare_jobs_per_s']:>10.2f}{summary['bare_tokens_per_s']:>11.1f}")
    print(f"{'system':<8}{summary['system_jobs_per_s']:>10.2f}{summary['system_tokens_per_s']:>11.1f}")
    print(f"system/bare {summary['system_vs_bare']:.2f}")


if __name__ == "__main__":
    main()
