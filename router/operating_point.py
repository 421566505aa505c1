"""Choosing among operating points (threshold settings already scored on labelled data): the one
rule for "the cheapest point that meets the accuracy target", its budget twin, and the frontier.

A point is anything with `pd_pp`, `reduced_cc` and `accuracy` (percent), and for the budget rule
`escalation_rate`: calibration points and replay results alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

P = TypeVar("P")
TOLERANCE = 1e-9  # PD and rates are sums of floats: a point exactly on the target meets it


def cheapest_within(points: Iterable[P], *, target_pd: float) -> P | None:
    """The point that saves the most compute with PD >= target_pd (ties: the more accurate); None if none does."""
    ok = [p for p in points if p.pd_pp >= target_pd - TOLERANCE]
    return max(ok, key=lambda p: (p.reduced_cc, p.accuracy)) if ok else None


def most_accurate_within(points: Iterable[P], *, max_escalation: float) -> P | None:
    """The most accurate point escalating at most `max_escalation` (ties: the cheaper); None if none does."""
    ok = [p for p in points if p.escalation_rate <= max_escalation + TOLERANCE]
    return max(ok, key=lambda p: (p.accuracy, p.reduced_cc)) if ok else None


def frontier(points: Sequence[P]) -> list[P]:
    """The cost-accuracy Pareto frontier: no other point is both cheaper and at least as accurate."""
    ordered = sorted(points, key=lambda p: (-p.reduced_cc, -p.accuracy))
    out: list[P] = []
    best_accuracy = -1.0
    for point in ordered:
        if point.accuracy > best_accuracy + 1e-12:
            out.append(point)
            best_accuracy = point.accuracy
    return out
