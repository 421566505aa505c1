"""Replay against hand-computed values, and against the reference figures of the real Llama log."""

import json

import pytest

from cascade.router.operating_point import frontier
from cascade.router.replay import fit_thresholds, load_log, replay, search
from tests.conftest import shared_file


@pytest.fixture
def log(tmp_path):
    # Four questions, two models. small: P(T) 0.95, 0.5, 0.99, 0.2; right on q0, q1. large: right on q0, q1, q2.
    def entry(correct, p, tokens_in):
        import math

        return {"answer": "A", "correct": correct, "logprob": math.log(p), "tokens_in": tokens_in, "tokens_out": 1, "cost_usd": tokens_in * 1e-6}

    rows = [
        {"id": "q0", "split": "train", "models": {"s": entry(True, 0.95, 9), "l": entry(True, 0.9, 9)}},
        {"id": "q1", "split": "train", "models": {"s": entry(True, 0.5, 19), "l": entry(True, 0.9, 19)}},
        {"id": "q2", "split": "test", "models": {"s": entry(False, 0.99, 9), "l": entry(True, 0.9, 9)}},
        {"id": "q3", "split": "test", "models": {"s": entry(False, 0.2, 9), "l": entry(False, 0.9, 9)}},
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PARAMS = {"s": 1.0, "l": 10.0}


def test_replay_matches_hand_computed_values(log):
    result = replay(load_log(log), ["s", "l"], 0.9, PARAMS)
    # s keeps q0 (right) and q2 (wrong); l answers q1 (right) and q3 (wrong): 2 of 4 right.
    assert result.accuracy == pytest.approx(50.0)
    assert result.largest_accuracy == pytest.approx(75.0)
    assert result.pd_pp == pytest.approx(-25.0)
    # FLOPs: s on all = 2*1*(10+20+10+10) = 100; l on q1, q3 = 2*10*(20+10) = 600; l alone = 2*10*50 = 1000.
    assert result.reduced_cc == pytest.approx(100 * (1 - 700 / 1000))
    assert result.answered == {"s": 0.5, "l": 0.5}
    assert result.tokens == {"s": {"in": 46, "out": 4}, "l": {"in": 28, "out": 2}}
    assert result.usd == pytest.approx(74e-6)


def test_a_threshold_of_one_sends_everything_up_and_zero_keeps_everything(log):
    data = load_log(log)
    assert replay(data, ["s", "l"], 1.0, PARAMS).answered == {"s": 0.0, "l": 1.0}
    assert replay(data, ["s", "l"], 0.0, PARAMS).answered == {"s": 1.0, "l": 0.0}


def test_fit_on_one_split_and_the_frontier(log):
    fitted = fit_thresholds(load_log(log, split="train"), ["s", "l"], PARAMS, target_pd=0.0)
    # On train the small model is right on both, so the cheapest threshold keeps everything.
    assert fitted.taus == [0.0] and fitted.pd_pp == 0.0
    points = search(load_log(log), ["s", "l"], PARAMS)
    front = frontier(points)
    assert [p.reduced_cc for p in front] == sorted((p.reduced_cc for p in front), reverse=True)
    assert max(p.accuracy for p in front) == pytest.approx(75.0)
    with pytest.raises(ValueError, match="no parameter count"):
        replay(load_log(log), ["s", "l"], 0.9, {"s": 1.0})


def test_the_real_llama_log_reproduces_the_reference_figures():
    data = load_log(shared_file("data", "replay", "mmlu_llama.jsonl"), split="test")
    params = {"llama3.1-8b": 8.03e9, "llama3.1-70b": 70.6e9, "llama3.1-405b": 405.9e9}
    small = replay(data, ["llama3.1-8b", "llama3.1-70b"], 0.9, params).as_dict()
    assert (small["accuracy"], small["largest_accuracy"], small["pd_pp"]) == (80.40, 81.45, -1.05)
    assert small["reduced_cc"] == pytest.approx(19.5, abs=0.05)
    assert small["answered"]["llama3.1-8b"] == pytest.approx(0.347, abs=0.001)
    large = replay(data, ["llama3.1-70b", "llama3.1-405b"], 0.95, params).as_dict()
    assert (large["accuracy"], large["pd_pp"]) == (84.72, -0.46)
    assert large["reduced_cc"] == pytest.approx(48.3, abs=0.05)


def test_a_chain_written_largest_first_is_refused(log):
    with pytest.raises(ValueError, match="a chain goes smallest first: l .* comes before s"):
        replay(load_log(log), ["l", "s"], 0.9, PARAMS)
