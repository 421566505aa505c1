"""What one job asks, validated the same way wherever it comes from (the Python API, the CLI, a batch
row): a multiple-choice question with options, or a free-form prompt, with its gold and grader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cascade.router.errors import InvalidQuestion
from cascade.router.grading import check_grader, gold_aliases
from cascade.router.prompts import JobKind, make_open_prompt, make_question, normalise_gold


@dataclass(frozen=True)
class JobSpec:
    kind: str
    question: str  # the question, or the prompt
    choices: tuple[str, ...] = ()
    gold: str | None = None  # the correct letter (choice)
    gold_aliases: tuple[str, ...] | None = None  # accepted answers (open)
    grader: str | None = None  # set when there is a gold
    max_tokens: int | None = None  # open: None means the tier's default
    stop: tuple[str, ...] | None = None  # open: None means the tier's


def has_choices(choices: Any) -> bool:
    """Whether a job gives options: anything but None, "" or an empty list makes it a choice job."""
    return choices not in (None, "", [], (), {})


def make_job_spec(
    question: Any,
    choices: Any = None,
    *,
    gold: Any = None,
    grader: Any = None,
    max_tokens: Any = None,
    stop: Any = None,
    max_tokens_limit: int | None = None,
) -> JobSpec:
    """A validated job, or InvalidQuestion saying what is wrong. Without choices it is free-form."""
    if has_choices(choices):
        if max_tokens is not None or stop is not None:
            raise InvalidQuestion("max_tokens and stop are for free-form jobs; a multiple-choice job answers with one letter")
        q = make_question(question, choices)
        letter = normalise_gold(gold, q)
        checked = check_grader(grader, kind="choice")
        return JobSpec(kind=JobKind.CHOICE.value, question=q.text, choices=q.choices, gold=letter, grader=checked if letter else None)
    prompt = make_open_prompt(question, max_tokens=1 if max_tokens is None else max_tokens, stop=stop, limit=max_tokens_limit)
    aliases = gold_aliases(gold)
    checked = check_grader(grader, kind="open")
    return JobSpec(
        kind=JobKind.OPEN.value,
        question=prompt.text,
        gold_aliases=tuple(aliases) if aliases else None,
        grader=checked if aliases else None,
        max_tokens=max_tokens,
        stop=prompt.stop if stop is not None else None,
    )
