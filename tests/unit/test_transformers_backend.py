"""The transformers backend on tiny random-weight models: real forward passes, no downloads."""

import numpy as np
import pytest

from cascade.router.config import Tier
from cascade.router.errors import ConfigError
from cascade.router.prompts import make_question
from cascade.workers.backends import BackendError, ItemFailure, ScoredAnswer, create_backend

QUESTIONS = [
    make_question("Which planet is the largest?", ["Mars", "Jupiter", "Venus", "Earth"]),
    make_question("2 + 2 =", ["3", "4"]),
    make_question("A much longer question " + "with many words " * 12, ["yes", "no", "maybe"]),
]


def backend_for(model="tiny:small", **kw):
    backend = create_backend(Tier(name="t", backend="transformers", model=model, **kw))
    backend.load()
    return backend


@pytest.fixture(scope="module")
def small():
    return backend_for()


def test_one_batched_pass_matches_one_question_at_a_time(small):
    batched = small.score(QUESTIONS, layer=1)
    alone = [small.score([q], layer=1)[0] for q in QUESTIONS]
    for b, a, q in zip(batched, alone, QUESTIONS):
        assert isinstance(b, ScoredAnswer)
        assert b.answer == a.answer and b.answer in q.letters
        assert b.p_t == pytest.approx(a.p_t, rel=1e-4)
        assert 0.0 < b.p_t <= b.p_t_options <= 1.0
        np.testing.assert_allclose(b.hidden, a.hidden, rtol=1e-3, atol=1e-4)
        assert b.tokens_out == 1 and b.tokens_in == small.count_tokens([q])[0]


def test_hidden_state_comes_from_the_requested_layer_only_when_asked(small):
    assert small.score(QUESTIONS[:1])[0].hidden is None
    first = small.score(QUESTIONS[:1], layer=0)[0].hidden
    last = small.score(QUESTIONS[:1], layer=1)[0].hidden
    assert first.shape == (small.hidden_size,) and not np.allclose(first, last)
    assert small.default_layer() == 1  # ~3/4 of 2 layers
    with pytest.raises(BackendError, match="layer 7 out of range"):
        small.score(QUESTIONS[:1], layer=7)


def test_prompt_longer_than_the_context_fails_alone(small):
    too_long = make_question("word " * 2000, ["a", "b"])
    results = small.score([QUESTIONS[0], too_long, QUESTIONS[1]])
    assert isinstance(results[0], ScoredAnswer) and isinstance(results[2], ScoredAnswer)
    assert isinstance(results[1], ItemFailure)
    assert "longer than the model's context of 4096" in results[1].error


def test_a_saved_local_directory_loads_and_scores_the_same(small, tmp_path):
    small.model.save_pretrained(tmp_path)
    small.tokenizer.save_pretrained(tmp_path)
    local = backend_for(model=str(tmp_path))
    assert local.params == small.params
    for a, b in zip(local.score(QUESTIONS), small.score(QUESTIONS)):
        assert a.answer == b.answer and a.p_t == pytest.approx(b.p_t, rel=1e-5)


def test_configured_parameter_count_overrides_the_model_count(small):
    assert small.params == sum(p.numel() for p in small.model.parameters())
    assert backend_for(params=8.03e9).params == 8.03e9


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/nonexistent/model.gguf", "GGUF file /nonexistent/model.gguf not found"),
        ("no-such-org/no-such-model", "cannot load model 'no-such-org/no-such-model'"),
    ],
)
def test_a_model_that_fails_to_load_names_the_problem(model, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match=message):
        backend_for(model=model)


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown backend 'tgi'; choose one of null, openai, transformers, vllm"):
        create_backend(Tier(name="t", backend="tgi", model="m"))


def test_padding_is_measured_and_compilebucket_widths_are_fixed_shapes(small):
    from cascade.workers.backends.transformers_backend import bucket_width

    assert [bucket_width(w, 4096) for w in (1, 64, 65, 4000, 5000)] == [64, 64, 128, 4032, 4096]
    small.padding.reset()
    small.score(QUESTIONS)  # three lengths sorted into one pass: the short ones are padded
    assert 0.0 < small.padding.share < 1.0
    assert small.padding.slots == 3 * max(small.count_tokens(QUESTIONS))
