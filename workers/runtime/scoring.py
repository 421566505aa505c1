"""One tier's model in one process: answer a list of jobs (multiple-choice questions are scored,
free-form prompts generated) and decide, per job, keep or escalate; every answer is graded where the
job has a gold."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence

from cascade.router.config import CascadeConfig, Tier
from cascade.router.cost import call_flops, call_usd
from cascade.router.errors import InvalidQuestion, ProbeError
from cascade.router.grading import check_grader, grade
from cascade.router.policy import Decision, decide
from cascade.router.probe import Probe, load_probe
from cascade.router.prompts import JobKind, make_open_prompt, make_question
from cascade.router.signals import aggregate
from cascade.storage.repository import AttemptRecord, PendingJob
from cascade.workers.backends import Backend, BackendError, GeneratedAnswer, ItemFailure, create_backend


class TierScorer:
    """Holds a loaded backend (and probe) for one tier and turns pending jobs into attempt records."""

    def __init__(self, config: CascadeConfig, tier: Tier):
        self.config = config
        self.tier = tier
        self.is_last = config.is_last(tier)
        self.backend: Backend = create_backend(tier)
        self.probes: dict[str, Probe] = {}  # job kind -> its probe (multiple-choice and free-form differ)
        self.worker = socket.gethostname()

    def load(self) -> TierScorer:
        try:
            self.backend.load()
        except BackendError:
            raise
        except Exception as exc:  # a model that fails to load must name itself, not crash later
            raise BackendError(f"tier {self.tier.name}: model {self.tier.model!r} failed to load: {exc}") from exc
        for kind in (JobKind.CHOICE.value, JobKind.OPEN.value):
            path = self.tier.probe_for(kind)
            if path:
                # create_backend has refused probes on backends without hidden states.
                probe = load_probe(path)
                probe.check_compatible(model=self.backend.model_id, layer=self.tier.probe_layer, hidden_size=self.backend.hidden_size)
                trained_on = probe.metadata.get("job_kind", JobKind.CHOICE.value)
                if trained_on != kind:
                    key = "open_probe" if kind == JobKind.OPEN.value else "probe"
                    raise ProbeError(f"tier {self.tier.name}: {path} was trained on {trained_on} questions, so it cannot be the "
                                     f"tier's {key}; train one on {kind} data with `cascade train-pik`")
                self.probes[kind] = probe
        return self

    def run(self, jobs: Sequence[PendingJob]) -> list[AttemptRecord]:
        """Answer every job (one backend call per kind, batched inside) and decide each one."""
        records: list[AttemptRecord] = []
        by_kind: dict[str, list[tuple[PendingJob, object]]] = {}
        for job in jobs:
            try:
                if job.kind == JobKind.OPEN.value:
                    asked = make_open_prompt(
                        job.question, max_tokens=job.max_tokens or self.tier.max_tokens,
                        stop=self.tier.stop if job.stop is None else job.stop, limit=self.tier.max_tokens_limit,
                    )
                else:
                    asked = make_question(job.question, job.choices)
                by_kind.setdefault(job.kind, []).append((job, asked))
            except InvalidQuestion as exc:
                records.append(self._failed(job, str(exc), 0.0))
        for kind, items in by_kind.items():
            records += self._answer(kind, [job for job, _ in items], [asked for _, asked in items])
        return records

    def _answer(self, kind: str, jobs: list[PendingJob], asked: list) -> list[AttemptRecord]:
        probe = self.probes.get(kind)
        layer = probe.layer if probe else None
        started = time.perf_counter()
        if kind == JobKind.OPEN.value:
            outputs = self.backend.generate(asked, layer=layer)
        else:
            outputs = self.backend.score(asked, layer=layer)
        latency_ms = (time.perf_counter() - started) * 1000.0
        p_iks = self._p_ik(probe, outputs)
        records = []
        for job, output, p_ik in zip(jobs, outputs, p_iks):
            if isinstance(output, ItemFailure):
                records.append(self._failed(job, output.error, latency_ms))
                continue
            if isinstance(output, GeneratedAnswer):
                signal = {"answer": output.text.replace("\x00", ""), "p_t": aggregate(output.token_logprobs, self.tier.p_t_aggregate),
                          "p_t_aggregate": self.tier.p_t_aggregate, "token_logprobs": [round(v, 5) for v in output.token_logprobs]}
            else:
                signal = {"answer": output.answer, "p_t": output.p_t, "p_t_options": output.p_t_options}
            verdict = decide(signal["p_t"], p_ik, self.tier, is_last=self.is_last or job.stop_tier == self.tier.name, kind=kind)
            records.append(
                AttemptRecord(
                    job_id=job.id,
                    tier=self.tier.name,
                    tier_index=self.tier.index,
                    model=self.backend.model_id,
                    decision=verdict.decision.value,
                    reason=verdict.reason,
                    correct=grade(job.grader or check_grader(None, kind=kind),
                                  signal["answer"], job.accepted_answers),
                    p_ik=p_ik,
                    tau_t=self.tier.tau_t_for(kind),
                    tau_ik=self.tier.tau_ik_for(kind) if probe is not None else None,
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
                    **signal,
                )
            )
        return records

    def _p_ik(self, probe: Probe | None, outputs) -> list[float | None]:
        if probe is None:
            return [None] * len(outputs)
        import numpy as np

        rows = [i for i, o in enumerate(outputs) if not isinstance(o, ItemFailure) and o.hidden is not None]
        values: list[float | None] = [None] * len(outputs)
        if rows:
            predicted = probe.predict(np.stack([outputs[i].hidden for i in rows]))
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
