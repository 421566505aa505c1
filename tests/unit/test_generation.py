"""Generation in every backend: the transformers decoder on a tiny random-weight model (real forward
passes), the null backend, vLLM's output parsing, and the refusal of backends without text output."""

import math
from types import SimpleNamespace as Obj

import pytest

from cascade.router.config import Tier, parse_config
from cascade.router.errors import ConfigError
from cascade.router.prompts import OpenPrompt
from cascade.router.signals import aggregate
from cascade.workers import backends
from cascade.workers.backends import GeneratedAnswer, ItemFailure, check_config, create_backend
from cascade.workers.backends.vllm_backend import open_sampling_arguments, parse_generation

PROMPTS = [OpenPrompt(t, max_tokens=10) for t in ("Who directed Alien?", "Capital of France?", "2+2", "Name a colour that is a fruit.")]


@pytest.fixture(scope="module")
def tiny():
    backend = create_backend(Tier(name="t", backend="transformers", model="tiny:medium", max_batch=4))
    backend.load()
    return backend


def test_batched_decoding_matches_one_prompt_at_a_time(tiny):
    batched = tiny.generate(PROMPTS, layer=1)
    for prompt, together in zip(PROMPTS, batched):
        alone = tiny.generate([prompt], layer=1)[0]
        assert isinstance(together, GeneratedAnswer) and together.text == alone.text
        assert len(together.token_logprobs) == together.tokens_out == 10 and together.finish_reason == "length"
        assert max(abs(a - b) for a, b in zip(together.token_logprobs, alone.token_logprobs)) < 1e-3
        assert abs(together.hidden - alone.hidden).max() < 1e-3
        assert all(lp <= 0 for lp in together.token_logprobs)


def test_the_cached_decoder_agrees_with_transformers_generate(tiny):
    import torch

    ids = tiny.encode_open(PROMPTS[:1])[0]
    out = tiny.model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False, output_scores=True,
                              return_dict_in_generate=True, pad_token_id=tiny.tokenizer.pad_token_id)
    tokens = out.sequences[0, len(ids):].tolist()
    reference = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, tokens)]
    ours = tiny.generate(PROMPTS[:1])[0]
    assert ours.text == tiny.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    assert max(abs(a - b) for a, b in zip(reference, ours.token_logprobs)) < 1e-3


def test_a_stop_sequence_ends_the_answer_before_it(tiny):
    full = tiny.generate(PROMPTS[:1])[0]
    stop = full.text[4:6]
    stopped = tiny.generate([OpenPrompt(PROMPTS[0].text, 10, stop=(stop,))])[0]
    assert stop not in stopped.text and full.text.startswith(stopped.text.strip()[:3])
    assert stopped.finish_reason == "stop" and stopped.tokens_out < 10
    assert len(stopped.token_logprobs) <= stopped.tokens_out


def test_a_prompt_too_long_for_the_context_fails_alone(tiny):
    results = tiny.generate([OpenPrompt("x" * 4090, max_tokens=10), PROMPTS[0]])
    assert isinstance(results[0], ItemFailure) and "plus 10 new tokens, longer than the model's context of 4096" in results[0].error
    assert isinstance(results[1], GeneratedAnswer)


def test_the_null_backend_answers_free_form_prompts_with_a_steady_confidence():
    backend = create_backend(Tier(name="n", backend="null", model="n"))
    backend.load()
    first, again = backend.generate(PROMPTS[:1], layer=0)[0], backend.generate(PROMPTS[:1])[0]
    assert first.text == again.text and first.text
    assert 1 <= first.tokens_out <= 6 and first.hidden is not None
    assert aggregate(first.token_logprobs, "mean") == pytest.approx(aggregate(first.token_logprobs, "min"))


def vllm_output(tokens: list[tuple[int, float]], text="Ridley Scott", finish="stop"):
    steps = [{tid: Obj(logprob=lp, rank=1, decoded_token="x"), 99: Obj(logprob=-9.0, rank=2, decoded_token="y")} for tid, lp in tokens]
    completion = Obj(index=0, text=text, token_ids=[t for t, _ in tokens], logprobs=steps, finish_reason=finish)
    return Obj(prompt_token_ids=list(range(12)), outputs=[completion])


def test_vllm_generation_keeps_the_chosen_tokens_logprobs():
    answer = parse_generation(vllm_output([(5, -0.1), (7, -0.5)]))
    assert isinstance(answer, GeneratedAnswer)
    assert (answer.text, answer.token_logprobs, answer.tokens_in, answer.tokens_out) == ("Ridley Scott", [-0.1, -0.5], 12, 2)
    assert parse_generation(vllm_output([(5, -0.1)], finish="length")).finish_reason == "length"
    assert open_sampling_arguments(OpenPrompt("q", 16, ("\n",))) == {"max_tokens": 16, "temperature": 0.0, "logprobs": 0, "stop": ["\n"]}
    missing = vllm_output([(5, -0.1)])
    missing.outputs[0].logprobs = None
    assert isinstance(parse_generation(missing), ItemFailure)
    assert math.isclose(aggregate(answer.token_logprobs, "product"), math.exp(-0.6))


def test_a_backend_without_text_output_is_refused_at_config_load(monkeypatch):
    class ScoresOnly(backends.Backend):
        generates_text = False

    monkeypatch.setitem(backends.BACKENDS, "scores-only", "tests.unit.test_generation:ScoresOnlyBackend")
    globals()["ScoresOnlyBackend"] = ScoresOnly
    config = parse_config({"tiers": [{"name": "a", "backend": "scores-only", "model": "m"}]})
    with pytest.raises(ConfigError, match=r"tiers\[0\] \(a\).backend: the scores-only backend has no text output"):
        check_config(config)
