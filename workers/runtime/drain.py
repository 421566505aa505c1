"""Micro-batching: a tier task pulls more waiting messages from its own queue, so that one forward
pass serves many single-question messages. Drained messages are acknowledged only after the
attempts they carry are committed; if the worker dies first, the broker delivers them again."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cascade.router.config import Tier
from cascade.workers.runtime.dispatch import SCORE_TASK, is_shadow


@dataclass
class Drained:
    message: object
    job_ids: list[str]

    def ack(self) -> None:
        self.message.ack()

    def give_back(self) -> None:
        self.message.requeue()


class QueueDrainer:
    """Takes extra messages from one tier queue over a connection of its own."""

    def __init__(self, app, tier: Tier):
        self.app = app
        self.tier = tier
        self._connection = None
        self._queue = None

    def _bound_queue(self):
        if self._connection is None:
            self._connection = self.app.connection_for_read()
            self._connection.ensure_connection(max_retries=3)
            self._queue = self.app.amqp.queues[self.tier.queue](self._connection.default_channel)
        return self._queue

    def take(self, want: int, wait_s: float, *, shadow: bool = False) -> list[Drained]:
        """Up to `want` job ids' worth of messages, waiting at most `wait_s` for them to arrive.
        A broken connection (the broker restarted) is dropped, so the next call opens a new one."""
        try:
            return self._take(want, wait_s, shadow)
        except Exception:
            self.close()
            raise

    def _take(self, want: int, wait_s: float, shadow: bool) -> list[Drained]:
        queue = self._bound_queue()
        taken: list[Drained] = []
        count = 0
        deadline = time.monotonic() + wait_s
        while count < want:
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.002)
                continue
            if message.headers.get("task") != SCORE_TASK:
                message.requeue()
                break
            args, kwargs = message.payload[0], message.payload[1]
            if args[0] != self.tier.name or is_shadow(kwargs) != shadow:  # only messages of the same kind share a pass
                message.requeue()
                break
            taken.append(Drained(message, [str(i) for i in args[1]]))
            count += len(args[1])
        return taken

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # already broken
                pass
            self._connection = None


_local = threading.local()


def drainer_for(app, tier: Tier) -> QueueDrainer:
    """One drainer per thread and tier (a kombu connection is not shared between threads)."""
    drainers = getattr(_local, "drainers", None)
    if drainers is None:
        drainers = _local.drainers = {}
    key = (id(app), tier.name)
    if key not in drainers:
        drainers[key] = QueueDrainer(app, tier)
    return drainers[key]
