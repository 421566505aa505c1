"""The live shadow audit on tiny models through real Redis, PostgreSQL and workers: a share of the
answers the small tier keeps is also answered by the last tier, the estimate's interval covers the
PD a full reference run measures on the same jobs, and the audit cost is exactly the shadows'."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from cascade.router.policy import shadowed
from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt, Batch, Job
from tests.integration.conftest import Cluster, run_cli
from tests.integration.faults import ledger

pytestmark = pytest.mark.slow
RATE = 0.5

CONFIG = """
[[tiers]]
name = "shadow-small-{tag}"
backend = "transformers"
model = "tiny:small"
tau_t = 0.08
max_batch = 16
shadow_rate = {rate}

[[tiers]]
name = "shadow-large-{tag}"
backend = "transformers"
model = "tiny:medium"
max_batch = 16
"""


def test_shadows_estimate_the_live_pd_and_cost_apart(redis_url, database_url, tmp_path):
    config = tmp_path / "shadow.toml"
    config.write_text(CONFIG.format(tag=uuid.uuid4().hex[:6], rate=RATE))
    rows = tmp_path / "rows.jsonl"
    with open(rows, "w") as fh:
        for i in range(240):
            fh.write(json.dumps({"id": i, "question": f"Shadowed question number {i} about topic {i % 17}?",
                                 "choices": ["alpha", "beta", "gamma", "delta"], "answer": "ABCD"[(i * 7) % 4]}) + "\n")
    cluster = Cluster(config, redis_url, database_url, tmp_path).start_all()
    small, large = (t.name for t in cluster.client.settings.config.tiers)
    name = f"shadow-{uuid.uuid4().hex[:6]}"
    try:
        for batch, extra in ((name, []), (f"{name}-ref", ["--start-tier", large])):
            assert run_cli(["batch", "submit", str(rows), "--name", batch, "--quiet", *extra], cluster.env).returncode == 0
        for batch in (name, f"{name}-ref"):
            run_cli(["batch", "status", batch], cluster.env)
        from tests.integration.faults import wait_until_finished

        assert wait_until_finished(database_url, [name, f"{name}-ref"], timeout_s=120).lost == 0
        # Shadows may still be in flight after the jobs finished: wait for every one picked.
        with session_scope(database_url) as s:
            kept = s.scalars(
                select(Attempt.job_id).join(Job, Job.id == Attempt.job_id).join(Batch, Batch.id == Job.batch_id)
                .where(Batch.name == name, Attempt.tier == small, Attempt.decision == "accepted")
            ).all()
        picked = {job_id for job_id in kept if shadowed(job_id, RATE)}
        assert 20 <= len(picked) <= len(kept)
        for _ in range(600):
            with session_scope(database_url) as s:
                done = s.scalar(select(func.count()).select_from(Attempt).where(Attempt.shadow.is_(True), Attempt.job_id.in_(picked)))
            if done == len(picked):
                break
            import time

            time.sleep(0.1)
        shown = run_cli(["audit", "live", "--batch", name, "--json"], cluster.env)
        assert shown.returncode == 0, shown.stderr
        live = json.loads(shown.stdout)
        summary = json.loads(run_cli(["audit", "summary", "--batch", name, "--reference-batch", f"{name}-ref", "--json"], cluster.env).stdout)
        drift_ok = run_cli(["audit", "drift", "--batch", name, "--target-pd", "-100", "--confidence", "0.9"], cluster.env)
        drift_bad = run_cli(["audit", "drift", "--batch", name, "--target-pd", "50", "--confidence", "0.9", "--json"], cluster.env)
    finally:
        cluster.stop()

    [tier] = live["tiers"]
    assert tier["tier"] == small and tier["shadowed"] == len(picked) and tier["kind"] == "gold"
    low, high = tier["pd_interval"]
    assert low <= summary["pd_pp"] <= high, (tier, summary["pd_pp"])  # the live estimate covers the measured PD
    # Audit cost is exactly the shadows' and stays out of the jobs' own totals.
    with session_scope(database_url) as s:
        shadow_flops = s.scalar(select(func.sum(Attempt.flops)).where(Attempt.shadow.is_(True), Attempt.job_id.in_(picked)))
    assert live["audit_cost"]["attempts"] == len(picked) and live["audit_cost"]["flops"] == pytest.approx(shadow_flops)
    assert summary["audit_cost"]["attempts"] == len(picked)
    assert ledger(database_url, [name]).clean()  # totals equal the sum of each job's own (non-shadow) attempts
    assert drift_ok.returncode == 0 and "holds" in drift_ok.stdout
    assert drift_bad.returncode == 6 and json.loads(drift_bad.stdout)["verdict"] == "breaks"

    # Thresholds refitted on the traffic itself: escalated jobs plus the shadowed kept ones.
    refit = run_cli(["calibrate", "--tier", small, "--from-db", "--target-pd", "-5", "--json"], cluster.env)
    assert refit.returncode in (0, 3), refit.stderr
    fitted = json.loads(refit.stdout)
    assert fitted["production"]["kept_shadowed"] == len(picked) and fitted["production"]["graded"] == fitted["production"]["jobs"]
    assert fitted["frontier"] and (fitted["chosen"] is None or fitted["chosen"]["pd_pp"] >= -5)
    refused = run_cli(["calibrate", "--tier", small, "--from-db", "--target-pd", "-5", "--confidence", "0.9"], cluster.env)
    assert refused.returncode == 2 and "weighted sample" in refused.stderr
