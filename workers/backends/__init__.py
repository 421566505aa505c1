"""Model backends, pluggable by name. Each is imported only when a tier uses it, and each declares
what it can do (`Backend.exposes_hidden_states`); `check_tier` is the one place tiers are checked
against the backends that exist."""

from __future__ import annotations

import importlib

from cascade.router.config import CascadeConfig, Tier
from cascade.router.errors import ConfigError
from cascade.workers.backends.base import Backend, BackendError, GeneratedAnswer, ItemFailure, ScoredAnswer

BACKENDS: dict[str, str] = {
    "transformers": "cascade.workers.backends.transformers_backend:TransformersBackend",
    "null": "cascade.workers.backends.null:NullBackend",
    "openai": "cascade.workers.backends.openai_backend:OpenAIBackend",
    "vllm": "cascade.workers.backends.vllm_backend:VLLMBackend",
}


def known_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_class(tier: Tier) -> type[Backend]:
    """The class serving `tier`; ConfigError for an unknown name, BackendError when its module cannot
    be imported. Backend modules import their heavy packages only when a model loads."""
    target = BACKENDS.get(tier.backend)
    if target is None:
        raise ConfigError(
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
    return getattr(module, class_name)


def check_tier(tier: Tier) -> None:
    """Refuse a tier its backend cannot serve: an unknown backend, a probe on one without hidden states,
    or one without text output (free-form jobs go through every tier)."""
    cls = backend_class(tier)
    for key in ("probe", "open_probe"):
        if getattr(tier, key) is not None and not cls.exposes_hidden_states:
            raise ConfigError(
                f"tiers[{tier.index}] ({tier.name}).{key}: the {tier.backend} backend exposes no hidden states, so it "
                f"cannot compute P(IK); remove `{key}` (the tier then routes on P(T) alone) or serve this tier with "
                "the transformers backend"
            )
    if not cls.generates_text:
        raise ConfigError(
            f"tiers[{tier.index}] ({tier.name}).backend: the {tier.backend} backend has no text output, so it cannot "
            "answer free-form jobs, and every tier must answer both kinds; serve this tier with transformers, vllm or openai"
        )


def check_config(config: CascadeConfig) -> CascadeConfig:
    for tier in config.tiers:
        check_tier(tier)
    return config


def create_backend(tier: Tier) -> Backend:
    """An unloaded backend for a checked `tier`."""
    check_tier(tier)
    return backend_class(tier)(tier)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "GeneratedAnswer",
    "ItemFailure",
    "ScoredAnswer",
    "backend_class",
    "check_config",
    "check_tier",
    "create_backend",
    "known_backends",
]
