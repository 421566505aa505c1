"""Audit reports on a database filled by real cascade runs, and on a million synthetic attempts."""

import json
import time
import uuid

import pytest
from sqlalchemy import text

from cascade.storage.engine import session_scope
from cascade.workers.lab.samples import sample_questions
from tests.integration.conftest import CONFIGS, Cluster, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def audited(redis_url, database_url, tmp_path_factory):
    """The shipped sample through the mixed cascade, and again through the largest tier alone."""
    tmp = tmp_path_factory.mktemp("audit")
    cluster = Cluster(CONFIGS / "mixed.toml", redis_url, database_url, tmp).start_all()
    data = tmp / "sample.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_questions()))
    tag = uuid.uuid4().hex[:6]
    names = {"cascade": f"audit-{tag}", "reference": f"audit-{tag}-large"}
    try:
        for key, extra in (("cascade", []), ("reference", ["--start-tier", "mixed-large"])):
            result = run_cli(["batch", "submit", str(data), "--name", names[key], "--quiet", *extra], cluster.env)
            assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            states = [json.loads(run_cli(["batch", "status", n, "--json"], cluster.env).stdout)["status"] for n in names.values()]
            if states == ["completed", "completed"]:
                break
            time.sleep(1)
        yield cluster, names, tmp
    finally:
        cluster.stop()


