"""Is this deployment able to work: the database and the broker answer, and (in a worker's container)
the worker's heartbeat is fresh. `cascade health` prints it; container health checks run it."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cascade.router.redact import redact
from cascade.workers.runtime.settings import Settings


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
