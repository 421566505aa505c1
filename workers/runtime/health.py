"""Is this deployment able to work: the database and the broker answer, and (in a worker's container)
the worker's heartbeat is fresh. `cascade health` prints it; container health checks run it."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cascade.router.redact import redact
from cascade.workers.runtime.settings import Settings

log = logging.getLogger("cascade.health")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database(settings: Settings) -> Check:
    from sqlalchemy import text

    from cascade.storage.engine import session_scope

    try:
        with session_scope(settings.require_database()) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
        return Check("database", False, redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]))
    return Check("database", True, "answers")


def check_broker(app) -> Check:
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # noqa: BLE001
        return Check("broker", False, redact(str(exc)))
    return Check("broker", True, "answers")


def check_heartbeat(path: str, max_age_s: float) -> Check:
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return Check("heartbeat", False, f"{path} missing: is the worker running?")
    ok = age <= max_age_s
    return Check("heartbeat", ok, f"{age:.0f} s old" + ("" if ok else f", more than {max_age_s:g} s: the worker is stuck or gone"))


class Heartbeat(threading.Thread):
    """Touches `path` every `interval_s` while the process lives."""

    def __init__(self, path: str, interval_s: float = 15.0):
        super().__init__(name="cascade-heartbeat", daemon=True)
        self.path = Path(path)
        self.interval_s = interval_s

    def run(self) -> None:
        while True:
            try:
                self.path.touch()
            except OSError:
                pass
            time.sleep(self.interval_s)


class Watchdog(threading.Thread):
    """Exits the worker process when its consumer has stalled: the process is idle while its tier's
    queue has held messages for `stall_after_s`. Celery's Redis consumer can stop consuming after a
    broker restart without noticing (celery/celery#8030, #9054); exiting lets the supervisor
    (compose's restart policy, systemd, Kubernetes) start a fresh worker, and any message the old
    one held unacked comes back after the visibility timeout."""

    EXIT_STALLED = 70

    def __init__(self, app, settings, tier, activity, *, interval_s: float = 5.0):
        super().__init__(name="cascade-watchdog", daemon=True)
        self.app, self.settings, self.tier, self.activity, self.interval_s = app, settings, tier, activity, interval_s

    def run(self) -> None:
        from cascade.workers.runtime.sweeper import queue_depth

        waiting_since = None
        while True:
            time.sleep(self.interval_s)
            depth = queue_depth(self.app, self.tier.queue)
            if not depth or self.activity.busy:
                waiting_since = None
                continue
            waiting_since = waiting_since or time.monotonic()
            if time.monotonic() - waiting_since >= self.settings.stall_after_s and self.activity.idle_for_s() >= self.settings.stall_after_s:
                log.critical("tier %s: %d message(s) waiting and nothing consumed for %.0f s: exiting so the worker is restarted",
                             self.tier.name, depth, self.settings.stall_after_s)
                os._exit(self.EXIT_STALLED)
