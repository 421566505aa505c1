"""Model backends, pluggable by name. Each is imported only when a tier uses it."""

from __future__ import annotations

import importlib

from router.config import Tier
from workers.backends.base import Backend, BackendError, ItemFailure, ScoredAnswer

BACKENDS: dict[str, str] = {
    "transformers": "workers.backends.transformers_backend:TransformersBackend",
    "null": "workers.backends.null:NullBackend",
    "openai": "workers.backends.openai_backend:OpenAIBackend",
    "vllm": "workers.backends.vllm_backend:VLLMBackend",
}


def known_backends() -> list[str]:
    return sorted(BACKENDS)


def create_backend(tier: Tier) -> Backend:
    """An unloaded backend for `tier`; raises BackendError for an unknown backend name."""
    target = BACKENDS.get(tier.backend)
    if target is None:
        raise BackendError(
            f"tiers[{tier.index}] ({tier.name}).backend: unknown backend {tier.backend!r}; "
            f"choose one of {', '.join(known_backends())}"
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"backend {tier.backend!r} needs packages that are not installed ({exc.name}): "
            "pip install 'cascade[models]'"
        ) from exc
    return getattr(module, class_name)(tier)


__all__ = ["BACKENDS", "Backend", "BackendError", "ItemFailure", "ScoredAnswer", "create_backend", "known_backends"]
