"""P(IK) probes: run a tier's model over labelled questions, cache what it said and its hidden states,
and fit a classifier that predicts "my answer is right".

The cache (one .npz per model and dataset) holds each question's answer, P(T), correctness, token
counts and the last-prompt-token hidden state at every layer asked for (for free-form prompts also
every generated token's log-probability), so re-runs, ablations and layer searches never recompute
a forward pass. A free-form answer is graded by the row's grader; P(T) is then the aggregate named.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.grading import grade
from cascade.router.probe import Probe, probe_from_parts
from cascade.router.prompts import JobKind
from cascade.router.signals import DEFAULT_AGGREGATE, aggregate
from cascade.workers.lab.labelled_data import Labelled


def features_dir() -> Path:
    return Path(os.environ.get("CASCADE_FEATURES_DIR") or Path.home() / ".cache" / "cascade" / "features")


def collect(
    backend, data: Labelled, layers: Sequence[int], *, on_progress: Callable[[int], None] | None = None, chunk: int = 64,
    p_t_aggregate: str = DEFAULT_AGGREGATE,
) -> dict[str, np.ndarray]:
    """What the model said about every question, with hidden states at `layers`; cached on disk.
    Free-form answers also keep `logprobs` (all tokens, flat) and `logprob_counts` (tokens per answer)."""
    template = getattr(backend, "use_chat", None)
    dtype = getattr(backend, "dtype", None)
    key = hashlib.sha256(f"{backend.model_id}|{template}|{dtype}|{data.digest()}".encode()).hexdigest()[:20]
    path = features_dir() / f"{key}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            cached = {k: f[k] for k in f.files}
    missing = [layer for layer in layers if f"hidden_{layer}" not in cached]
    if cached and not missing:
        return with_p_t(cached, p_t_aggregate)
    is_open = data.kind == JobKind.OPEN.value
    out: dict[str, list] = {"answer": [], "p_t": [], "p_t_options": [], "correct": [], "tokens_in": [], "tokens_out": [],
                            "logprobs": [], "logprob_counts": []}
    hidden: dict[int, list] = {layer: [] for layer in layers}
    for start in range(0, len(data.questions), chunk):
        batch = data.questions[start : start + chunk]
        results = backend.generate(batch, layer=list(layers)) if is_open else backend.score(batch, layer=list(layers))
        for offset, (result, gold) in enumerate(zip(results, data.gold[start : start + chunk])):
            if not hasattr(result, "tokens_in"):  # too long for the context: counted as wrong, zero state
                result, state = None, {layer: np.zeros(backend.hidden_size, dtype=np.float32) for layer in layers}
            else:
                state = result.hidden
            if is_open:
                text = "" if result is None else result.text
                tokens = [] if result is None else list(result.token_logprobs)
                out["answer"].append(text)
                out["correct"].append(bool(result is not None and grade(data.graders[start + offset], text, gold)))
                out["logprobs"] += tokens
                out["logprob_counts"].append(len(tokens))
                out["p_t_options"].append(0.0)
            else:
                out["answer"].append("" if result is None else result.answer)
                out["correct"].append(result is not None and result.answer == gold)
                out["p_t_options"].append(0.0 if result is None else result.p_t_options)
                out["p_t"].append(0.0 if result is None else result.p_t)
            out["tokens_in"].append(0 if result is None else result.tokens_in)
            out["tokens_out"].append(0 if result is None else result.tokens_out)
            for layer in layers:
                hidden[layer].append(state[layer])
        if on_progress:
            on_progress(len(batch))
    for key in (("p_t",) if is_open else ("logprobs", "logprob_counts")):
        del out[key]
    arrays = {k: np.asarray(v, dtype=np.float64 if k == "logprobs" else None) for k, v in out.items()}
    arrays.update({f"hidden_{layer}": np.stack(v).astype(np.float32) for layer, v in hidden.items()})
    arrays.update({k: v for k, v in cached.items() if k.startswith("hidden_") and k not in arrays})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".partial"), "wb") as fh:
        np.savez(fh, **arrays)
    path.with_suffix(".partial").replace(path)
    return with_p_t(arrays, p_t_aggregate)


def token_logprobs(features: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Each free-form answer's token log-probabilities, from the flat cache arrays."""
    ends = np.cumsum(features["logprob_counts"])
    return np.split(features["logprobs"], ends[:-1]) if len(ends) else []


