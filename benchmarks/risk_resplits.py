"""Do fitted thresholds keep their promise on new questions? Random resplits of the real per-question
logs in ../shared/data/replay: fit the thresholds on a random sample of `--sizes` questions for
PD >= target, replay them on the questions left out, and count how often the held-out PD breaks the
target. The point-estimate fit (today's default) is the baseline; the risk-controlled fit
(`--confidence 0.9`) must break it in at most 10% of the resplits.

    python benchmarks/risk_resplits.py                      # 200 resplits per row
    python benchmarks/risk_resplits.py --resplits 50 --json

A fit that certifies nothing falls back to the last model alone (PD 0, saving 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

DATA = HERE.parent.parent / "shared" / "data" / "replay"
CHAINS = {
    "mmlu_llama.jsonl": [("llama3.1-8b", "llama3.1-70b"), ("llama3.2-3b", "llama3.1-8b")],
    "triviaqa_llama.jsonl": [("llama3.1-8b", "llama3.1-70b"), ("llama3.2-3b", "llama3.1-8b")],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA, help="folder with the replay logs")
    parser.add_argument("--resplits", type=int, default=200)
    parser.add_argument("--sizes", default="100,300,1000", help="fit sizes (questions)")
    parser.add_argument("--targets", default="-1,-2", help="PD targets (percentage points)")
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def held_out(log, chain, taus, params) -> tuple[float, float]:
    """PD and reduced compute of `taus` on `log`; taus None: the last model alone."""
    from cascade.router.replay import replay

    if taus is None:
        return 0.0, 0.0
    result = replay(log, chain, taus, params)
    return result.pd_pp, result.reduced_cc


def main() -> None:
    from cascade.router.replay import KNOWN_PARAMS_B, certify_thresholds, fit_thresholds, load_log

    args = parse_args()
    params = {name: b * 1e9 for name, b in KNOWN_PARAMS_B.items()}
    rows = []
    for file, chains in CHAINS.items():
        log = load_log(args.data_dir / file)
        for chain in chains:
            for size in (int(s) for s in args.sizes.split(",")):
                if size >= len(log):
                    continue
                for target in (float(t) for t in args.targets.split(",")):
                    outcomes = {"point estimate": [], f"confidence {args.confidence:g}": []}
                    rng = np.random.default_rng(args.seed)
                    for _ in range(args.resplits):
                        order = rng.permutation(len(log))
                        fit, held = log.take(order[:size]), log.take(order[size:])
                        point = fit_thresholds(fit, chain, params, target_pd=target)
                        certified, _ = certify_thresholds(fit, chain, params, target_pd=target, confidence=args.confidence)
                        for label, fitted in zip(outcomes, (point, certified)):
                            outcomes[label].append(held_out(held, chain, None if fitted is None else fitted.taus, params))
                    for label, results in outcomes.items():
                        pds = [pd for pd, _ in results]
                        rows.append({
                            "log": file, "chain": " -> ".join(chain), "fit_size": size, "held_out": len(log) - size,
                            "target_pd": target, "method": label,
                            "breaks": round(sum(pd < target for pd in pds) / len(pds), 3),
                            "median_reduced_cc": round(statistics.median(cc for _, cc in results), 2),
                            "median_held_out_pd": round(statistics.median(pds), 2),
                        })
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{args.resplits} random resplits per row; breaks = share of resplits whose held-out PD < target\n")
    print(f"{'log':<22}{'chain':<30}{'fit':>6}{'target':>8}  {'method':<17}{'breaks':>8}{'median red. CC':>16}{'median PD':>11}")
    for r in rows:
        print(f"{r['log']:<22}{r['chain']:<30}{r['fit_size']:>6}{r['target_pd']:>8.1f}  {r['method']:<17}"
              f"{r['breaks']:>8.1%}{r['median_reduced_cc']:>15.2f}%{r['median_held_out_pd']:>+11.2f}")


if __name__ == "__main__":
    main()
