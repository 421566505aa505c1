"""Any OpenAI-compatible chat completions endpoint (OpenAI, `vllm serve`, llama.cpp's server).

One request per question, up to `concurrency` in flight; one answer token with `logprobs` and
`top_logprobs`. P(T) is the probability of the answer letter (its spellings summed), renormalised
over the option letters that appear among the top logprobs. A free-form prompt is one chat
completion with `logprobs`, `max_tokens` and `stop`; each generated token's log-probability comes
back in the response, and `usage` gives the tokens (and so the USD). No hidden states: the tier routes on
P(T) alone. Retries (429, 5xx, timeouts, connection errors) use exponential backoff with jitter and
honour Retry-After; after the last one the question fails with the reason. The API key is read from
the environment variable the tier names and is never logged or stored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cascade.router.prompts import OpenPrompt, Question, render_chat, render_open_chat
from cascade.router.redact import redact, redact_url
from cascade.router.signals import answer_from_letter_probs, letter_probs_from_logprobs
from cascade.workers.backends.base import Backend, BackendError, GeneratedAnswer, ItemFailure, ScoredAnswer

TOP_LOGPROBS = 20  # the most OpenAI accepts


class OpenAIBackend(Backend):
    exposes_hidden_states = False

    def load(self) -> None:
        try:
            import openai
        except ImportError as exc:
            raise BackendError("the openai backend needs the openai package: pip install 'cascade[openai]'") from exc
        key = os.environ.get(self.tier.api_key_env)
        if not key:
            if self.tier.base_url is None:
                raise BackendError(
                    f"tier {self.tier.name}: no API key: set {self.tier.api_key_env} (or api_key_env in the tier)"
                )
            key = "not-needed"  # local OpenAI-compatible servers accept any key
        self._openai = openai
        self.client = openai.OpenAI(
            api_key=key, base_url=self.tier.base_url, timeout=self.tier.timeout_s, max_retries=self.tier.max_retries
        )
        self._pool = ThreadPoolExecutor(max_workers=self.tier.concurrency, thread_name_prefix=f"{self.tier.name}-api")

    def load_tokenizer(self) -> None:
        """No tokenizer to load: token counts come from the server's usage."""

    @property
    def params(self) -> float:
        return float(self.tier.params or 0.0)  # unknown for hosted models: compute cost counts 0

    def count_tokens(self, questions: Sequence[Question]) -> list[int]:
        # An estimate (about four characters a token); the real counts come back in `usage`.
        return [max(1, sum(len(m["content"]) for m in render_chat(q)) // 4) for q in questions]

    def score(self, questions: Sequence[Question], *, layer: int | None = None) -> list[ScoredAnswer | ItemFailure]:
        return list(self._pool.map(self._ask, questions))

    def request(self, question: Question) -> dict[str, Any]:
        """The chat completion request for one question."""
        return {
            "model": self.tier.model,
            "messages": render_chat(question),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }

    def generate(self, prompts: Sequence[OpenPrompt], *, layer: int | None = None) -> list[GeneratedAnswer | ItemFailure]:
        return list(self._pool.map(self._ask_open, prompts))

    def open_request(self, prompt: OpenPrompt) -> dict[str, Any]:
        """The chat completion request for one free-form prompt: greedy, with each token's logprob."""
        request: dict[str, Any] = {
            "model": self.tier.model,
            "messages": render_open_chat(prompt),
            "max_tokens": prompt.max_tokens,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": 1,  # some servers (llama.cpp's) return per-token logprobs only when this is set
        }
        if prompt.stop:
            request["stop"] = list(prompt.stop)
        return request

    def _ask_open(self, prompt: OpenPrompt) -> GeneratedAnswer | ItemFailure:
        response = self._call(self.open_request(prompt))
        return response if isinstance(response, ItemFailure) else parse_generation(response)

    def _ask(self, question: Question) -> ScoredAnswer | ItemFailure:
        response = self._call(self.request(question))
        return response if isinstance(response, ItemFailure) else parse_response(response, question)

    def _call(self, request: dict[str, Any]):
        """The server's response, or an ItemFailure saying why there is none (after the retries)."""
        openai = self._openai
        try:
            return self.client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            return ItemFailure(f"HTTP {exc.status_code} from {self._where()} after {self.tier.max_retries} retries: {_short(exc.message)}")
        except openai.APITimeoutError:
            return ItemFailure(f"timed out after {self.tier.timeout_s:g} s ({self.tier.max_retries} retries) at {self._where()}")
        except openai.APIConnectionError as exc:
            return ItemFailure(f"cannot reach {self._where()} after {self.tier.max_retries} retries: {_short(redact(str(exc.__cause__ or exc)))}")

    def _where(self) -> str:
        return redact_url(self.tier.base_url) if self.tier.base_url else "api.openai.com"


def parse_response(response, question: Question) -> ScoredAnswer | ItemFailure:
    """P(T) and token counts from a chat completion with logprobs."""
    choice = response.choices[0]
    content = choice.logprobs.content if choice.logprobs is not None else None
    if not content:
        return ItemFailure("the server returned no logprobs: it must support logprobs/top_logprobs")
    first = content[0]
    pairs = [(first.token, first.logprob)] + [(t.token, t.logprob) for t in (first.top_logprobs or [])]
    probs = letter_probs_from_logprobs(pairs, question.letters)
    if not any(probs.values()):
        return ItemFailure(f"the model answered {first.token!r} and no option letter is among its top logprobs")
    confidence = answer_from_letter_probs(probs)
    usage = response.usage
    return ScoredAnswer(
        answer=confidence.answer,
        p_t=confidence.p_t,
        p_t_options=confidence.p_t_options,
        tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
        tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def parse_generation(response) -> GeneratedAnswer | ItemFailure:
    """The generated text, each token's log-probability and the token counts of a chat completion."""
    choice = response.choices[0]
    content = choice.logprobs.content if choice.logprobs is not None else None
    text = choice.message.content or ""
    if content is None:
        return ItemFailure("the server returned no logprobs: it must support logprobs on chat completions")
    usage = response.usage
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0) or len(content)
    return GeneratedAnswer(
        text=text.strip(),
        token_logprobs=[float(t.logprob) for t in content if t.logprob is not None],
        tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
        tokens_out=tokens_out,
        finish_reason="length" if choice.finish_reason == "length" else "stop",
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
