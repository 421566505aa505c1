"""Group commit for submissions: requests arriving together (many clients sending one job each) are
stored in one transaction and sent in one message, instead of one of each per request. A request
waits at most WINDOW_S for company. When a group is refused before anything is stored (one bad job,
an external id that names another job), its requests are tried one by one, so each gets its own
answer and nothing else is lost. A broker failure comes after the commit: the jobs are stored (the
sweeper sends them), so every request of the group gets that error and nothing is stored twice."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

WINDOW_S = 0.001  # how long the first request of a group waits for others
MAX_GROUP_JOBS = 512

Submit = Callable[[list[dict[str, Any]], uuid.UUID | None], list[str]]


class GroupSubmitter:
    def __init__(self, submit: Submit, *, after_commit: type[Exception], window_s: float = WINDOW_S, max_jobs: int = MAX_GROUP_JOBS):
        """`after_commit`: the error `submit` raises once the jobs are stored (never retried one by one)."""
        self._submit, self.after_commit, self.window_s, self.max_jobs = submit, after_commit, window_s, max_jobs
        self._waiting: queue.Queue[tuple[list[dict[str, Any]], uuid.UUID | None, Future]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, items: list[dict[str, Any]], key_id: uuid.UUID | None) -> list[str]:
        """The job ids of `items` (in order), once they are stored and sent; raises what submitting them alone would."""
        self._ensure_running()
        done: Future = Future()
        self._waiting.put((items, key_id, done))
        return done.result()

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cascade-submitter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            group = [self._waiting.get()]
            jobs = len(group[0][0])
            while jobs < self.max_jobs:
                try:
                    group.append(self._waiting.get(timeout=self.window_s))
                except queue.Empty:
                    break
                jobs += len(group[-1][0])
            by_key: dict[uuid.UUID | None, list] = {}
            for entry in group:
                by_key.setdefault(entry[1], []).append(entry)
            for key_id, entries in by_key.items():
                self._settle(key_id, entries)

    def _settle(self, key_id: uuid.UUID | None, entries: list) -> None:
        if len(entries) > 1:
            try:
                ids = self._submit([item for items, _, _ in entries for item in items], key_id)
            except self.after_commit as exc:
                for _, _, done in entries:
                    done.set_exception(exc)
                return
            except Exception:  # noqa: BLE001 - refused before the commit: find whose, below
                pass
            else:
                start = 0
                for items, _, done in entries:
                    done.set_result(ids[start : start + len(items)])
                    start += len(items)
                return
        for items, _, done in entries:
            try:
                done.set_result(self._submit(items, key_id))
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request, which raises it
                done.set_exception(exc)
