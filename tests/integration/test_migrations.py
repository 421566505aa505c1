import pytest
from sqlalchemy import create_engine, inspect

from cascade.storage.engine import normalise_url
from cascade.storage.migrate import head
from tests.integration.conftest import CONFIGS, cascade_env, run_cli

pytestmark = pytest.mark.integration


def test_db_upgrade_on_an_empty_database_creates_the_audit_tables(fresh_database, redis_url):
    url = fresh_database()
    result = run_cli(["db", "upgrade"], cascade_env(redis_url, url, CONFIGS / "null.toml"))
    assert result.returncode == 0, result.stderr
    assert f"database at revision {head()}" in result.stdout
    engine = create_engine(normalise_url(url))
    try:
        inspector = inspect(engine)
        assert {"jobs", "attempts", "alembic_version"} <= set(inspector.get_table_names())
        attempt_columns = {c["name"] for c in inspector.get_columns("attempts")}
        assert {"job_id", "tier", "model", "answer", "p_t", "p_t_options", "p_ik", "tau_t", "tau_ik", "decision",
                "tokens_in", "tokens_out", "flops", "cost_usd", "latency_ms", "worker", "created_at"} <= attempt_columns
        uniques = inspector.get_unique_constraints("attempts")
        assert any(u["column_names"] == ["job_id", "tier"] for u in uniques)
        assert {"batch_id", "row_id", "row_index"} <= {c["name"] for c in inspector.get_columns("jobs")}
        # free-form jobs (0005): kind, gold aliases, grader, generation options, graded answers, token log-probs
        assert {"kind", "gold_aliases", "grader", "max_tokens", "stop", "correct"} <= {c["name"] for c in inspector.get_columns("jobs")}
        assert {"correct", "p_t_aggregate", "token_logprobs"} <= attempt_columns
        checks = " ".join(c["sqltext"] for c in inspector.get_check_constraints("attempts"))
        assert "abstained" in checks
    finally:
        engine.dispose()
    again = run_cli(["db", "upgrade"], cascade_env(redis_url, url, CONFIGS / "null.toml"))
    assert again.returncode == 0 and f"revision {head()}" in again.stdout  # idempotent
