"""Multiple-choice questions and the prompt text asked of every tier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cascade.router.errors import InvalidQuestion

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct option only."


@dataclass(frozen=True)
class Question:
    """A validated multiple-choice question."""

    text: str
    choices: tuple[str, ...]

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


def make_question(text: Any, choices: Any) -> Question:
    """Validate raw input into a Question, or raise InvalidQuestion saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuestion("empty question: give the question text")
    if isinstance(choices, Mapping):
        choices = [choices[k] for k in sorted(choices)]
    if not isinstance(choices, (list, tuple)):  # a str is a Sequence too, but not a list of options
        raise InvalidQuestion("missing choices: give at least two options (choices=[...])")
    if len(choices) < 2:
        raise InvalidQuestion("missing choices: give at least two options (choices=[...])")
    if len(choices) > len(LETTERS):
        raise InvalidQuestion(f"too many choices: at most {len(LETTERS)} options, got {len(choices)}")
    cleaned = []
    for i, choice in enumerate(choices):
        if type(choice) is not str:
            if isinstance(choice, (int, float)) and not isinstance(choice, bool):
                choice = str(choice)
            else:
                raise InvalidQuestion(f"choice {LETTERS[i]} is empty or not text")
        choice = choice.strip()
        if not choice:
            raise InvalidQuestion(f"choice {LETTERS[i]} is empty or not text")
        cleaned.append(choice)
    return Question(text=text.strip(), choices=tuple(cleaned))


def normalise_gold(gold: Any, question: Question) -> str | None:
    """A gold answer as an option letter: accepts the letter, its index, or the option's text."""
    if gold is None or gold == "":
        return None
    if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(question.choices):
        return question.letters[gold]
    if isinstance(gold, str):
        g = gold.strip()
        if g.upper() in question.letters and len(g) == 1:
            return g.upper()
        if g in question.choices:
            return question.letters[question.choices.index(g)]
    raise InvalidQuestion(f"gold answer {gold!r} is not one of the options {', '.join(question.letters)}")


def render(question: Question) -> str:
    """The question with lettered options, ending in "Answer:" for a raw completion."""
    lines = [question.text]
    lines += [f"{letter}. {choice}" for letter, choice in zip(question.letters, question.choices)]
    lines.append("Answer:")
    return "\n".join(lines)


def render_chat(question: Question) -> list[dict[str, str]]:
    """The same question as chat messages for models with a chat template."""
    body = [question.text]
    body += [f"{letter}. {choice}" for letter, choice in zip(question.letters, question.choices)]
    body.append(INSTRUCTION)
    return [{"role": "user", "content": "\n".join(body)}]
