"""Confidence signals: P(T) from the answer token's probabilities, aggregation for long answers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


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


def _clip(p: float) -> float:
    return min(1.0, max(0.0, p))
