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


def test_a_database_that_is_down_or_empty_is_one_line_with_the_fix(tmp_path):
    down = cli("--config", "tiny", "status", "x", CASCADE_DATABASE_URL="postgresql://user:secret@127.0.0.1:9/cascade")
    assert down.returncode == 5 and down.stderr.startswith("error: database unreachable") and "CASCADE_DATABASE_URL" in down.stderr
    assert "secret" not in down.stderr and len(down.stderr.splitlines()) == 1
    empty = cli("--config", "tiny", "status", "x", CASCADE_DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite")
    assert empty.returncode == 2 and "run `cascade db upgrade` first" in empty.stderr and len(empty.stderr.splitlines()) == 1


def test_a_broker_that_is_down_keeps_the_job_and_says_so_in_one_line(tmp_path):
    database = f"sqlite:///{tmp_path}/c.sqlite"
    assert cli("--config", "tiny", "db", "upgrade", CASCADE_DATABASE_URL=database).returncode == 0
    down = cli("--config", "tiny", "submit", "Still there?", "-c", "yes", "-c", "no", "--external-id", "kept",
               CASCADE_DATABASE_URL=database, CASCADE_BROKER_URL="redis://:secret@127.0.0.1:9/0")
    assert down.returncode == 5 and "broker unreachable at redis://***@127.0.0.1:9/0" in down.stderr
    assert "1 job(s) are stored as queued" in down.stderr and "secret" not in down.stderr and "Traceback" not in down.stderr
    stored = cli("--config", "tiny", "status", "kept", "--json", CASCADE_DATABASE_URL=database)
    assert stored.returncode == 0 and json.loads(stored.stdout)["status"] == "queued"


def test_missing_files_and_malformed_logs_are_one_line(tmp_path):
    database = f"sqlite:///{tmp_path}/c.sqlite"
    missing = cli("--config", "tiny", "batch", "submit", str(tmp_path / "nope.jsonl"), "--name", "n",
                  CASCADE_DATABASE_URL=database, CASCADE_BROKER_URL="memory://")
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": 1, "question": "Q?", "choices": ["a", "b"]}) + "\n")
    assert cli("--config", "tiny", "db", "upgrade", CASCADE_DATABASE_URL=database).returncode == 0
    env = {"CASCADE_DATABASE_URL": database, "CASCADE_BROKER_URL": "memory://"}
    assert cli("--config", "tiny", "batch", "submit", str(rows), "--name", "kept", **env).returncode == 0
    export = cli("--config", "tiny", "batch", "export", "kept", "-o", str(tmp_path / "missing" / "out.jsonl"), **env)
    assert export.returncode == 2 and "missing/out.jsonl: No such file or directory" in export.stderr
    assert len(export.stderr.splitlines()) == 1
    log = tmp_path / "log.jsonl"
    log.write_text('{"id": 1, "answer": "A"}\n')
    replayed = cli("replay", str(log), "--chain", "a,b", "--tau-t", "0.9", "--params", "a=1,b=8")
    assert replayed.returncode == 2 and "line 1 has no 'models' object" in replayed.stderr
    assert cli("replay", str(log), "--chain", "a,b", "--tau-t", "1.5").returncode == 2
    for args in (["--eval-split", "test", "--tau-t", "0.9"], ["--tau-t", "0.9", "--target-pd", "-1"]):
        refused = cli("replay", str(log), "--chain", "a,b", *args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_audit_filters_that_can_match_nothing_are_refused(tmp_path):
    database = f"sqlite:///{tmp_path}/c.sqlite"
    assert cli("--config", "tiny", "db", "upgrade", CASCADE_DATABASE_URL=database).returncode == 0
    unknown = cli("--config", "tiny", "audit", "jobs", "--tier", "huge", CASCADE_DATABASE_URL=database)
    assert unknown.returncode == 2 and "unknown tier 'huge': configured tiers are small, large" in unknown.stderr
    for bad in ("0.9:0.8", "0.5:1.5", "a:b"):
        refused = cli("--config", "tiny", "audit", "jobs", "--p-t", bad, CASCADE_DATABASE_URL=database)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, bad
    assert cli("--config", "tiny", "audit", "jobs", "--p-t", "0.5:0.9", CASCADE_DATABASE_URL=database).returncode == 0


def test_impossible_submit_options_are_refused(tmp_path):
    database = f"sqlite:///{tmp_path}/c.sqlite"
    assert cli("--config", "tiny", "db", "upgrade", CASCADE_DATABASE_URL=database).returncode == 0
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": 1, "question": "Q?", "choices": ["a", "b"]}) + "\n")
    chunk = cli("--config", "tiny", "batch", "submit", str(rows), "--name", "n", "--chunk-size", "-5",
                CASCADE_DATABASE_URL=database, CASCADE_BROKER_URL="memory://")
    assert chunk.returncode == 2 and "--chunk-size" in chunk.stderr
    long_id = cli("--config", "tiny", "submit", "Q?", "-c", "a", "-c", "b", "--external-id", "x" * 256,
                  CASCADE_DATABASE_URL=database, CASCADE_BROKER_URL="memory://")
    assert long_id.returncode == 2 and "external_id is longer than 255 characters" in long_id.stderr


def test_the_python_client_refuses_what_no_database_could_store(tmp_path):
    from cascade.router.errors import InvalidQuestion
    from cascade.storage.migrate import upgrade
    from cascade.workers.client import Cascade

    database = f"sqlite:///{tmp_path}/c.sqlite"
    upgrade(database)
    client = Cascade("tiny", broker_url="memory://", database_url=database)
    for question, choices, message in (("What\x00?", ["a", "b"], "question contains a NUL"),
                                       ("Fine?", ["a", "b\ud800"], "choice B is not valid Unicode")):
        with pytest.raises(InvalidQuestion, match=message):
            client.submit(question, choices)


def test_replay_certifies_thresholds_and_prints_bound_and_interval():
    from tests.conftest import shared_file

    log = str(shared_file("data", "replay", "mmlu_llama.jsonl"))
    args = ["replay", log, "--chain", "llama3.1-8b,llama3.1-70b", "--target-pd", "-2", "--fit-split", "test", "--eval-split", "train"]
    result = cli(*args, "--confidence", "0.9", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    fit = out["fit"]
    assert fit["confidence"] == 0.9 and fit["pd_bound"] >= -2.0 and fit["pd_pp"] >= fit["pd_bound"]
    assert out["pd_interval"][0] <= out["pd_pp"] <= out["pd_interval"][1]
    small = cli("replay", log, "--chain", "llama3.1-8b,llama3.1-70b", "--target-pd", "-1", "--fit-split", "train",
                "--eval-split", "test", "--confidence", "0.9")
    assert small.returncode == 0 and "send every question straight to llama3.1-70b" in small.stderr  # 285 questions are too few
    assert "llama3.1-70b alone" in small.stdout
    for bad in (["--confidence", "1.5"], ["--confidence", "0"]):
        refused = cli(*args, *bad)
        assert refused.returncode == 2 and "--confidence" in refused.stderr


def test_free_form_options_are_refused_where_they_do_not_apply(tmp_path):
    mmlu = cli("--config", "tiny", "eval", "mmlu", "--grader", "exact")
    assert mmlu.returncode == 2 and "--grader are for popqa, nq and gsm8k" in mmlu.stderr
    half = cli("--config", "tiny", "eval", "popqa", "--data", "x.csv", "--split", "dev")
    assert half.returncode == 2 and "use all, fit or test" in half.stderr
    choice = cli("--config", "tiny", "submit", "2 + 2 = ?", "-c", "3", "-c", "4", "--gold", "A", "--gold", "B",
                 CASCADE_DATABASE_URL=f"sqlite:///{tmp_path}/c.sqlite", CASCADE_BROKER_URL="memory://")
    assert choice.returncode == 2 and "one correct option" in choice.stderr
    aggregate = cli("--config", "tiny", "calibrate", "--tier", "small", "--data", "x.jsonl", "--target-pd", "-1", "--aggregate", "median")
    assert aggregate.returncode == 2 and "unknown aggregate 'median'" in aggregate.stderr
    keys = cli("keys", "create", "k", "--rpm", "0", CASCADE_DATABASE_URL=f"sqlite:///{tmp_path}/c.sqlite")
    assert keys.returncode == 2 and "--rpm: at least 1" in keys.stderr
