"""Progress bars with rate and ETA on stderr, or nothing with --quiet/--json."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

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


@contextmanager
def finished_of_total(label: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """Yields `update(finished, total)` for work that reports how much is done so far; the bar
    opens on the first report, when the total is known."""
    with ExitStack() as stack:
        state: dict = {"advance": None, "shown": 0}

        def update(finished: int, total: int) -> None:
            if quiet:
                return
            if state["advance"] is None:
                state["advance"] = stack.enter_context(progress(label, total, quiet=False))
            state["advance"](finished - state["shown"])
            state["shown"] = finished

        yield update
