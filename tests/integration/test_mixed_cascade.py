"""A local transformers tier escalating to an OpenAI-compatible tier, end to end through Celery and PostgreSQL."""

import pytest

from tests.integration.conftest import Cluster
from tests.integration.openai_peer import ScriptedServer, completion

pytestmark = pytest.mark.integration

CONFIG = """
[[tiers]]
name = "local-{tag}"
backend = "transformers"
model = "tiny:small"
tau_t = 1.0

[[tiers]]
name = "api-{tag}"
backend = "openai"
model = "scripted"
base_url = "{url}"
max_retries = 0
price_in_usd_per_1m = 2.5
price_out_usd_per_1m = 10.0
"""


def test_local_tier_escalates_to_the_api_tier_and_costs_are_recorded(redis_url, database_url, tmp_path):
    import uuid

    tag = uuid.uuid4().hex[:6]
    steps = [(200, completion("D", -0.05, prompt_tokens=120), {}, 0)] * 3 + [(500, {"error": {"message": "boom"}}, {}, 0)]
    with ScriptedServer(steps) as server:
        config = tmp_path / "mixed.toml"
        config.write_text(CONFIG.format(tag=tag, url=server.url))
        cluster = Cluster(config, redis_url, database_url, tmp_path).start_all()
        try:
            ids = [cluster.client.submit(f"Mixed question {i}?", ["a", "b", "c", "d"]) for i in range(4)]
            jobs = [cluster.client.result(j, timeout=60) for j in ids]
        finally:
            cluster.stop()
    done = [j for j in jobs if j["status"] == "done"]
    failed = [j for j in jobs if j["status"] == "failed"]
    assert len(done) == 3 and len(failed) == 1
    for job in done:
        local, api = job["path"]
        assert (local["decision"], api["decision"], job["final_tier"], job["answer"]) == ("escalated", "accepted", f"api-{tag}", "D")
        assert api["p_t"] == pytest.approx(2.718281828 ** -0.05) and api["p_ik"] is None
        assert (api["tokens_in"], api["tokens_out"]) == (120, 1)
        assert api["cost_usd"] == pytest.approx((120 * 2.5 + 10.0) / 1e6) and job["cost_usd"] == api["cost_usd"]
        assert api["flops"] == 0 and local["flops"] > 0  # a hosted model's parameter count is unknown
    assert "HTTP 500" in failed[0]["error"] and failed[0]["path"][-1]["decision"] == "failed"
