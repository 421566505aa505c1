"""The CLI without servers: the embedded demo, tiers, and configuration errors."""

import json
import os
import subprocess
import sys

import pytest


def cli(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
    return subprocess.run(
        [sys.executable, "-m", "cascade.workers", *args], env=clean | env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_demo_runs_with_no_servers_and_reports_what_audit_summary_reports(tmp_path):
    database = f"sqlite:///{tmp_path}/demo.sqlite"  # kept after the demo, so the audit can read it
    result = cli("--config", "tiny", "demo", "--json", "--limit", "12", "--reference", CASCADE_DATABASE_URL=database)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"jobs", "statuses", "tiers", "accuracy", "reduced_cc", "pd_pp", "batch"} <= set(report)
    assert report["jobs"] == report["statuses"]["done"] == 12 and report["statuses"]["failed"] == 0
    small, large = report["tiers"]
    assert (small["tier"], large["tier"]) == ("small", "large")
    assert small["answered"] + small["escalated"] == 12
    assert large["answered"] == small["escalated"]
    assert report["pd_pp"] == pytest.approx(report["accuracy"] - report["largest_accuracy"], abs=0.011)
    assert report["reduced_cc_estimated"] is False and 0 < report["reduced_cc"] < 100

    reference = report["batches"][1]
    audit = cli("--config", "tiny", "audit", "summary", "--batch", report["batch"], "--reference-batch", reference, "--json",
                CASCADE_DATABASE_URL=database)
    assert audit.returncode == 0, audit.stderr
    audited = json.loads(audit.stdout)
    for key in ("reduced_cc", "accuracy", "pd_pp", "flops", "tokens_in"):
        assert audited[key] == report[key], key


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


def test_calibrate_write_never_changes_a_builtin_config_chosen_by_name():
    result = cli("--config", "tiny", "calibrate", "--tier", "small", "--data", "questions.jsonl", "--target-pd", "-1", "--write")
    assert result.returncode == 2
    assert "built-in config inside the installed package" in result.stderr and "Traceback" not in result.stderr