def with_p_t(features: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    """Free-form features with `p_t` set to aggregate `how` of each answer's tokens (multiple-choice: as they are)."""
    if "logprob_counts" not in features:
        return features
    return {**features, "p_t": np.array([aggregate(v, how) for v in token_logprobs(features)])}


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, scores))


# Hidden states are wide (896-4096) and labelled questions few (hundreds), so the logistic probe's
# regularisation matters more than anything else: it is chosen per fit by inner cross-validation.
STRENGTHS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def usable_folds(y: np.ndarray, folds: int) -> int:
    """At most `folds`, and no more than either class has members (stratified folds need one each)."""
    y = np.asarray(y, dtype=bool)
    return min(folds, int(y.sum()), int((~y).sum()))


def choose_strength(z: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 3) -> float:
    """The inverse regularisation strength C with the best cross-validated AUROC on (z, y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = usable_folds(y, folds)
    if folds < 2:
        return 0.1
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = {c: cross_val_score(LogisticRegression(max_iter=3000, C=c), z, y, cv=split, scoring="roc_auc").mean() for c in STRENGTHS}
    return max(scores, key=scores.get)


def cross_fitted(x: np.ndarray, y: np.ndarray, kind: str, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold P(IK) for every row: each fold scored by a probe fitted on the other folds, so
    thresholds can be calibrated on the probe's own training questions without its optimism."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=bool)
    if usable_folds(y, folds) < 2:
        raise ValueError("out-of-fold P(IK) needs at least two right and two wrong answers")
    out = np.zeros(len(y))
    for train_idx, test_idx in StratifiedKFold(usable_folds(y, folds), shuffle=True, random_state=seed).split(x, y):
        weights, biases, mean, scale = fit_probe(x[train_idx], y[train_idx], kind, seed)
        out[test_idx] = probe_from_parts(kind, weights, biases, mean, scale, {}).predict(x[test_idx])
    return out


def fit_probe(x: np.ndarray, y: np.ndarray, kind: str, seed: int = 0) -> tuple[list, list, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if kind == "logistic":
        clf = LogisticRegression(max_iter=3000, C=choose_strength(z, y, seed)).fit(z, y)
        return [clf.coef_[0]], [clf.intercept_], scaler.mean_, scaler.scale_
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, early_stopping=True, max_iter=300, random_state=seed).fit(z, y)
        return list(clf.coefs_), list(clf.intercepts_), scaler.mean_, scaler.scale_
    raise ValueError(f"unknown classifier {kind!r}: use logistic or mlp")


def train(
    features: dict[str, np.ndarray],
    layers: Sequence[int],
    *,
    kind: str,
    model: str,
    data_digest: str,
    folds: int = 5,
    seed: int = 0,
) -> tuple[Probe, list[dict[str, Any]]]:
    """Score each candidate layer by out-of-fold AUROC (every question predicted by a probe that
    never saw it), keep the best layer, and fit the probe on all the questions."""
    y = features["correct"].astype(bool)
    folds = usable_folds(y, folds)
    p_t_auroc = auroc(features["p_t"], y)
    table, best = [], None
    for layer in layers:
        x = features[f"hidden_{layer}"]
        score = auroc(cross_fitted(x, y, kind, folds=folds, seed=seed), y) if folds >= 2 else None
        table.append({"layer": layer, "cv_auroc": score, "p_t_auroc": p_t_auroc})
        if best is None or (score or 0) > (best[1] or 0):
            best = (layer, score)
    layer, score = best
    weights, biases, mean, scale = fit_probe(features[f"hidden_{layer}"], y, kind, seed)
    probe = probe_from_parts(kind, weights, biases, mean, scale, {"model": model, "layer": layer})
    probe.metadata.update(
        hidden_size=probe.hidden_size,
        train_hash=data_digest,
        cv_auroc=score,
        p_t_auroc=p_t_auroc,
        folds=folds,
        n_train=int(len(y)),
        accuracy=float(y.mean()),
    )
    return probe, table
