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
    if len(picked) < sample:  # per-group rounding fell short: top up from the rows not yet picked
        chosen = {id(row) for row in picked}
        rest = [row for rows in groups.values() for row in rows if id(row) not in chosen]
        picked += rng.sample(rest, sample - len(picked))
    rng.shuffle(picked)
    return picked[:sample]
