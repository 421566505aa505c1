"""Grading a tier's answer against the gold: one function per rule, chosen by name per job.

- `choice`: the option letter equals the gold letter (multiple-choice jobs).
- `contains`: any alias appears in the answer, case-folded (PopQA's own rule).
- `exact`: the answer equals an alias after SQuAD normalisation (NQ-open).
- `number`: the answer's final number equals the gold's (GSM8K, `#### N`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from typing import Any

from cascade.router.errors import InvalidQuestion
from cascade.router.prompts import storable_text

DEFAULT_OPEN_GRADER = "contains"
MAX_ALIASES = 100
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_PUNCTUATION = set(string.punctuation)


def squad_normalise(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (the SQuAD evaluation rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_alias(answer: str, aliases: Sequence[str]) -> bool:
    folded = answer.casefold()
    return any(alias.casefold() in folded for alias in aliases if alias.strip())


def exact_match(answer: str, aliases: Sequence[str]) -> bool:
    normalised = squad_normalise(answer)
    return any(normalised == squad_normalise(alias) for alias in aliases)


def final_number(text: str) -> float | None:
    """The number after the last `####`, else the last number in the text; None when there is none."""
    tail = text.rsplit("####", 1)[1] if "####" in text else text
    found = _NUMBER.findall(tail)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def same_number(answer: str, aliases: Sequence[str]) -> bool:
    value = final_number(answer)
    return value is not None and any(final_number(alias) == value for alias in aliases)


def choice_match(answer: str, aliases: Sequence[str]) -> bool:
    return answer.strip().upper() in {a.strip().upper() for a in aliases}


GRADERS: dict[str, Callable[[str, Sequence[str]], bool]] = {
    "choice": choice_match,
    "contains": contains_alias,
    "exact": exact_match,
    "number": same_number,
}


def check_grader(name: Any, *, kind: str) -> str:
    """A grader name valid for a job kind; InvalidQuestion naming the known ones otherwise."""
    if name is None or name == "":
        return "choice" if kind == "choice" else DEFAULT_OPEN_GRADER
    if name not in GRADERS or (kind == "choice") != (name == "choice"):
        allowed = ["choice"] if kind == "choice" else sorted(set(GRADERS) - {"choice"})
        raise InvalidQuestion(f"grader {name!r} is not one of {', '.join(allowed)} for a {kind} job")
    return str(name)


def grade(grader: str, answer: str | None, aliases: Sequence[str] | None) -> bool | None:
    """Whether `answer` is right; None when there is no gold to grade against. No answer is wrong."""
    if not aliases:
        return None
    if answer is None:
        return False
    return GRADERS[grader](answer, aliases)


def gold_aliases(gold: Any) -> list[str] | None:
    """A free-form job's gold as a list of accepted answers: one string or a list of strings."""
    if gold is None or gold == "" or gold == []:
        return None
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if isinstance(gold, str):
        gold = [gold]
    if not isinstance(gold, (list, tuple)) or not all(isinstance(g, str) for g in gold):
        raise InvalidQuestion(f"gold must be a string or a list of strings, got {_kind(gold)}")
    aliases = [storable_text(g, "gold alias", limit=1000).strip() for g in gold]
    aliases = [a for a in dict.fromkeys(aliases) if a]
    if len(aliases) > MAX_ALIASES:
        raise InvalidQuestion(f"gold has {len(aliases)} aliases; at most {MAX_ALIASES}")
    return aliases or None


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = sorted({type(v).__name__ for v in value if not isinstance(v, str)})
        return f"a list holding {', '.join(inner)}"
    return type(value).__name__
