"""Cost accounting: compute (FLOPs), tokens and USD per call, and reduced compute."""

from __future__ import annotations

from collections.abc import Iterable


def call_flops(params: float, tokens_in: int, tokens_out: int) -> float:
    """Compute cost of one model call: 2 x N_params FLOPs per prompt or generated token."""
    return 2.0 * float(params) * (int(tokens_in) + int(tokens_out))


def call_usd(tokens_in: int, tokens_out: int, *, price_in_usd_per_1m: float, price_out_usd_per_1m: float) -> float:
    """Price of one call from per-million-token input and output prices."""
    return (tokens_in * price_in_usd_per_1m + tokens_out * price_out_usd_per_1m) / 1e6


def reduced_cc(cascade_flops: Iterable[float], largest_alone_flops: Iterable[float]) -> float:
    """1 - sum CC(cascade) / sum CC(largest tier answering every query), as a fraction."""
    spent = float(sum(cascade_flops))
    reference = float(sum(largest_alone_flops))
    if reference <= 0:
        raise ValueError("the largest tier's reference cost must be positive")
    return 1.0 - spent / reference
