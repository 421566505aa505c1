"""Seeded samples of labelled rows, stratified over groups (subjects, domains, relations)."""

from __future__ import annotations

import random


def stratified(groups: dict[str, list[dict]], sample: int | None, seed: int) -> list[dict]:
    """`sample` rows drawn from every group in proportion to its size (at least one each), seeded."""
    total = sum(len(v) for v in groups.values())
    if not sample or sample >= total:
        return [row for rows in groups.values() for row in rows]
    rng = random.Random(seed)
    picked = []
    for rows in groups.values():
        take = max(1, round(sample * len(rows) / total))
        picked += rng.sample(rows, min(take, len(rows)))
    rng.shuffle(picked)
    return picked[:sample]
