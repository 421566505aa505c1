"""P(IK) probes: a small classifier on a model's hidden state, stored without pickle (.npz + JSON).

A probe file holds numpy arrays and one JSON metadata string: the model it was trained on, the
layer, the hidden size, the kind (logistic or mlp), the training-set hash and held-out AUROC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade.router.errors import ProbeError

FORMAT_VERSION = 1


@dataclass
class Probe:
    """A fitted classifier: standardise, then logistic regression or an MLP with ReLU layers."""

    kind: str
    weights: list[np.ndarray]  # logistic: [coef (d,)]; mlp: one (in, out) matrix per layer
    biases: list[np.ndarray]
    mean: np.ndarray
    scale: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def layer(self) -> int:
        return int(self.metadata["layer"])

    @property
    def hidden_size(self) -> int:
        return int(self.mean.shape[0])

    def predict(self, hidden: np.ndarray) -> np.ndarray:
        """P(IK) for each row of `hidden` (n, d)."""
        x = np.asarray(hidden, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.hidden_size:
            raise ProbeError(f"probe expects hidden size {self.hidden_size}, got {x.shape[1]}")
        x = (x - self.mean) / self.scale
        if self.kind == "logistic":
            z = x @ self.weights[0].reshape(-1) + float(self.biases[0].reshape(-1)[0])
        else:
            for w, b in zip(self.weights[:-1], self.biases[:-1]):
                x = np.maximum(x @ w + b, 0.0)
            z = (x @ self.weights[-1] + self.biases[-1]).reshape(-1)
        return 1.0 / (1.0 + np.exp(-z))

    def check_compatible(self, *, model: str, layer: int | None, hidden_size: int) -> None:
        """Refuse a probe trained on another model, layer or hidden size."""
        trained_on = self.metadata.get("model")
        if trained_on and trained_on != model:
            raise ProbeError(
                f"probe was trained on model {trained_on!r}, but this tier runs {model!r}: "
                "train a probe for this model with `cascade train-pik`"
            )
        if layer is not None and layer != self.layer:
            raise ProbeError(f"probe was trained on layer {self.layer}, but the tier is set to layer {layer}")
        if hidden_size != self.hidden_size:
            raise ProbeError(f"probe expects hidden size {self.hidden_size}, but the model's is {hidden_size}")

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"] = np.asarray(w, dtype=np.float64)
            arrays[f"b{i}"] = np.asarray(b, dtype=np.float64).reshape(-1)
        meta = dict(self.metadata, kind=self.kind, layers=len(self.weights), format=FORMAT_VERSION)
        arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)


def load_probe(path: str | Path) -> Probe:
    """Load a probe file; no pickle is ever read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            n = int(meta["layers"])
            weights = [data[f"w{i}"] for i in range(n)]
            biases = [data[f"b{i}"] for i in range(n)]
            mean, scale = data["mean"], data["scale"]
    except FileNotFoundError:
        raise ProbeError(f"probe file {path} not found: train one with `cascade train-pik`") from None
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise ProbeError(f"{path} is not a cascade probe file ({exc})") from None
    kind = meta.get("kind")
    if kind not in ("logistic", "mlp"):
        raise ProbeError(f"{path}: unknown probe kind {kind!r}")
    if "layer" not in meta:
        raise ProbeError(f"{path}: metadata has no layer")
    return Probe(kind=kind, weights=weights, biases=biases, mean=mean, scale=scale, metadata=meta)


def probe_from_parts(kind: str, weights: list, biases: list, mean, scale, metadata: Mapping[str, Any]) -> Probe:
    """Build a probe from fitted arrays (the training code's exit)."""
    scale = np.where(np.asarray(scale, dtype=np.float64) == 0, 1.0, scale)
    return Probe(
        kind=kind,
        weights=[np.asarray(w, dtype=np.float64) for w in weights],
        biases=[np.asarray(b, dtype=np.float64).reshape(-1) for b in biases],
        mean=np.asarray(mean, dtype=np.float64),
        scale=scale,
        metadata=dict(metadata),
    )
