"""Jobs whose messages were lost (the broker restarted empty, a submit died between commit and send)
finish with no human: the database knows every queued job, and a sweep re-sends those that have
waited on a tier longer than `redrive_after_s` while that tier's queue holds nothing they could be
waiting behind. Every tier step is idempotent, so re-sending a job that was merely slow is harmless.

One thread per worker process sweeps every `sweep_interval_s`; a database lock lets one sweep at a time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from cascade.storage.engine import session_scope
from cascade.storage.locks import try_lock
from cascade.storage.repository import stranded_jobs
from cascade.workers.runtime.dispatch import send_jobs
from cascade.workers.runtime.settings import Settings

log = logging.getLogger("cascade.sweeper")
PAGE = 10_000  # job ids read per query


@dataclass
class TierSweep:
    tier: str
    queue_depth: int | None  # messages waiting in the tier's queue (None: the broker did not say)
    stranded: int = 0  # jobs queued on the tier in the database longer than the age given
    resent: int = 0

    @property
    def waiting(self) -> bool:
        """Stranded jobs may still be behind messages in the queue: not re-sent unless asked."""
        return bool(self.queue_depth)

    def as_dict(self) -> dict:
        return {"tier": self.tier, "queue_depth": self.queue_depth, "stranded": self.stranded, "resent": self.resent}


def queue_depth(app, queue: str) -> int | None:
    """Messages ready in `queue` (those a worker holds unacked are not counted); None when the broker
    cannot be asked. A queue the broker does not know (Redis drops empty ones; a restarted RabbitMQ
    forgets undeclared ones) holds nothing."""
    from amqp.exceptions import NotFound
    from kombu.exceptions import ChannelError

    try:
        with app.connection_for_read() as connection:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except (ChannelError, NotFound):
        return 0
    except Exception:
        log.debug("cannot read the depth of %s", queue, exc_info=True)
        return None


def sweep(app, settings: Settings, *, older_than_s: float, dry_run: bool = False, include_waiting: bool = False) -> list[TierSweep]:
    """Re-send the jobs queued on each tier for longer than `older_than_s` whose messages are gone,
    page by page until none remain. A tier whose queue still holds messages is only counted, unless
    `include_waiting`."""
    url = settings.require_database()
    report = []
    for tier in settings.config.tiers:
        depth = queue_depth(app, tier.queue)
        result = TierSweep(tier.name, depth)
        send = not dry_run and (include_waiting or not depth)
        after = None
        while True:
            with session_scope(url) as session:
                page = stranded_jobs(session, older_than_s=older_than_s, tier=tier.name, after=after, limit=PAGE)
            result.stranded += len(page)
            if send and page:
                send_jobs(app, tier, page)
                result.resent += len(page)
            if len(page) < PAGE:
                break
            after = page[-1]
        report.append(result)
    return report


class Sweeper(threading.Thread):
    """Sweeps every `settings.sweep_interval_s` in the background of a worker process."""

    LOCK = "cascade.sweeper"

    def __init__(self, app, settings: Settings):
        super().__init__(name="cascade-sweeper", daemon=True)
        self.app = app
        self.settings = settings
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.sweep_interval_s):
            try:
                self.sweep_once()
            except Exception:  # the database or broker is down: the next round tries again
                log.warning("sweep failed; trying again in %.0f s", self.settings.sweep_interval_s, exc_info=True)

    def sweep_once(self) -> list[TierSweep]:
        with try_lock(self.settings.require_database(), self.LOCK) as held:
            if not held:
                return []
            report = sweep(self.app, self.settings, older_than_s=self.settings.redrive_after_s)
        for tier in report:
            if tier.resent:
                log.warning("re-sent %d job(s) on tier %s whose messages were lost", tier.resent, tier.tier)
        return report

    def stop(self) -> None:
        self.stopped.set()
