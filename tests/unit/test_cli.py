"""The CLI without servers: the embedded demo, tiers, and configuration errors."""

import json
import os
import subprocess
import sys

import pytest


def cli(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
    return subprocess.run(
        [sys.executable, "-m", "workers", *args], env=clean | env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_demo_runs_with_no_servers_and_reports_the_promised_fields():
    result = cli("--config", "tiny", "demo", "--json", "--limit", "12", "--reference")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"jobs", "done", "failed", "tiers", "accuracy", "reduced_cc", "pd_pp"} <= set(report)
    assert report["jobs"] == report["done"] == 12 and report["failed"] == 0
    small, large = report["tiers"]["small"], report["tiers"]["large"]
    assert small["answered"] + small["escalated"] == 12
    assert large["answered"] == small["escalated"]
    assert report["pd_pp"] == pytest.approx(report["accuracy"] - report["largest_accuracy"], abs=0.011)
    assert 0 < report["reduced_cc"] < 100


def test_demo_table_names_each_tier():
    result = cli("--config", "tiny", "demo", "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert "small" in result.stdout and "large" in result.stdout and "reduced compute" in result.stdout


def test_tiers_lists_the_builtin_configs_by_name():
    default = cli("tiers", "--json")
    assert default.returncode == 0, default.stderr
    assert [(t["name"], t["model"]) for t in json.loads(default.stdout)] == [
        ("qwen-small", "packaged:qwen2.5-coder-0.5b"),
        ("qwen-large", "packaged:qwen2.5-coder-1.5b"),
    ]
    tiny = cli("--config", "tiny", "tiers", "--json")
    assert [t["name"] for t in json.loads(tiny.stdout)] == ["small", "large"]


def test_a_packaged_model_that_is_not_fetched_names_the_command_that_fetches_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[tiers]]\nname = "a"\nbackend = "transformers"\nmodel = "packaged:smollm2-135m"\n')
    result = cli("--config", str(path), "worker", "--tier", "a", CASCADE_MODELS_DIR=str(tmp_path / "none"), CASCADE_BROKER_URL="memory://", CASCADE_DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite")
    assert result.returncode == 3
    assert "model 'packaged:smollm2-135m' is not fetched yet: run `cascade models fetch smollm2-135m` first" in result.stderr


def test_commands_that_need_a_broker_say_how_to_configure_it():
    result = cli("submit", "q", "-c", "a", "-c", "b")
    assert result.returncode == 2
    assert "no broker configured: pass --broker-url or set CASCADE_BROKER_URL" in result.stderr


def test_unknown_backend_in_a_config_is_refused_at_start_up(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[tiers]]\nname = "a"\nbackend = "tgi"\nmodel = "m"\n')
    result = cli("--config", str(path), "tiers")
    assert result.returncode == 2
    assert "tiers[0] (a).backend: unknown backend 'tgi'; choose one of null, openai, transformers, vllm" in result.stderr
