"""A backend with no model: instant answers and synthetic confidences, for load tests and demos of the plumbing.

P(T) is a stable pseudo-random number per (question, tier), uniform on [0, 1), so a tier with
tau_t = 0.3 escalates about 30% of its queries. Free-form prompts get synthetic text (a few words
from a fixed list, up to max_tokens) whose every token has that probability, so each aggregate of
them is the same uniform number. Options: `params` (default 1e9), `delay_ms` (per
batch, to imitate a slow model), `hidden_size` (default 8, synthetic hidden states for probes).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence

import numpy as np

from cascade.router.prompts import OpenPrompt, Question, render
from cascade.workers.backends.base import Backend, GeneratedAnswer, ItemFailure, ScoredAnswer

WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kestrel", "lumen")


def _unit(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class NullBackend(Backend):
    def load(self) -> None:
        self._delay_s = float(self.tier.options.get("delay_ms", 0)) / 1000.0
        self._hidden = int(self.tier.options.get("hidden_size", 8))

    @property
    def params(self) -> float:
        return float(self.tier.params or 1e9)

    @property
    def hidden_size(self) -> int:
        return self._hidden

    @property
    def num_layers(self) -> int:
        return 4

    def count_tokens(self, questions: Sequence[Question]) -> list[int]:
        return [max(1, len(render(q)) // 4) for q in questions]

    def score(self, questions: Sequence[Question], *, layer: int | None = None) -> list[ScoredAnswer | ItemFailure]:
        if self._delay_s:
            time.sleep(self._delay_s)
        out: list[ScoredAnswer | ItemFailure] = []
        for question, tokens in zip(questions, self.count_tokens(questions)):
            key = f"{self.tier.name}\x00{render(question)}"
            p_t = _unit(key)
            answer = question.letters[int(_unit(key + "\x01") * len(question.letters))]
            spread = 1.0 / len(question.letters)
            hidden = None
            if layer is not None:
                rng = np.random.default_rng(int(p_t * 2**32))
                hidden = rng.standard_normal(self._hidden).astype(np.float32)
            out.append(
                ScoredAnswer(
                    answer=answer,
                    p_t=p_t,
                    p_t_options=max(p_t, spread),
                    tokens_in=tokens,
                    tokens_out=1,
                    hidden=hidden,
                )
            )
        return out

    def generate(self, prompts: Sequence[OpenPrompt], *, layer: int | None = None) -> list[GeneratedAnswer | ItemFailure]:
        if self._delay_s:
            time.sleep(self._delay_s)
        out: list[GeneratedAnswer | ItemFailure] = []
        for prompt in prompts:
            key = f"{self.tier.name}\x00{prompt.text}"
            p_t = _unit(key)
            count = min(prompt.max_tokens, 1 + int(_unit(key + "\x01") * 6))
            words = [WORDS[int(_unit(f"{key}\x02{i}") * len(WORDS))] for i in range(count)]
            hidden = None
            if layer is not None:
                hidden = np.random.default_rng(int(p_t * 2**32)).standard_normal(self._hidden).astype(np.float32)
            out.append(
                GeneratedAnswer(
                    text=" ".join(words),
                    token_logprobs=[math.log(max(p_t, 1e-9))] * count,
                    tokens_in=max(1, len(prompt.text) // 4),
                    tokens_out=count,
                    finish_reason="length" if count == prompt.max_tokens else "stop",
                    hidden=hidden,
                )
            )
        return out
