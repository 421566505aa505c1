"""GPU check for the transformers and vLLM backends, in one run (needs a CUDA device; vLLM optional).

    python benchmarks/gpu_check.py                 # 8B-shaped random weights, bf16
    python benchmarks/gpu_check.py --json

1. transformers backend: the Llama-3.1-8B-shaped model scores a batch; batched answers and P(T)
   match one-at-a-time answers; queries/s at batch 1 and at the tuned batch; with --compile too.
2. vLLM backend: the same weights saved to a local folder are served by an in-process vllm.LLM;
   answers and P(T) are compared with the transformers backend on the same questions; queries/s.
No model hub is needed: the weights are random and built from the config on the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny:llama3-8b-shape")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--queries", type=int, default=512)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def questions(n: int):
    from cascade.router.prompts import make_question

    return [
        make_question(f"Question {i}: " + "which of these options is the correct one " * (1 + i % 6), ["alpha", "beta", "gamma", "delta"])
        for i in range(n)
    ]


def qps(fn, n: int) -> float:
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return n / (time.perf_counter() - started)


def check_transformers(args, qs, compile_: bool) -> tuple[dict, object]:
    from cascade.router.config import Tier
    from cascade.workers.backends import ScoredAnswer, create_backend

    backend = create_backend(
        Tier(name="gpu", backend="transformers", model=args.model, device="cuda", dtype="bfloat16", max_batch=args.batch, compile=compile_)
    )
    started = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - started
    backend.score(qs[: args.batch], layer=backend.default_layer())  # warm-up / compile
    batched = backend.score(qs[:32], layer=backend.default_layer())
    single = [backend.score([q], layer=backend.default_layer())[0] for q in qs[:32]]
    agree = sum(a.answer == b.answer for a, b in zip(batched, single)) / 32
    max_dp = max(abs(a.p_t - b.p_t) for a, b in zip(batched, single))
    result = {
        "compile": compile_,
        "params": backend.params,
        "load_s": round(load_s, 1),
        "all_scored": all(isinstance(r, ScoredAnswer) for r in batched),
        "batched_vs_single_answer_agreement": agree,
        "batched_vs_single_max_p_t_diff": max_dp,
        "batch1_qps": round(qps(lambda: [backend.score([q]) for q in qs[:64]], 64), 1),
        "batched_qps": round(qps(lambda: backend.score(qs), len(qs)), 1),
        "padding_share": round(backend.padding.share, 4),
    }
    return result, backend


def check_vllm(args, qs, reference) -> dict:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return {"skipped": "vllm is not installed"}
    from cascade.router.config import Tier
    from cascade.workers.backends import create_backend

    with tempfile.TemporaryDirectory(prefix="cascade-gpu-check-") as folder:
        reference.model.save_pretrained(folder)
        reference.tokenizer.save_pretrained(folder)
        backend = create_backend(Tier(name="vllm", backend="vllm", model=folder, dtype="bfloat16", chat_template=False, options={"gpu_memory_utilization": 0.45}))
        started = time.perf_counter()
        backend.load()
        load_s = time.perf_counter() - started
        ours = backend.score(qs[:64])
        theirs = reference.score(qs[:64])
        agree = sum(getattr(a, "answer", None) == getattr(b, "answer", None) for a, b in zip(ours, theirs)) / 64
        return {
            "load_s": round(load_s, 1),
            "answer_agreement_with_transformers": agree,
            "qps": round(qps(lambda: backend.score(qs), len(qs)), 1),
        }


def main() -> None:
    args = parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    qs = questions(args.queries)
    report = {"device": torch.cuda.get_device_name(0), "model": args.model, "batch": args.batch, "queries": args.queries}
    eager, backend = check_transformers(args, qs, compile_=False)
    report["transformers"] = eager
    if not args.skip_vllm:
        report["vllm"] = check_vllm(args, qs, backend)
    if args.compile:
        del backend
        torch.cuda.empty_cache()
        report["transformers_compiled"] = check_transformers(args, qs, compile_=True)[0]
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
