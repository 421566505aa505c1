"""The Python API for applications: submit questions or free-form prompts, fetch results.

    from cascade.workers.client import Cascade
    cascade = Cascade()                      # config, broker and database from the environment
    job_id = cascade.submit("2 + 2 = ?", choices=["3", "4"], external_id="q-1")
    print(cascade.result(job_id, timeout=60)["answer"])
    job_id = cascade.submit("Who wrote Middlemarch?", gold=["George Eliot", "Mary Ann Evans"])  # free-form

A producer needs neither torch nor a model: it writes the job row, then enqueues it on the first tier.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from cascade.router.config import CascadeConfig
from cascade.router.job_spec import JobSpec, make_job_spec
from cascade.router.prompts import storable_text
from cascade.storage.engine import session_scope
from cascade.storage.models import JobStatus
from cascade.storage.repository import NewJob, add_jobs, find_job, job_statuses, unstarted
from cascade.workers.runtime.app import create_app
from cascade.workers.runtime.dispatch import BrokerUnavailable, send_jobs
from cascade.workers.runtime.settings import Settings, resolve


class JobNotFound(LookupError):
    """No job has that id or external id."""


class Cascade:
    """A handle on one cascade deployment (its config, broker and database)."""

    def __init__(
        self,
        config: str | Path | CascadeConfig | None = None,
        *,
        broker_url: str | None = None,
        database_url: str | None = None,
        settings: Settings | None = None,
        app=None,
    ):
        self.settings = settings or resolve(config, broker_url=broker_url, database_url=database_url)
        self._app = app

    @cached_property
    def app(self):
        return self._app or create_app(self.settings)

    @property
    def database_url(self) -> str:
        return self.settings.require_database()

    def submit(
        self,
        question: str,
        choices: Sequence[str] | Mapping[str, str] | None = None,
        *,
        external_id: str | None = None,
        gold: str | int | Sequence[str] | None = None,
        grader: str | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
    ) -> str:
        """Queue one job; returns its job id. With `choices` it is a multiple-choice question (gold: the
        letter, index or option text); without, a free-form prompt (gold: one accepted answer or a list,
        graded by `grader`: contains (default), exact or number; `max_tokens` and `stop` default to the
        tier's). A repeated external_id returns the first job's id."""
        item = {"question": question, "choices": choices, "external_id": external_id, "gold": gold, "grader": grader,
                "max_tokens": max_tokens, "stop": stop}
        return self.submit_many([item])[0]

    def submit_many(self, items: Iterable[Mapping[str, Any]], *, api_key_id: uuid.UUID | None = None) -> list[str]:
        """Queue many jobs (the keyword arguments of `submit`, as mappings; `tier` pins a job to one
        tier, `callback_url` asks for a webhook) in one transaction and as few messages as possible."""
        config = self.settings.config
        limit = config.max_tokens_limit
        new_jobs = []
        for item in items:
            spec = make_job_spec(
                item.get("question"), item.get("choices"), gold=item.get("gold"), grader=item.get("grader"),
                max_tokens=item.get("max_tokens"), stop=item.get("stop"), max_tokens_limit=limit,
            )
            external_id = item.get("external_id")
            pinned = None if item.get("tier") is None else config.tier(str(item["tier"])).name
            new_jobs.append(new_job(
                spec, None if external_id is None else storable_text(str(external_id), "external_id", limit=255),
                stop_tier=pinned, api_key_id=api_key_id, callback_url=item.get("callback_url"),
            ))
        added: list[tuple[uuid.UUID, bool]] = [None] * len(new_jobs)  # type: ignore[list-item]
        to_send: dict[str, list[uuid.UUID]] = {}
        by_start: dict[str, list[int]] = {}
        for i, job in enumerate(new_jobs):
            by_start.setdefault(job.stop_tier or config.first.name, []).append(i)
        with session_scope(self.database_url) as session:
            for start, positions in by_start.items():
                stored = add_jobs(session, [new_jobs[i] for i in positions], first_tier=start)
                for i, result in zip(positions, stored):
                    added[i] = result
                # A job submitted before whose message may never have left (the broker was down then).
                again = unstarted(session, [job_id for job_id, created in stored if not created], tier=start)
                to_send[start] = [job_id for job_id, created in stored if created] + again
        # Commit first, then enqueue: a lost message leaves a queued row that the workers' sweeper resends.
        for start, ids in to_send.items():
            if not ids:
                continue
            try:
                send_jobs(self.app, config.tier(start), ids)
            except BrokerUnavailable as exc:
                raise BrokerUnavailable(
                    f"{exc}; {len(ids)} job(s) are stored as queued and will run once it is back "
                    "(workers re-send them, or submit again with the same external ids)"
                ) from exc
        return [str(job_id) for job_id, _ in added]

    def status(self, job_id: str) -> dict[str, Any]:
        """The job with its path through the tiers, as a dict; raises JobNotFound."""
        with session_scope(self.database_url) as session:
            job = find_job(session, str(job_id))
            if job is None:
                raise JobNotFound(f"no job with id or external id {job_id!r}")
            return job.as_dict()

    def result(self, job_id: str, timeout: float | None = None, poll_s: float = 0.05) -> dict[str, Any]:
        """Wait until the job is done or failed and return it; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_s
        while True:
            job = self.status(job_id)
            if job["status"] != JobStatus.QUEUED.value:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still queued on tier {job['pending_tier']} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def wait_all(self, job_ids: Sequence[str], timeout: float | None = None, on_progress=None) -> dict[str, str]:
        """Wait for many jobs; returns their final statuses. `on_progress(finished, total)` is called as they end."""
        ids = [uuid.UUID(str(j)) for j in job_ids]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with session_scope(self.database_url) as session:
                statuses = job_statuses(session, ids)
            finished = sum(1 for s in statuses.values() if s != JobStatus.QUEUED.value)
            if on_progress:
                on_progress(finished, len(ids))
            if finished == len(ids):
                return {str(k): v for k, v in statuses.items()}
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(ids) - finished} of {len(ids)} jobs still queued after {timeout} s")
            time.sleep(0.1)


def new_job(spec: JobSpec, external_id: str | None = None, **extra: Any) -> NewJob:
    """The row to store for a validated job (`extra`: stop_tier, api_key_id, callback_url)."""
    return NewJob(
        question=spec.question,
        choices=list(spec.choices),
        gold=spec.gold,
        external_id=external_id,
        kind=spec.kind,
        gold_aliases=None if spec.gold_aliases is None else list(spec.gold_aliases),
        grader=spec.grader,
        max_tokens=spec.max_tokens,
        stop=None if spec.stop is None else list(spec.stop),
        **extra,
    )


_default: Cascade | None = None


def _client() -> Cascade:
    global _default
    if _default is None:
        _default = Cascade()
    return _default


def submit(question: str, choices: Sequence[str] | Mapping[str, str] | None = None, **options: Any) -> str:
    """Queue a job on the cascade configured by the environment (options as Cascade.submit); returns the job id."""
    return _client().submit(question, choices, **options)


def result(job_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Wait for a job submitted with `submit` and return it."""
    return _client().result(job_id, timeout=timeout)