def test_summary_counts_signals_accuracy_and_pd_agree_with_the_rows(audited):
    cluster, names, _ = audited
    result = run_cli(["audit", "summary", "--batch", names["cascade"], "--reference-batch", names["reference"], "--json"], cluster.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    exported = [json.loads(line) for line in run_cli(["batch", "export", names["cascade"]], cluster.env).stdout.splitlines()]
    reference = {
        r["id"]: r for r in map(json.loads, run_cli(["batch", "export", names["reference"]], cluster.env).stdout.splitlines())
    }
    n = len(exported)
    small, large = report["tiers"]
    kept_small = sum(1 for r in exported if r["final_tier"] == "mixed-small")
    assert (small["tier"], small["attempts"], small["answered"]) == ("mixed-small", n, kept_small)
    assert small["escalated"] == n - kept_small == large["attempts"] == large["answered"]
    assert small["escalation_rate"] == pytest.approx((n - kept_small) / n, abs=1e-4)
    p_t = sorted(r["path"][0]["p_t"] for r in exported)
    assert p_t[0] <= small["p_t"]["p10"] <= small["p_t"]["p50"] <= small["p_t"]["p90"] <= p_t[-1]
    right = sum(r["correct"] for r in exported)
    ref_right = sum(reference[r["id"]]["correct"] for r in exported)
    assert report["accuracy"] == pytest.approx(100 * right / n, abs=0.01)
    assert report["largest_accuracy"] == pytest.approx(100 * ref_right / n, abs=0.01)
    assert report["pd_pp"] == pytest.approx(100 * (right - ref_right) / n, abs=0.01)
    cascade_flops = sum(r["flops"] for r in exported)
    ref_flops = sum(reference[r["id"]]["flops"] for r in exported)
    assert report["reduced_cc"] == pytest.approx(100 * (1 - cascade_flops / ref_flops), abs=0.01)
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"]
    table = run_cli(["audit", "summary", "--batch", names["cascade"]], cluster.env)
    assert table.returncode == 0 and "mixed-small" in table.stdout and "reduced compute" in table.stdout


def test_job_list_filters_by_decision_and_signal_range(audited):
    cluster, names, _ = audited
    rows = json.loads(
        run_cli(["audit", "jobs", "--batch", names["cascade"], "--decision", "escalated", "--p-t", ":0.08", "--limit", "500", "--json"], cluster.env).stdout
    )
    assert rows and all(r["decision"] == "escalated" and r["p_t"] <= 0.08 and r["tier"] == "mixed-small" for r in rows)
    assert all(r["final_tier"] == "mixed-large" for r in rows)
    none = json.loads(run_cli(["audit", "jobs", "--batch", names["cascade"], "--decision", "escalated", "--p-t", "0.5:", "--json"], cluster.env).stdout)
    assert none == []
    shown = run_cli(["audit", "show", rows[0]["job_id"], "--json"], cluster.env)
    assert [step["tier"] for step in json.loads(shown.stdout)["path"]] == ["mixed-small", "mixed-large"]


def test_plots_and_the_html_page_are_written(audited):
    cluster, names, tmp = audited
    out = tmp / "plots"
    result = run_cli(["audit", "plot", "--batch", names["cascade"], "--reference-batch", names["reference"], "--out", str(out)], cluster.env)
    assert result.returncode == 0, result.stderr
    files = {p.name for p in out.iterdir()}
    assert {"p_t_mixed-small.png", "answered_over_time.png", "frontier.png", "report.html"} <= files
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page
    summary = json.loads(run_cli(["audit", "summary", "--batch", names["cascade"], "--reference-batch", names["reference"], "--json"],
                                 cluster.env).stdout)
    assert "PD: n/a" not in page and f"PD {summary['pd_pp']:+.2f} pp" in page  # the page and the summary agree
    assert f"{summary['reduced_cc']:.2f}%" in page and "estimated" not in page
    assert summary["pd_interval"][0] <= summary["pd_pp"] <= summary["pd_interval"][1]
    assert summary["reduced_cc_interval"][0] <= summary["reduced_cc"] <= summary["reduced_cc_interval"][1]


JOBS = 769_231
ESCALATED = "(i % 10 < 3 AND i < 769231)"  # 230,769 jobs: 30.0%, and 1,000,000 attempts in all


@pytest.mark.slow
def test_summary_over_a_million_attempts_is_answered_by_the_database(fresh_database):
    from cascade.router.config import parse_config
    from cascade.storage.audit import AuditFilter
    from cascade.storage.migrate import upgrade
    from cascade.workers.lab.reports import summary

    url = fresh_database()
    upgrade(url)
    batch_id = uuid.uuid4()
    with session_scope(url) as s:
        s.execute(
            text(
                "INSERT INTO batches (id, name, status, id_field, rows_read, rows_rejected, errors, created_at) "
                "VALUES (:id, 'synthetic', 'completed', 'id', :n, 0, '[]', now())"
            ),
            {"id": batch_id, "n": JOBS},
        )
        s.execute(
            text(
                "INSERT INTO jobs (id, batch_id, row_id, row_index, question, choices, gold, status, answer, final_tier, "
                "tokens_in, tokens_out, flops, cost_usd, latency_ms, created_at, finished_at) "
                "SELECT md5(i::text)::uuid, :batch, 'r' || i, i, 'q', '[\"a\", \"b\"]', 'A', 'done', "
                f"CASE WHEN i % 3 = 0 THEN 'B' ELSE 'A' END, CASE WHEN {ESCALATED} THEN 'large' ELSE 'small' END, "
                "100, 1, 0, 0, 5, now() - interval '1 hour' + i * interval '1 ms', now() "
                "FROM generate_series(1, :n) AS i"
            ),
            {"batch": batch_id, "n": JOBS},
        )
        s.execute(
            text(
                "INSERT INTO attempts (job_id, tier, tier_index, model, answer, p_t, p_t_options, decision, tokens_in, "
                "tokens_out, flops, cost_usd, latency_ms, created_at) "
                "SELECT md5(i::text)::uuid, 'small', 0, 'm-small', 'A', (i % 1000) / 1000.0, 0.5, "
                f"CASE WHEN {ESCALATED} THEN 'escalated' ELSE 'accepted' END, 100, 1, 2e9 * 101, 0, 5, "
                "now() - interval '1 hour' + i * interval '1 ms' FROM generate_series(1, :n) AS i "
                "UNION ALL "
                "SELECT md5(i::text)::uuid, 'large', 1, 'm-large', 'B', 0.9, 0.9, 'accepted', 100, 1, 2e10 * 101, 0, 9, "
                f"now() - interval '1 hour' + i * interval '1 ms' FROM generate_series(1, :n) AS i WHERE {ESCALATED}"
            ),
            {"n": JOBS},
        )
        s.execute(text("UPDATE jobs SET flops = 2e9 * 101 + CASE WHEN final_tier = 'large' THEN 2e10 * 101 ELSE 0 END"))
    with session_scope(url) as s:
        s.execute(text("ANALYZE"))
        attempts = s.execute(text("SELECT count(*) FROM attempts")).scalar()
    assert attempts == 1_000_000
    config = parse_config({"tiers": [{"name": "small", "backend": "null", "model": "m-small", "params": 1e9},
                                     {"name": "large", "backend": "null", "model": "m-large", "params": 1e10}]})
    timings = {}
    for label, where in (("all rows", AuditFilter()), ("one batch", AuditFilter(batch_id=batch_id))):
        started = time.perf_counter()
        report = summary(url, config, where)
        timings[label] = time.perf_counter() - started
        small, large = report["tiers"]
        assert small["attempts"] == JOBS and large["attempts"] == 1_000_000 - JOBS
        assert small["escalation_rate"] == pytest.approx(0.3, abs=0.001)
        assert report["reduced_cc"] == pytest.approx(100 * (1 - (JOBS * 2e9 * 101 + (1_000_000 - JOBS) * 2e10 * 101) / (JOBS * 2e10 * 101)), abs=0.01)
    print("\naudit summary over 1,000,000 attempts: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    assert max(timings.values()) < 60
