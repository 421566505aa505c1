"""What a job asks: a multiple-choice question or a free-form prompt, validated, and the prompt text
asked of every tier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cascade.router.errors import InvalidQuestion

LETTERS = "ABCDEFGHIJ"
MAX_TEXT_CHARS = 100_000  # a question or option longer than this is refused, not sent to a model
INSTRUCTION = "Answer with the letter of the correct option only."


class JobKind(str, Enum):
    """What a job asks for; stored as readable text in `jobs.kind`."""

    CHOICE = "choice"  # pick one of the options: one answer token
    OPEN = "open"  # free-form text: generated up to max_tokens or a stop sequence


MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64


@dataclass(frozen=True)
class Question:
    """A validated multiple-choice question."""

    text: str
    choices: tuple[str, ...]

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


def storable_text(value: str, what: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """`value` unchanged if a database can store it and a model can read it; else InvalidQuestion."""
    if "\x00" in value:
        raise InvalidQuestion(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuestion(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    if len(value) > limit:
        raise InvalidQuestion(f"{what} is longer than {limit:,} characters")
    return value


@dataclass(frozen=True)
class OpenPrompt:
    """A validated free-form prompt and how much the tier may generate for it."""

    text: str
    max_tokens: int
    stop: tuple[str, ...] = ()


def make_open_prompt(text: Any, *, max_tokens: Any, stop: Any = None, limit: int | None = None) -> OpenPrompt:
    """Validate a free-form prompt, or raise InvalidQuestion saying what is wrong. `limit`: the most
    new tokens any tier allows (a tier's `max_tokens_limit`)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuestion("empty prompt: give the prompt text")
    storable_text(text, "prompt")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise InvalidQuestion(f"max_tokens must be a whole number of tokens > 0, got {max_tokens!r}")
    if limit is not None and max_tokens > limit:
        raise InvalidQuestion(f"max_tokens {max_tokens} is above the limit of {limit} new tokens; ask for at most {limit}")
    return OpenPrompt(text=text.strip(), max_tokens=max_tokens, stop=stop_sequences(stop))


def stop_sequences(stop: Any) -> tuple[str, ...]:
    """Stop sequences as a tuple: None, one string, or a list of up to four non-empty strings."""
    if stop is None or stop == "":
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise InvalidQuestion("stop must be a string or a list of non-empty strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidQuestion(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stop)}")
    for s in stop:
        storable_text(s, "stop sequence", limit=MAX_STOP_CHARS)
    return tuple(dict.fromkeys(stop))


def make_question(text: Any, choices: Any) -> Question:
    """Validate raw input into a Question, or raise InvalidQuestion saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuestion("empty question: give the question text")
    storable_text(text, "question")
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
        choice = storable_text(choice, f"choice {LETTERS[i]}").strip()
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


def render_open(prompt: OpenPrompt) -> str:
    """A free-form prompt for a raw completion (no chat template): the text, then a new line."""
    return prompt.text + "\n"


def render_open_chat(prompt: OpenPrompt) -> list[dict[str, str]]:
    """A free-form prompt as chat messages: the user's text as it is."""
    return [{"role": "user", "content": prompt.text}]


def prompt_size(question: str, choices: Sequence[str] | None) -> int:
    """A tokenizer-free length estimate of a prompt, good enough to sort similar prompts together."""
    return len(question) + sum(len(c) for c in choices or ())
