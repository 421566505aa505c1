"""The vLLM backend's own logic on output objects shaped as vLLM returns them (no GPU needed)."""

import math
from types import SimpleNamespace as Obj

import pytest

from cascade.router.config import parse_config
from cascade.router.errors import ConfigError
from cascade.router.prompts import make_question
from cascade.workers.backends import ItemFailure, ScoredAnswer, check_config
from cascade.workers.backends.vllm_backend import parse_output, sampling_arguments

QUESTION = make_question("2 + 2 = ?", ["3", "4", "5", "6"])


def request_output(top: dict[int, tuple[str, float]], prompt_tokens=37, text="B"):
    """A RequestOutput as vLLM builds it: outputs[0].logprobs[0] maps token ids to Logprob."""
    logprobs = {tid: Obj(logprob=lp, rank=i + 1, decoded_token=tok) for i, (tid, (tok, lp)) in enumerate(top.items())}
    completion = Obj(index=0, text=text, token_ids=[next(iter(top))], logprobs=[logprobs], finish_reason="length")
    return Obj(request_id="0", prompt="...", prompt_token_ids=list(range(prompt_tokens)), outputs=[completion])


def test_answer_and_p_t_come_from_the_first_token_logprobs():
    output = request_output({33: ("B", -0.2), 32: ("A", -2.0), 426: (" B", -3.5), 9906: ("Hello", -6.0)})
    scored = parse_output(output, QUESTION)
    assert isinstance(scored, ScoredAnswer) and scored.answer == "B"
    p_b = math.exp(-0.2) + math.exp(-3.5)
    assert scored.p_t == pytest.approx(p_b)
    assert scored.p_t_options == pytest.approx(p_b / (p_b + math.exp(-2.0)))
    assert (scored.tokens_in, scored.tokens_out) == (37, 1)


def test_no_letter_among_the_logprobs_fails_alone():
    failed = parse_output(request_output({9906: ("Hello", -0.1)}, text="Hello"), QUESTION)
    assert isinstance(failed, ItemFailure) and "no option letter" in failed.error


def test_requests_are_greedy_single_tokens_with_logprobs():
    assert sampling_arguments() == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20}


def test_a_vllm_or_api_tier_with_a_probe_is_refused():
    for backend in ("vllm", "openai"):
        with pytest.raises(ConfigError, match=f"the {backend} backend exposes no hidden states"):
            check_config(parse_config({"tiers": [{"name": "a", "backend": backend, "model": "m", "probe": "p.npz"}]}))
