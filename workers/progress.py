"""A progress bar with rate and ETA on stderr, or nothing with --quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click


@contextmanager
def progress(label: str, total: int | None, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; shows position, rate and ETA when the total is known."""
    if quiet:
        yield lambda _n: None
        return
    with click.progressbar(
        length=total or 0,
        label=label,
        file=sys.stderr,
        show_eta=bool(total),
        show_percent=bool(total),
        show_pos=True,
        item_show_func=None,
    ) as bar:
        yield bar.update
