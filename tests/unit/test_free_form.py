"""Free-form jobs in the pure core: graders, P(T) aggregates, the rule with abstention, job specs and config keys."""

import math

import pytest

from cascade.router.config import parse_config
from cascade.router.errors import ConfigError, InvalidQuestion
from cascade.router.grading import check_grader, final_number, gold_aliases, grade, squad_normalise
from cascade.router.job_spec import make_job_spec
from cascade.router.policy import Decision, decide
from cascade.router.signals import aggregate, is_aggregate


def tiers(**last):
    return parse_config({"tiers": [
        {"name": "small", "backend": "null", "model": "s", "tau_t": 0.9, "open_tau_t": 0.4},
        {"name": "large", "backend": "null", "model": "l", **last},
    ]})


def test_containment_grader_is_popqas_case_folded_rule():
    assert grade("contains", "It was directed by Ridley Scott.", ["ridley scott", "Sir Ridley Scott"])
    assert not grade("contains", "James Cameron", ["Ridley Scott"])


def test_exact_grader_normalises_like_squad():
    assert squad_normalise("The  Eiffel-Tower!") == "eiffeltower"
    assert grade("exact", "the Pacific Ocean.", ["Pacific Ocean"])
    assert not grade("exact", "The Pacific Ocean is largest", ["Pacific Ocean"])


def test_number_grader_reads_the_final_number():
    assert final_number("so 3 + 4 = 7\n#### 1,234") == 1234.0
    assert final_number("The answer is 18 apples, then 20.") == 20.0
    assert final_number("no digits") is None
    assert grade("number", "#### 72", ["72"]) and not grade("number", "#### 71", ["72"])


def test_no_gold_is_ungraded_and_no_answer_is_wrong():
    assert grade("contains", "Paris", None) is None
    assert grade("contains", None, ["Paris"]) is False
    assert grade("choice", "b", ["B"])


def test_gold_is_a_string_or_a_list_of_strings():
    assert gold_aliases("Paris") == ["Paris"]
    assert gold_aliases([" Paris ", "Paris", "City of Light"]) == ["Paris", "City of Light"]
    assert gold_aliases(None) is None and gold_aliases(42) == ["42"]
    with pytest.raises(InvalidQuestion, match="gold must be a string or a list of strings, got dict"):
        gold_aliases({"a": 1})
    with pytest.raises(InvalidQuestion, match="a list holding int"):
        gold_aliases(["Paris", 3])


def test_graders_fit_their_job_kind():
    assert check_grader(None, kind="open") == "contains" and check_grader(None, kind="choice") == "choice"
    with pytest.raises(InvalidQuestion, match="not one of contains, exact, number"):
        check_grader("fuzzy", kind="open")
    with pytest.raises(InvalidQuestion):
        check_grader("exact", kind="choice")


def test_aggregates_of_token_log_probabilities():
    logprobs = [math.log(0.9), math.log(0.5), math.log(0.8)]
    assert aggregate(logprobs, "mean") == pytest.approx((0.9 * 0.5 * 0.8) ** (1 / 3))
    assert aggregate(logprobs, "product") == pytest.approx(0.36)
    assert aggregate(logprobs, "min") == pytest.approx(0.5)
    assert aggregate(logprobs, "first") == pytest.approx(0.9)
    assert aggregate(logprobs, "q10") == pytest.approx(math.exp(math.log(0.5) + 0.2 * (math.log(0.8) - math.log(0.5))))
    assert aggregate([], "mean") == 0.0
    assert is_aggregate("q05") and not is_aggregate("q90") and not is_aggregate("median")
    with pytest.raises(ValueError, match="unknown P\\(T\\) aggregate"):
        aggregate(logprobs, "median")


def test_free_form_jobs_use_their_own_threshold():
    config = tiers()
    small = config.first
    assert decide(0.5, None, small, is_last=False, kind="open").decision is Decision.ACCEPTED
    assert decide(0.5, None, small, is_last=False, kind="choice").decision is Decision.ESCALATED
    assert decide(0.3, None, small, is_last=False, kind="open").reason == "P(T) 0.300 < 0.4"


def test_the_last_tier_abstains_below_its_threshold_only_when_asked():
    assert decide(0.1, None, tiers().last, is_last=True).decision is Decision.ACCEPTED
    last = tiers(abstain_below=0.3).last
    assert decide(0.1, None, last, is_last=True, kind="open").decision is Decision.ABSTAINED
    assert decide(0.3, None, last, is_last=True, kind="open").decision is Decision.ACCEPTED


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        ({"abstain_below": 0.2}, "only the last tier abstains"),
        ({"p_t_aggregate": "median"}, "p_t_aggregate: expected one of mean, product"),
        ({"max_tokens": 64, "max_tokens_limit": 32}, "max_tokens: 64 is above max_tokens_limit 32"),
        ({"max_tokens": 0}, "max_tokens: expected an integer >= 1"),
        ({"stop": [""]}, "stop: stop must be a string or a list of non-empty strings"),
        ({"open_tau_t": 1.5}, "open_tau_t: expected a threshold between 0 and 1"),
    ],
)
def test_free_form_tier_settings_are_checked_with_the_field_named(tier, message):
    raw = {"tiers": [{"name": "small", "backend": "null", "model": "s", **tier}, {"name": "large", "backend": "null", "model": "l"}]}
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_a_job_without_choices_is_free_form():
    spec = make_job_spec("Who wrote Middlemarch?", None, gold=["George Eliot"], max_tokens=8, stop="\n", max_tokens_limit=64)
    assert (spec.kind, spec.gold_aliases, spec.grader, spec.max_tokens, spec.stop) == ("open", ("George Eliot",), "contains", 8, ("\n",))
    assert make_job_spec("Who?", []).max_tokens is None  # the tier's default applies
    choice = make_job_spec("2 + 2 = ?", ["3", "4"], gold=1)
    assert (choice.kind, choice.gold, choice.grader) == ("choice", "B", "choice")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question": "  "}, "empty prompt"),
        ({"max_tokens": 0}, "max_tokens must be a whole number of tokens > 0"),
        ({"max_tokens": 100}, "above the limit of 64 new tokens"),
        ({"gold": {"x": 1}}, "gold must be a string or a list of strings"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 stop sequences"),
        ({"grader": "fuzzy"}, "grader 'fuzzy'"),
    ],
)
def test_a_bad_free_form_job_gets_a_clear_error(kwargs, message):
    args = {"question": "Who directed Alien?", **kwargs}
    with pytest.raises(InvalidQuestion, match=message):
        make_job_spec(args.pop("question"), None, max_tokens_limit=64, **args)


def test_a_multiple_choice_job_refuses_generation_options():
    with pytest.raises(InvalidQuestion, match="max_tokens and stop are for free-form jobs"):
        make_job_spec("2 + 2 = ?", ["3", "4"], max_tokens=4)
