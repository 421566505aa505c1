"""What every backend provides: load once, then score a list of multiple-choice questions, or generate
answers to free-form prompts, in as few passes as it can."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade.router.config import Tier
from cascade.router.prompts import OpenPrompt, Question


class BackendError(Exception):
    """A backend cannot start: unknown name, missing packages, or a model that fails to load."""


@dataclass
class ScoredAnswer:
    """A tier's answer to one question, with what the confidence signals need."""

    answer: str
    p_t: float
    p_t_options: float
    tokens_in: int
    tokens_out: int
    hidden: np.ndarray | None = None  # last prompt token's hidden state at the probe layer


@dataclass
class GeneratedAnswer:
    """A tier's free-form answer to one prompt, with each generated token's log-probability."""

    text: str
    token_logprobs: list[float]  # natural log, one per generated token (stop sequences trimmed)
    tokens_in: int
    tokens_out: int
    finish_reason: str = "stop"  # "stop" (end of text or a stop sequence) or "length" (max_tokens)
    hidden: np.ndarray | None = None  # last prompt token's hidden state at the probe layer


@dataclass
class ItemFailure:
    """One question that this tier cannot answer; the rest of its batch goes on."""

    error: str


class Backend(ABC):
    """One tier's model in one worker process."""

    exposes_hidden_states = True  # False: the tier cannot carry a P(IK) probe
    generates_text = True  # False: the backend cannot answer free-form prompts, so no tier may use it

    def __init__(self, tier: Tier):
        self.tier = tier

    @property
    def model_id(self) -> str:
        return self.tier.model

    @abstractmethod
    def load(self) -> None:
        """Load the model; raise BackendError naming the problem when it cannot be loaded."""

    def load_tokenizer(self) -> None:
        """Enough of the model to count tokens; backends with a cheap tokenizer override this."""
        self.load()

    @property
    @abstractmethod
    def params(self) -> float:
        """Parameter count used for compute cost."""

    @property
    def hidden_size(self) -> int | None:
        return None

    @property
    def num_layers(self) -> int | None:
        return None

    @abstractmethod
    def score(self, questions: Sequence[Question], *, layer: int | None = None) -> list[ScoredAnswer | ItemFailure]:
        """Answer every question; capture hidden states at `layer` when it is given."""

    @abstractmethod
    def count_tokens(self, questions: Sequence[Question]) -> list[int]:
        """Prompt tokens each question would cost on this tier, without running the model."""

    @abstractmethod
    def generate(self, prompts: Sequence[OpenPrompt], *, layer: int | None = None) -> list[GeneratedAnswer | ItemFailure]:
        """Answer every free-form prompt greedily, up to its max_tokens or a stop sequence; capture the
        last prompt token's hidden state at `layer` when it is given."""
