import pytest

from cascade.router.errors import InvalidQuestion
from cascade.router.prompts import make_question, normalise_gold, render, render_chat


def test_question_renders_with_lettered_options_and_answer_cue():
    q = make_question("  What is 2+2? ", ["3", 4, "5"])
    assert q.letters == "ABC"
    assert render(q) == "What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer:"
    assert render_chat(q)[0]["content"].endswith("Answer with the letter of the correct option only.")


@pytest.mark.parametrize(
    ("text", "choices", "message"),
    [
        ("", ["a", "b"], "empty question"),
        ("   ", ["a", "b"], "empty question"),
        ("q", None, "missing choices"),
        ("q", ["only"], "missing choices"),
        ("q", "ab", "missing choices"),
        ("q", ["a", ""], "choice B is empty"),
        ("q", ["x"] * 11, "too many choices"),
    ],
)
def test_bad_questions_are_refused_with_the_reason(text, choices, message):
    with pytest.raises(InvalidQuestion, match=message):
        make_question(text, choices)


def test_gold_answers_normalise_to_letters():
    q = make_question("q", ["red", "green", "blue"])
    assert normalise_gold("b", q) == "B"
    assert normalise_gold(2, q) == "C"
    assert normalise_gold("green", q) == "B"
    assert normalise_gold(None, q) is None
    with pytest.raises(InvalidQuestion, match="not one of the options"):
        normalise_gold("E", q)
