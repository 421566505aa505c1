"""In-process vLLM engine: batched greedy one-token answers with logprobs for P(T), and batched
greedy free-form answers (one `generate` per batch) with each generated token's logprob.

vLLM does not expose intermediate hidden states, so a vLLM tier routes on P(T) alone; a tier that
needs P(IK) uses the transformers backend (a config giving a vLLM tier a probe is refused).
`vllm` is an optional extra, imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.router.prompts import OpenPrompt, Question, render, render_chat, render_open, render_open_chat
from cascade.router.signals import answer_from_letter_probs, letter_probs_from_logprobs
from cascade.workers.backends.base import Backend, BackendError, GeneratedAnswer, ItemFailure, ScoredAnswer

TOP_LOGPROBS = 20


class VLLMBackend(Backend):
    exposes_hidden_states = False

    def load(self) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise BackendError("the vllm backend needs vLLM on a GPU machine: pip install 'cascade[vllm]'") from exc
        options = dict(self.tier.options)
        dtype = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[self.tier.dtype]
        try:
            self.llm = LLM(model=self.tier.model, dtype=dtype, **options)
        except Exception as exc:  # vLLM raises many kinds of error for a model it cannot serve
            raise BackendError(f"tier {self.tier.name}: vLLM cannot load {self.tier.model!r}: {exc}") from exc
        self._sampling_params = SamplingParams
        self.sampling = SamplingParams(**sampling_arguments())
        self.tokenizer = self.llm.get_tokenizer()
        self.use_chat = bool(getattr(self.tokenizer, "chat_template", None)) if self.tier.chat_template is None else self.tier.chat_template
        self._params = float(sum(p.numel() for p in _model_parameters(self.llm)) or 0)

    @property
    def params(self) -> float:
        return float(self.tier.params or self._params)

    def prompts(self, questions: Sequence[Question]) -> list[str]:
        """The prompt texts for a batch (chat-templated when the model has a template)."""
        if self.use_chat:
            return [self.tokenizer.apply_chat_template(render_chat(q), add_generation_prompt=True, tokenize=False) for q in questions]
        return [render(q) for q in questions]

    def count_tokens(self, questions: Sequence[Question]) -> list[int]:
        return [len(self.tokenizer.encode(p)) for p in self.prompts(questions)]

    def score(self, questions: Sequence[Question], *, layer: int | None = None) -> list[ScoredAnswer | ItemFailure]:
        outputs = self.llm.generate(self.prompts(questions), self.sampling, use_tqdm=False)
        return [parse_output(output, question) for output, question in zip(outputs, questions)]


    def open_prompts(self, prompts: Sequence[OpenPrompt]) -> list[str]:
        if self.use_chat:
            return [self.tokenizer.apply_chat_template(render_open_chat(p), add_generation_prompt=True, tokenize=False) for p in prompts]
        return [render_open(p) for p in prompts]

    def generate(self, prompts: Sequence[OpenPrompt], *, layer: int | None = None) -> list[GeneratedAnswer | ItemFailure]:
        params = [self._sampling_params(**open_sampling_arguments(p)) for p in prompts]
        outputs = self.llm.generate(self.open_prompts(prompts), params, use_tqdm=False)
        return [parse_generation(output) for output in outputs]


def open_sampling_arguments(prompt: OpenPrompt) -> dict[str, Any]:
    """Greedy, up to the prompt's max_tokens or a stop sequence, with the chosen token's logprob."""
    return {"max_tokens": prompt.max_tokens, "temperature": 0.0, "logprobs": 0, "stop": list(prompt.stop) or None}


def parse_generation(output) -> GeneratedAnswer | ItemFailure:
    """Text and each generated token's logprob from one vLLM RequestOutput."""
    completion = output.outputs[0]
    token_ids = list(completion.token_ids or [])
    if completion.logprobs is None:
        return ItemFailure("vLLM returned no logprobs for the generated tokens")
    logprobs = []
    for token_id, step in zip(token_ids, completion.logprobs):
        entry = step.get(token_id)  # token id -> Logprob; the chosen token is always listed
        if entry is not None:
            logprobs.append(float(entry.logprob))
    return GeneratedAnswer(
        text=(completion.text or "").strip(),
        token_logprobs=logprobs,
        tokens_in=len(output.prompt_token_ids or []),
        tokens_out=len(token_ids),
        finish_reason="length" if completion.finish_reason == "length" else "stop",
    )


def sampling_arguments() -> dict[str, Any]:
    """Greedy, one token, with the top logprobs of that token."""
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS}


def parse_output(output, question: Question) -> ScoredAnswer | ItemFailure:
    """Answer and P(T) from one vLLM RequestOutput (its first generated token's logprobs)."""
    completion = output.outputs[0]
    if not completion.logprobs:
        return ItemFailure("vLLM returned no logprobs for the answer token")
    first = completion.logprobs[0]  # token id -> Logprob(logprob, rank, decoded_token)
    pairs = [(entry.decoded_token or "", entry.logprob) for entry in first.values()]
    probs = letter_probs_from_logprobs(pairs, question.letters)
    if not any(probs.values()):
        return ItemFailure(f"the model answered {completion.text!r} and no option letter is among its top logprobs")
    confidence = answer_from_letter_probs(probs)
    return ScoredAnswer(
        answer=confidence.answer,
        p_t=confidence.p_t,
        p_t_options=confidence.p_t_options,
        tokens_in=len(output.prompt_token_ids or []),
        tokens_out=len(completion.token_ids or []),
    )


def _model_parameters(llm) -> list:
    try:  # the engine's model lives in another process in recent vLLM versions; count where reachable
        return list(llm.llm_engine.model_executor.driver_worker.model_runner.model.parameters())
    except Exception:  # noqa: BLE001
        return []
