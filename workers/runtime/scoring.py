"""One tier's model in one process: score a list of questions and decide, per question, keep or escalate."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence

from cascade.router.config import CascadeConfig, Tier
from cascade.router.cost import call_flops, call_usd
from cascade.router.errors import InvalidQuestion
from cascade.router.policy import Decision, decide
from cascade.router.probe import Probe, load_probe
from cascade.router.prompts import make_question
from cascade.storage.repository import AttemptRecord, PendingJob
from cascade.workers.backends import Backend, BackendError, ItemFailure, create_backend


class TierScorer:
    """Holds a loaded backend (and probe) for one tier and turns pending jobs into attempt records."""

    def __init__(self, config: CascadeConfig, tier: Tier):
        self.config = config
        self.tier = tier
        self.is_last = config.is_last(tier)
        self.backend: Backend = create_backend(tier)
        self.probe: Probe | None = None
        self.layer: int | None = None
        self.worker = socket.gethostname()

    def load(self) -> TierScorer:
        try:
            self.backend.load()
        except BackendError:
            raise
        except Exception as exc:  # a model that fails to load must name itself, not crash later
            raise BackendError(f"tier {self.tier.name}: model {self.tier.model!r} failed to load: {exc}") from exc
        if self.tier.probe:
            # create_backend has refused probes on backends without hidden states.
            probe = load_probe(self.tier.probe)
            probe.check_compatible(model=self.backend.model_id, layer=self.tier.probe_layer, hidden_size=self.backend.hidden_size)
            self.probe = probe
            self.layer = probe.layer
        return self

    def run(self, jobs: Sequence[PendingJob]) -> list[AttemptRecord]:
        """Score every job in one pass (per backend batch) and decide each one."""
        questions, valid, records = [], [], []
        for job in jobs:
            try:
                questions.append(make_question(job.question, job.choices))
                valid.append(job)
            except InvalidQuestion as exc:
                records.append(self._failed(job, str(exc), 0.0))
        if not valid:
            return records
        started = time.perf_counter()
        outputs = self.backend.score(questions, layer=self.layer)
        latency_ms = (time.perf_counter() - started) * 1000.0
        p_iks = self._p_ik(outputs)
        for job, output, p_ik in zip(valid, outputs, p_iks):
            if isinstance(output, ItemFailure):
                records.append(self._failed(job, output.error, latency_ms))
                continue
            verdict = decide(output.p_t, p_ik, self.tier, is_last=self.is_last)
            records.append(
                AttemptRecord(
                    job_id=job.id,
                    tier=self.tier.name,
                    tier_index=self.tier.index,
                    model=self.backend.model_id,
                    decision=verdict.decision.value,
                    reason=verdict.reason,
                    answer=output.answer,
                    p_t=output.p_t,
                    p_t_options=output.p_t_options,
                    p_ik=p_ik,
                    tau_t=self.tier.tau_t,
                    tau_ik=self.tier.tau_ik if self.probe is not None else None,
                    tokens_in=output.tokens_in,
                    tokens_out=output.tokens_out,
                    flops=call_flops(self.backend.params, output.tokens_in, output.tokens_out),
                    cost_usd=call_usd(
                        output.tokens_in,
                        output.tokens_out,
                        price_in_usd_per_1m=self.tier.price_in_usd_per_1m,
                        price_out_usd_per_1m=self.tier.price_out_usd_per_1m,
                    ),
                    latency_ms=latency_ms,
                    worker=self.worker,
                )
            )
        return records

    def _p_ik(self, outputs) -> list[float | None]:
        if self.probe is None:
            return [None] * len(outputs)
        import numpy as np

        rows = [i for i, o in enumerate(outputs) if not isinstance(o, ItemFailure) and o.hidden is not None]
        values: list[float | None] = [None] * len(outputs)
        if rows:
            predicted = self.probe.predict(np.stack([outputs[i].hidden for i in rows]))
            for i, p in zip(rows, predicted):
                values[i] = float(p)
        return values

    def _failed(self, job: PendingJob, error: str, latency_ms: float) -> AttemptRecord:
        return AttemptRecord(
            job_id=job.id,
            tier=self.tier.name,
            tier_index=self.tier.index,
            model=self.backend.model_id,
            decision=Decision.FAILED.value,
            reason="error",
            error=error,
            latency_ms=latency_ms,
            worker=self.worker,
        )


_scorers: dict[tuple[int, str], TierScorer] = {}
_scorers_lock = threading.Lock()


def scorer_for(config: CascadeConfig, tier_name: str) -> TierScorer:
    """The process's loaded scorer for a tier, loaded on first use and kept."""
    key = (id(config), tier_name)  # the scorer keeps its config alive, so the id stays unique
    with _scorers_lock:
        scorer = _scorers.get(key)
        if scorer is None:
            scorer = TierScorer(config, config.tier(tier_name)).load()
            _scorers[key] = scorer
        return scorer
