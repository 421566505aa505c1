"""Local models through `transformers`: one forward pass per batch gives the answer, P(T) and the
probe layer's hidden state (`logits_to_keep=1` and a forward hook, never all hidden states).
Free-form prompts: one prefill per batch (the same hook), then greedy decoding on the KV cache, one
token per row per step, keeping each token's log-probability; the prompt is never recomputed.

Model sources: `tiny:NAME` (random weights built from a config), a local directory, a `.gguf` file
(dequantised by transformers' GGUF loader), or a Hugging Face id already in the offline cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cascade.router.prompts import OpenPrompt, Question, render, render_chat, render_open, render_open_chat
from cascade.router.signals import answer_from_letter_probs
from cascade.workers.backends import packaged, tiny
from cascade.workers.backends.base import Backend, BackendError, GeneratedAnswer, ItemFailure, ScoredAnswer
from cascade.workers.backends.gguf import gguf_arguments

_LAYER_PATHS = ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


class TransformersBackend(Backend):
    def load(self) -> None:
        import torch

        self._torch = torch
        self._lock = threading.Lock()
        self.device = self._pick_device()
        self.dtype = self._pick_dtype()
        self.load_tokenizer()
        self.model = self._load_model()
        self.model.to(device=self.device, dtype=self.dtype)
        self.model.eval()
        self.layers = _decoder_layers(self.model)
        self.context_tokens = int(
            getattr(self.model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        )
        self._params = float(sum(p.numel() for p in self.model.parameters()))
        self._letter_ids = {letter: self._letter_token_ids(letter) for letter in "ABCDEFGHIJ"}
        self._letter_index = None
        self._eos_ids = _eos_token_ids(self.model, self.tokenizer)
        self._cache_argument = _cache_argument(self.model)
        self.compiled = self.tier.compile
        if self.compiled:
            # Fixed bucket shapes (see bucket_width) keep recompilation to a handful of graphs per process.
            self._forward_fn = torch.compile(self.model.forward, dynamic=False)
        else:
            self._forward_fn = self.model.forward
        self.padding = PaddingMeter()

    # -- loading ---------------------------------------------------------------------------------

    def _pick_device(self):
        torch = self._torch
        wanted = self.tier.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"tier {self.tier.name}: device {wanted!r} asked for, but no CUDA device is visible")
        return torch.device(wanted)

    def _pick_dtype(self):
        torch = self._torch
        name = self.tier.dtype
        if name == "auto":
            name = "bfloat16" if self.device.type == "cuda" else "float32"
        return getattr(torch, name)

    def load_tokenizer(self) -> None:
        """Only the tokenizer: enough to count tokens without loading weights."""
        self.tokenizer = self._from_source(lambda where, kwargs: _auto_tokenizer(where, **kwargs), tiny.build_tokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.use_chat = self._use_chat_template()

    def _load_model(self):
        def from_pretrained(where, kwargs):
            from transformers import AutoModelForCausalLM
            from transformers.utils import logging as transformers_logging

            # One model per process, loaded once: a per-tensor progress bar is noise in worker logs.
            transformers_logging.disable_progress_bar()
            if "gguf_file" in kwargs:
                kwargs = gguf_arguments(kwargs["gguf_file"])
            return AutoModelForCausalLM.from_pretrained(where, dtype=self.dtype, **kwargs)

        return self._from_source(
            from_pretrained, lambda: tiny.build_model(self.tier.model, self.tokenizer, device=self.device, dtype=self.dtype)
        )

    def _from_source(self, from_pretrained, build_tiny):
        source = self.tier.model
        try:
            if tiny.is_tiny(source):
                return build_tiny()
            packaged_model = packaged.packaged_name(source)
            if packaged_model:
                return from_pretrained(str(packaged.fetched_folder(packaged_model)), {})
            path = Path(source).expanduser()
            if source.endswith(".gguf"):
                if not path.is_file():
                    raise BackendError(f"tier {self.tier.name}: GGUF file {path} not found")
                return from_pretrained(str(path.parent), {"gguf_file": path.name})
            if path.is_dir():
                return from_pretrained(str(path), {})
            return from_pretrained(source, {"local_files_only": True})
        except BackendError:
            raise
        except packaged.ModelFetchError as exc:
            raise BackendError(f"tier {self.tier.name}: {exc}") from None
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            raise BackendError(
                f"tier {self.tier.name}: cannot load model {source!r} ({type(exc).__name__}: {exc}). "
                "Give a local directory, a .gguf file, a model in the offline Hugging Face cache, or tiny:NAME"
            ) from exc

    def _use_chat_template(self) -> bool:
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if self.tier.chat_template is None:
            return has_template
        if self.tier.chat_template and not has_template:
            raise BackendError(f"tier {self.tier.name}: chat_template = true, but the model has no chat template")
        return self.tier.chat_template

    def _letter_token_ids(self, letter: str) -> list[int]:
        ids = []
        for spelling in (letter, " " + letter):
            encoded = self.tokenizer.encode(spelling, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
        if not ids:
            raise BackendError(f"tier {self.tier.name}: the tokenizer has no single token for the letter {letter!r}")
        return ids

    # -- facts -----------------------------------------------------------------------------------

    @property
    def params(self) -> float:
        return float(self.tier.params or self._params)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def default_layer(self) -> int:
        return max(0, round(self.num_layers * 3 / 4) - 1)

    # -- scoring ---------------------------------------------------------------------------------

    def encode(self, questions: Sequence[Question]) -> list[list[int]]:
        if self.use_chat:
            texts = [
                self.tokenizer.apply_chat_template(render_chat(q), add_generation_prompt=True, tokenize=False)
                for q in questions
            ]
            return [self.tokenizer.encode(t, add_special_tokens=False, verbose=False) for t in texts]
        # verbose=False: prompts over the context are reported per job, not warned about here.
        return [self.tokenizer.encode(render(q), add_special_tokens=True, verbose=False) for q in questions]

    def count_tokens(self, questions: Sequence[Question]) -> list[int]:
        return [len(ids) for ids in self.encode(questions)]

    def score(self, questions: Sequence[Question], *, layer: int | Sequence[int] | None = None) -> list[ScoredAnswer | ItemFailure]:
        """One batched pass per `max_batch` questions. `layer` may be a list (probe training):
        then each answer's `hidden` maps layer -> last-token hidden state, from the same pass."""
        encoded = self.encode(questions)
        return self._in_batches(encoded, [0] * len(encoded), lambda chunk: self._forward(
            [encoded[i] for i in chunk], [questions[i] for i in chunk], layer))

    def _in_batches(self, encoded: list[list[int]], new_tokens: list[int], run) -> list:
        """Run `run(indices)` on length-sorted slices of max_batch prompts (sorting keeps padding small);
        a prompt that cannot fit the context with its new tokens fails alone."""
        results: list = [None] * len(encoded)
        runnable = []
        for i, ids in enumerate(encoded):
            if len(ids) + new_tokens[i] >= self.context_tokens:
                asked = f" plus {new_tokens[i]} new tokens" if new_tokens[i] else ""
                results[i] = ItemFailure(
                    f"prompt is {len(ids)} tokens{asked}, longer than the model's context of {self.context_tokens}"
                )
            else:
                runnable.append(i)
        runnable.sort(key=lambda i: len(encoded[i]))
        step = self.tier.max_batch
        for start in range(0, len(runnable), step):
            chunk = runnable[start : start + step]
            for i, item in zip(chunk, run(chunk)):
                results[i] = item
        return results

    def _left_padded(self, batch: list[list[int]], width: int, rows: int):
        """input_ids, attention mask and position ids of a left-padded batch (`rows` >= len(batch))."""
        torch = self._torch
        self.padding.add(sum(len(ids) for ids in batch), width * rows)
        input_ids = torch.full((rows, width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        mask[len(batch) :, -1] = 1  # filler rows of a fixed-size batch attend to one pad token
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids, mask, positions

    def _hook_layers(self, layer, captured: dict) -> list:
        """Forward hooks keeping the last token's hidden state at each wanted layer (the prompt's
        last token, in a left-padded prefill)."""
        wanted = [] if layer is None else ([layer] if isinstance(layer, int) else list(layer))
        handles = []
        for index in wanted:
            if not 0 <= index < len(self.layers):
                raise BackendError(f"tier {self.tier.name}: layer {index} out of range 0..{len(self.layers) - 1}")

            def keep_last_token(_module, _inputs, output, index=index):
                if index in captured:  # decoding steps run the hook too; only the prefill counts
                    return
                hidden = output[0] if isinstance(output, tuple) else output
                captured[index] = hidden[:, -1, :].float().cpu()

            handles.append(self.layers[index].register_forward_hook(keep_last_token))
        return handles

    def _forward(self, batch: list[list[int]], questions: list[Question], layer) -> list[ScoredAnswer]:
        torch = self._torch
        width = max(len(ids) for ids in batch)
        rows = len(batch)
        if self.compiled:
            width, rows = bucket_width(width, self.context_tokens), self.tier.max_batch
        input_ids, mask, positions = self._left_padded(batch, width, rows)
        captured: dict[int, object] = {}
        handles = self._hook_layers(layer, captured)
        try:
            with self._lock, torch.inference_mode():
                out = self._forward_fn(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    logits_to_keep=1,
                    use_cache=False,
                )
                probs = torch.softmax(out.logits[: len(batch), -1, :].float(), dim=-1)
                letter_probs = self._letter_matrix(probs).cpu().numpy()
        finally:
            for handle in handles:
                handle.remove()
        arrays = {index: values[: len(batch)].numpy() for index, values in captured.items()}
        return [
            _scored(q, letter_probs[row], len(batch[row]), _hidden_for(row, arrays, layer))
            for row, q in enumerate(questions)
        ]

    # -- generation ------------------------------------------------------------------------------

    def encode_open(self, prompts: Sequence[OpenPrompt]) -> list[list[int]]:
        if self.use_chat:
            texts = [
                self.tokenizer.apply_chat_template(render_open_chat(p), add_generation_prompt=True, tokenize=False)
                for p in prompts
            ]
            return [self.tokenizer.encode(t, add_special_tokens=False, verbose=False) for t in texts]
        return [self.tokenizer.encode(render_open(p), add_special_tokens=True, verbose=False) for p in prompts]

    def generate(self, prompts: Sequence[OpenPrompt], *, layer: int | Sequence[int] | None = None) -> list[GeneratedAnswer | ItemFailure]:
        """Greedy answers, batched like scoring: one prefill per `max_batch` prompts, then one decoding
        step per new token for the whole batch, on the KV cache."""
        encoded = self.encode_open(prompts)
        return self._in_batches(encoded, [p.max_tokens for p in prompts], lambda chunk: self._generate_batch(
            [encoded[i] for i in chunk], [prompts[i] for i in chunk], layer))

    def _generate_batch(self, batch: list[list[int]], prompts: list[OpenPrompt], layer) -> list[GeneratedAnswer]:
        torch = self._torch
        rows = len(batch)
        input_ids, mask, positions = self._left_padded(batch, max(len(ids) for ids in batch), rows)
        captured: dict[int, object] = {}
        handles = self._hook_layers(layer, captured)
        decoders = [_Decoding(self.tokenizer, p, self._eos_ids) for p in prompts]
        device = self.device
        try:
            with self._lock, torch.inference_mode():
                mask = mask.to(device)
                out = self.model(
                    input_ids=input_ids.to(device), attention_mask=mask, position_ids=positions.to(device),
                    logits_to_keep=1, use_cache=True,
                )
                for handle in handles:
                    handle.remove()
                handles = []
                cache, next_position = _cache_of(out), positions[:, -1:].to(device) + 1
                for _step in range(max(p.max_tokens for p in prompts)):
                    logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
                    chosen = logprobs.argmax(dim=-1)
                    chosen_logprob = logprobs.gather(-1, chosen[:, None])[:, 0]
                    for decoding, token, logprob in zip(decoders, chosen.tolist(), chosen_logprob.tolist()):
                        decoding.add(token, logprob)
                    if all(d.finished for d in decoders):
                        break
                    mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=1)
                    out = self.model(
                        input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position,
                        use_cache=True, **{self._cache_argument: cache},
                    )
                    cache, next_position = _cache_of(out), next_position + 1
        finally:
            for handle in handles:
                handle.remove()
        arrays = {index: values[:rows].numpy() for index, values in captured.items()}
        return [d.answer(len(batch[row]), _hidden_for(row, arrays, layer)) for row, d in enumerate(decoders)]


    def _letter_matrix(self, probs):
        """(batch, 10) probabilities of the letters A..J, each summed over its spellings."""
        torch = self._torch
        if self._letter_index is None:
            index = torch.zeros((probs.shape[-1], 10), dtype=probs.dtype, device=probs.device)
            for column, letter in enumerate("ABCDEFGHIJ"):
                index[self._letter_ids[letter], column] = 1.0
            self._letter_index = index
        return probs @ self._letter_index


class PaddingMeter:
    """How much of the forward passes' token slots were padding."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.real = 0
        self.slots = 0

    def add(self, real: int, slots: int) -> None:
        self.real += real
        self.slots += slots

    @property
    def share(self) -> float:
        return 1.0 - self.real / self.slots if self.slots else 0.0


def bucket_width(width: int, limit: int) -> int:
    """Round a batch's width up to a multiple of 64 tokens (a fixed shape for torch.compile)."""
    return min(limit, -(-width // 64) * 64)


def _auto_tokenizer(where: str, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(where, **kwargs)


def _hidden_for(row: int, arrays: dict, layer):
    if not arrays:
        return None
    if isinstance(layer, int):
        return arrays[layer][row]
    return {index: values[row] for index, values in arrays.items()}


def _scored(question: Question, letter_probs: np.ndarray, tokens_in: int, hidden) -> ScoredAnswer:
    probs = {letter: float(letter_probs[i]) for i, letter in enumerate(question.letters)}
    confidence = answer_from_letter_probs(probs)
    return ScoredAnswer(
        answer=confidence.answer,
        p_t=confidence.p_t,
        p_t_options=confidence.p_t_options,
        tokens_in=tokens_in,
        tokens_out=1,
        hidden=hidden,
    )


class _Decoding:
    """One row's greedy answer as it grows: stops at an end-of-text token, a stop sequence or max_tokens."""

    def __init__(self, tokenizer, prompt: OpenPrompt, eos_ids: set[int]):
        self.tokenizer, self.prompt, self.eos_ids = tokenizer, prompt, eos_ids
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.finished = False
        self.finish_reason = "length"
        self.text: str | None = None
        self.kept = 0  # tokens before a stop sequence

    def add(self, token: int, logprob: float) -> None:
        if self.finished:
            return
        if token in self.eos_ids:
            self.finished, self.finish_reason = True, "stop"
            return
        self.tokens.append(token)
        self.logprobs.append(logprob)
        if self.prompt.stop:
            text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
            cut = min((text.find(s) for s in self.prompt.stop if s in text), default=-1)
            if cut >= 0:
                self.text, self.finished, self.finish_reason = text[:cut], True, "stop"
                self.kept = _tokens_within(self.tokenizer, self.tokens, cut)
                return
        if len(self.tokens) >= self.prompt.max_tokens:
            self.finished = True

    def answer(self, tokens_in: int, hidden) -> GeneratedAnswer:
        text = self.text if self.text is not None else self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        kept = self.logprobs[: self.kept] if self.text is not None else self.logprobs
        return GeneratedAnswer(
            text=text.strip(), token_logprobs=kept, tokens_in=tokens_in, tokens_out=len(self.tokens),
            finish_reason=self.finish_reason, hidden=hidden,
        )


def _tokens_within(tokenizer, tokens: list[int], chars: int) -> int:
    """How many leading tokens decode to text that ends at or before `chars` characters."""
    count = 0
    while count < len(tokens) and len(tokenizer.decode(tokens[: count + 1], skip_special_tokens=True)) <= chars:
        count += 1
    return count


def _cache_argument(model) -> str:
    """The forward argument that takes the KV cache: `cache` in recent transformers, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _eos_token_ids(model, tokenizer) -> set[int]:
    """Every token that ends an answer: the tokenizer's end of text and the model's generation config's."""
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _decoder_layers(model):
    for dotted in _LAYER_PATHS:
        node = model
        for part in dotted.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is not None and len(node) > 0:
            return node
    raise BackendError(f"cannot find the decoder layers of {type(model).__name__} to attach the P(IK) probe")
