"""Confidence signals: P(T) from the answer token's probabilities, and aggregates of a generated
answer's token probabilities into one P(T)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# How a generated answer's per-token probabilities become one P(T) (Gupta et al., ICLR 2024):
# mean: length-normalised sequence probability (geometric mean); product: sequence probability;
# min: the least sure token; qNN: the NN-th percentile of the token probabilities; first: the first token.
AGGREGATES = ("mean", "product", "min", "q10", "q25", "first")
DEFAULT_AGGREGATE = "mean"
_QUANTILE = re.compile(r"^q(\d{1,2})$")


@dataclass(frozen=True)
class TokenConfidence:
    """The chosen option letter and how sure the model was of it."""

    answer: str
    p_t: float  # full-vocabulary softmax probability of the chosen letter
    p_t_options: float  # the same, renormalised over the option letters only


def answer_from_letter_probs(letter_probs: Mapping[str, float]) -> TokenConfidence:
    """Pick the most probable option letter.

    `letter_probs` maps each option letter to its full-vocabulary probability (a letter spelled by
    several tokens, "A" and " A", gets the sum of them). Ties go to the earlier letter.
    """
    if not letter_probs:
        raise ValueError("no option letters to choose from")
    answer = max(letter_probs, key=lambda letter: (letter_probs[letter], -ord(letter[0])))
    p_t = float(letter_probs[answer])
    total = float(sum(letter_probs.values()))
    p_options = p_t / total if total > 0 else 1.0 / len(letter_probs)
    return TokenConfidence(answer=answer, p_t=_clip(p_t), p_t_options=_clip(p_options))


def letter_probs_from_logprobs(top: Iterable[tuple[str, float]], letters: str) -> dict[str, float]:
    """Probabilities of each option letter from (token text, logprob) pairs, such as an API's
    top_logprobs: spellings of a letter (" A", "A", "A.") are summed; letters not seen get 0."""
    probs = {letter: 0.0 for letter in letters}
    seen: set[str] = set()
    for token, logprob in top:
        if token in seen:  # the same token listed twice (the sampled token and its top list)
            continue
        seen.add(token)
        key = token.strip().rstrip(".):")
        if key in probs and logprob is not None:
            probs[key] += math.exp(logprob)
    return probs


def is_aggregate(name: str) -> bool:
    """A known aggregate name: one of AGGREGATES, or qNN for a percentile from 1 to 50."""
    match = _QUANTILE.match(name)
    return name in AGGREGATES or (match is not None and 1 <= int(match.group(1)) <= 50)


def aggregate(logprobs: Sequence[float], how: str = DEFAULT_AGGREGATE) -> float:
    """One P(T) in [0, 1] from the natural-log probabilities of the generated tokens. No tokens: 0."""
    values = [float(v) for v in logprobs if v is not None and not math.isnan(v)]
    if not values:
        return 0.0
    if how == "mean":
        return _clip(math.exp(sum(values) / len(values)))
    if how == "product":
        return _clip(math.exp(sum(values)))
    if how == "min":
        return _clip(math.exp(min(values)))
    if how == "first":
        return _clip(math.exp(values[0]))
    match = _QUANTILE.match(how)
    if match is None or not is_aggregate(how):
        raise ValueError(f"unknown P(T) aggregate {how!r}: use one of {', '.join(AGGREGATES)} or qNN (1-50)")
    ordered = sorted(values)
    position = (len(ordered) - 1) * int(match.group(1)) / 100.0
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return _clip(math.exp(value))


def _clip(p: float) -> float:
    return min(1.0, max(0.0, p))
