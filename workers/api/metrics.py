"""Prometheus metrics at /metrics, read from the database when scraped (so they are the database's
numbers, whichever process did the work) plus the broker's queue depths and this process's HTTP
requests. A scrape reuses its readings for CACHE_S."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import Float, case, cast, func, select

from cascade.storage.bulk import is_postgres
from cascade.storage.engine import session_scope
from cascade.storage.models import ApiKey, Attempt, Job

CACHE_S = 2.0
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

METRIC_NAMES = {
    "cascade_jobs": "jobs by status (queued, done, failed, cancelled) and kind",
    "cascade_jobs_finished_total": "finished jobs by final tier and outcome (done, failed, abstained)",
    "cascade_attempts_total": "tier attempts by tier and decision (accepted, escalated, failed, abstained)",
    "cascade_escalation_rate": "escalated / attempts, per tier",
    "cascade_job_latency_seconds": "histogram: submission to final answer, finished jobs",
    "cascade_queue_depth": "messages waiting in each tier queue (Redis brokers)",
    "cascade_flops_total": "compute of the jobs' attempts (FLOPs), per tier; shadow audits apart",
    "cascade_cost_usd_total": "USD of the jobs' attempts, per tier",
    "cascade_key_cost_usd_total": "USD of the jobs each API key submitted",
    "cascade_http_requests_total": "HTTP requests this service process answered, by route and status",
}


class DatabaseCollector:
    """The database-backed families, collected on scrape."""

    def __init__(self, database_url: str, config, app) -> None:
        self.database_url, self.config, self.app = database_url, config, app
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def collect(self) -> Iterator:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_S:
                self._cached = (time.monotonic(), self._read())
            return iter(self._cached[1])

    def describe(self) -> list:
        return []  # collected lazily: never query the database at registration

    def _read(self) -> list:
        families = []
        with session_scope(self.database_url) as session:
            jobs = GaugeMetricFamily("cascade_jobs", METRIC_NAMES["cascade_jobs"], labels=["status", "kind"])
            for status, kind, n in session.execute(select(Job.status, Job.kind, func.count()).group_by(Job.status, Job.kind)):
                jobs.add_metric([status, kind or "choice"], n)
            families.append(jobs)

            outcome = case((Job.status == "done", case((Job.answer.is_(None), "abstained"), else_="done")), else_=Job.status)
            finished = CounterMetricFamily("cascade_jobs_finished", METRIC_NAMES["cascade_jobs_finished_total"], labels=["tier", "outcome"])
            for tier, result, n in session.execute(
                select(Job.final_tier, outcome, func.count()).where(Job.status.in_(["done", "failed"])).group_by(Job.final_tier, outcome)
            ):
                finished.add_metric([tier or "", result], n)
            families.append(finished)

            attempts = CounterMetricFamily("cascade_attempts", METRIC_NAMES["cascade_attempts_total"], labels=["tier", "decision"])
            flops = CounterMetricFamily("cascade_flops", METRIC_NAMES["cascade_flops_total"], labels=["tier"])
            usd = CounterMetricFamily("cascade_cost_usd", METRIC_NAMES["cascade_cost_usd_total"], labels=["tier"])
            rate = GaugeMetricFamily("cascade_escalation_rate", METRIC_NAMES["cascade_escalation_rate"], labels=["tier"])
            per_tier: dict[str, dict[str, float]] = {}
            for tier, decision, n, f, u in session.execute(
                select(Attempt.tier, Attempt.decision, func.count(), func.sum(Attempt.flops), func.sum(Attempt.cost_usd))
                .where(Attempt.shadow.is_(False)).group_by(Attempt.tier, Attempt.decision)
            ):
                attempts.add_metric([tier, decision], n)
                totals = per_tier.setdefault(tier, {"n": 0, "escalated": 0, "flops": 0.0, "usd": 0.0})
                totals["n"] += n
                totals["escalated"] += n if decision == "escalated" else 0
                totals["flops"] += float(f or 0.0)
                totals["usd"] += float(u or 0.0)
            for tier, totals in per_tier.items():
                flops.add_metric([tier], totals["flops"])
                usd.add_metric([tier], totals["usd"])
                rate.add_metric([tier], totals["escalated"] / totals["n"] if totals["n"] else 0.0)
            families += [attempts, flops, usd, rate]

            by_key = CounterMetricFamily("cascade_key_cost_usd", METRIC_NAMES["cascade_key_cost_usd_total"], labels=["key"])
            for name, u in session.execute(
                select(ApiKey.name, func.coalesce(func.sum(Job.cost_usd), 0.0)).join(Job, Job.api_key_id == ApiKey.id).group_by(ApiKey.name)
            ):
                by_key.add_metric([name], float(u or 0.0))
            families.append(by_key)
            families.append(self._latency(session))
        families.append(self._queues())
        return families

    def _latency(self, session) -> HistogramMetricFamily:
        if is_postgres(session):
            elapsed = func.extract("epoch", Job.finished_at - Job.created_at)
        else:
            elapsed = (func.julianday(Job.finished_at) - func.julianday(Job.created_at)) * 86_400.0
        elapsed = cast(elapsed, Float)
        columns = [func.sum(case((elapsed <= b, 1), else_=0)) for b in LATENCY_BUCKETS_S]
        row = session.execute(select(func.count(), func.coalesce(func.sum(elapsed), 0.0), *columns).where(Job.finished_at.is_not(None))).one()
        count, total, *cumulative = row
        buckets = [(f"{b:g}", int(c or 0)) for b, c in zip(LATENCY_BUCKETS_S, cumulative)] + [("+Inf", int(count or 0))]
        histogram = HistogramMetricFamily("cascade_job_latency_seconds", METRIC_NAMES["cascade_job_latency_seconds"])
        histogram.add_metric([], buckets, float(total or 0.0))
        return histogram

    def _queues(self) -> GaugeMetricFamily:
        from cascade.workers.runtime.sweeper import queue_depth

        depth = GaugeMetricFamily("cascade_queue_depth", METRIC_NAMES["cascade_queue_depth"], labels=["queue"])
        for tier in self.config.tiers:
            waiting = queue_depth(self.app, tier.queue)
            if waiting is not None:
                depth.add_metric([tier.queue], waiting)
        return depth


def make_registry(database_url: str, config, app) -> tuple[CollectorRegistry, Counter]:
    """A registry of this service's own (never the global one), and its HTTP request counter."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(database_url, config, app))
    requests = Counter("cascade_http_requests", METRIC_NAMES["cascade_http_requests_total"], ["route", "status"], registry=registry)
    return registry, requests
