"""The HTTP service as applications meet it: a real uvicorn server (`cascade serve`) on loopback, real
Redis, PostgreSQL and `cascade worker` processes on the null backend, the official openai client,
keys and budgets, webhooks to a real receiver, Prometheus metrics, and schema-driven fuzzing."""

import hashlib
import hmac
import io
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from cascade.storage.engine import session_scope
from cascade.storage.models import Attempt, Job, WebhookDelivery
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, env, tmp_path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / f"serve-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cascade.workers", "serve", "--port", str(self.port), "--wait-timeout", "20",
             "--webhook-hosts", "127.0.0.1", *extra],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"cascade serve exited: {open(self.log.name).read()}"
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("cascade serve did not start in 60 s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def new_key(env, *options: str) -> dict:
    result = run_cli(["keys", "create", f"k-{uuid.uuid4().hex[:8]}", "--json", *options], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def api(null_cluster, tmp_path_factory):
    server = Server(null_cluster.env, tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key(null_cluster):
    return new_key(null_cluster.env)


def openai_client(api, key):
    import openai

    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=key["key"], max_retries=0, timeout=30)


def call(api, method, path, *, key=None, body=None, raw=None, headers=None):
    """(status, parsed JSON or text, headers) of one request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"{api.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if key:
        request.add_header("Authorization", f"Bearer {key['key']}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text, hdrs = response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, text, hdrs = exc.code, exc.read().decode(), dict(exc.headers)
    try:
        return status, json.loads(text), hdrs
    except json.JSONDecodeError:
        return status, text, hdrs


def test_the_openai_client_gets_an_answer_with_the_routing_in_headers(api, key, null_cluster):
    client = openai_client(api, key)
    raw = client.chat.completions.with_raw_response.create(
        model="cascade", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who painted the Mona Lisa?"}])
    completion = raw.parse()
    job_id = raw.headers["x-cascade-job-id"]
    job = null_cluster.client.status(job_id)
    assert completion.choices[0].message.content == job["answer"] and job["kind"] == "open"
    assert raw.headers["x-cascade-tier"] == job["final_tier"] in ("null-small", "null-large")
    assert raw.headers["x-cascade-path"] == ",".join(step["tier"] for step in job["path"])
    assert float(raw.headers["x-cascade-flops"]) == pytest.approx(job["flops"], rel=1e-5)
    assert float(raw.headers["x-cascade-p-t"]) == pytest.approx(job["path"][-1]["p_t"], rel=1e-5)
    assert completion.usage.prompt_tokens == job["tokens_in"] and completion.usage.completion_tokens == job["tokens_out"]
    assert completion.model_extra["cascade"]["job_id"] == job_id
    assert job["question"] == "Who painted the Mona Lisa?"  # the last user message is the prompt
    assert [m.id for m in client.models.list().data] == ["cascade", "cascade/null-small", "cascade/null-large"]


def test_a_multiple_choice_request_pinned_to_one_tier(api, key):
    client = openai_client(api, key)
    raw = client.chat.completions.with_raw_response.create(
        model="cascade/null-small", messages=[{"role": "user", "content": "Which is a prime?"}],
        extra_body={"cascade": {"choices": ["4", "6", "7", "9"], "gold": "C"}})
    assert raw.parse().choices[0].message.content in "ABCD"
    assert raw.headers["x-cascade-path"] == "null-small"  # pinned: it answers there and never escalates


def test_the_openai_batch_round_trip_with_bad_lines_in_the_error_file(api, key):
    client = openai_client(api, key)
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "cascade", "messages": [{"role": "user", "content": f"Free-form question {i}?"}], "max_tokens": 8}}
             for i in range(12)]
    text = "\n".join(json.dumps(line) for line in lines)
    text += "\n{not json\n" + json.dumps({"custom_id": "nomodel", "method": "POST", "url": "/v1/chat/completions",
                                         "body": {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}})
    text += "\n" + json.dumps({"custom_id": "empty", "method": "POST", "url": "/v1/chat/completions",
                              "body": {"model": "cascade", "messages": [{"role": "user", "content": "  "}]}}) + "\n"
    uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(text.encode())), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"run": "test"})
    assert batch.status == "validating" and batch.metadata == {"run": "test"}
    deadline = time.monotonic() + 60
    while batch.status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (15, 12, 3)
    output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"q{i}" for i in range(12))
    for o in output:
        body = o["response"]["body"]
        assert o["response"]["status_code"] == 200 and o["error"] is None and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"] <= 8 * len(body["cascade"]["path"])
    errors = {e["custom_id"]: e["error"]["message"] for e in map(json.loads, client.files.content(batch.error_file_id).text.splitlines())}
    assert "is not JSON" in errors["#13"] and "model 'gpt-9' is not served here" in errors["nomodel"]
    assert "empty prompt" in errors["empty"]
    assert batch.id in [b.id for b in client.batches.list().data]
    assert client.files.content(uploaded.id).text == text  # the input, as it was sent


def test_cancelling_a_batch_cancels_its_queued_requests(api, key):
    client = openai_client(api, key)
    lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "cascade", "messages": [{"role": "user", "content": f"Cancel me {i}?"}]}} for i in range(3)]
    uploaded = client.files.create(file=("c.jsonl", io.BytesIO("\n".join(map(json.dumps, lines)).encode())), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled", "completed")
    deadline = time.monotonic() + 30
    while cancelled.status not in ("cancelled", "completed") and time.monotonic() < deadline:
        time.sleep(0.2)
        cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status in ("cancelled", "completed")
    counts = cancelled.request_counts
    assert counts.completed + counts.failed == counts.total  # every request ended, answered or cancelled: none lost


def test_job_endpoints_submit_one_or_many_and_read_them_back(api, key, null_cluster):
    tag = uuid.uuid4().hex[:8]
    status, body, _ = call(api, "POST", "/v1/jobs", key=key, body={"prompt": "Name a river.", "external_id": f"one-{tag}"})
    assert status == 201 and len(body["ids"]) == 1
    one = body["ids"][0]
    status, body, _ = call(api, "POST", "/v1/jobs", key=key, body={"jobs": [
        {"prompt": "Name a mountain.", "max_tokens": 4}, {"question": "2 + 2 = ?", "choices": ["3", "4"], "gold": "B"}]})
    assert status == 201 and len(body["ids"]) == 2
    for job_id in [one, *body["ids"]]:
        null_cluster.client.result(job_id, timeout=30)
        status, job, _ = call(api, "GET", f"/v1/jobs/{job_id}", key=key)
        assert status == 200 and job["status"] == "done" and job["path"] and job["path"][0]["p_t"] is not None
    status, found, _ = call(api, "GET", f"/v1/jobs?external_id=one-{tag}", key=key)
    assert status == 200 and [j["id"] for j in found["data"]] == [one]
    other = new_key(null_cluster.env)
    assert call(api, "GET", f"/v1/jobs/{one}", key=other)[0] == 404  # another key's job does not exist for it
    assert call(api, "GET", f"/v1/jobs?external_id=one-{tag}", key=other)[1]["data"] == []


def test_keys_refuse_missing_revoked_rate_limited_and_over_budget_callers(api, null_cluster):
    status, body, _ = call(api, "GET", "/v1/models")
    assert status == 401 and "missing API key" in body["error"]["message"]
    assert call(api, "GET", "/v1/models", key={"key": "csk-not-a-key"})[0] == 401
    limited = new_key(null_cluster.env, "--rpm", "2")
    assert [call(api, "GET", "/v1/models", key=limited)[0] for _ in range(3)] == [200, 200, 429]
    broke = new_key(null_cluster.env, "--budget-usd", "0")
    status, body, _ = call(api, "POST", "/v1/jobs", key=broke, body={"prompt": "Anything?"})
    assert status == 429 and body["error"]["code"] == "insufficient_quota" and "budget exhausted" in body["error"]["message"]
    assert call(api, "GET", "/v1/models", key=broke)[0] == 200  # reading costs nothing
    revoked = new_key(null_cluster.env)
    assert call(api, "GET", "/v1/models", key=revoked)[0] == 200
    assert run_cli(["keys", "revoke", revoked["name"]], null_cluster.env).returncode == 0
    time.sleep(1.1)  # key rows are cached for a second
    assert call(api, "GET", "/v1/models", key=revoked)[0] == 401
    listed = json.loads(run_cli(["keys", "list", "--json"], null_cluster.env).stdout)
    assert all(revoked["key"] not in json.dumps(row) for row in listed)  # a key is never shown again
    log = open(api.log.name).read()
    assert revoked["key"] not in log and limited["key"] not in log


def test_bad_requests_get_a_4xx_with_a_message_and_never_a_5xx(api, key):
    cases = [
        ("POST", "/v1/chat/completions", b"{not json", 422, None),
        ("POST", "/v1/chat/completions", {"model": "cascade", "messages": [{"role": "user", "content": "hi"}], "bogus": 1}, 422, "bogus"),
        ("POST", "/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "not served here"),
        ("POST", "/v1/chat/completions", {"model": "cascade", "messages": [{"role": "user", "content": "x" * 100_001}]}, 400, "longer than"),
        ("POST", "/v1/chat/completions", {"model": "cascade", "messages": [{"role": "user", "content": "hi"}], "stream": True}, 400, "stream"),
        ("POST", "/v1/chat/completions", {"model": "cascade", "messages": [{"role": "system", "content": "hi"}]}, 400, "no user message"),
        ("POST", "/v1/jobs", {"prompt": "hi", "callback_url": "ftp://example.org/x"}, 400, "not an http(s) URL"),
        ("POST", "/v1/jobs", {"prompt": "hi", "callback_url": f"{api.url}/v1/jobs"}, 400, "this service itself"),
        ("POST", "/v1/jobs", {"prompt": "hi", "callback_url": "http://192.0.2.1/hook"}, 400, "is not allowed here"),
        ("POST", "/v1/jobs", {"prompt": "hi", "max_tokens": 100_000}, 400, "above the limit"),
        ("POST", "/v1/jobs", {"prompt": "a\u0000b"}, 400, "NUL"),
        ("GET", "/v1/jobs?external_id=a%00b", None, 400, "NUL"),
        ("POST", "/v1/batches", {"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}, 404, "no file"),
    ]
    for method, path, body, expected, needle in cases:
        raw = body if isinstance(body, bytes) else None
        status, answer, _ = call(api, method, path, key=key, body=None if raw else body, raw=raw)
        assert status == expected, (path, body if not isinstance(body, dict) else list(body), answer)
        assert needle is None or needle in answer["error"]["message"], answer


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on loopback that fails its first two deliveries."""

    received: list = []
    failures_left = 2

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        status = 500 if Receiver.failures_left > 0 else 200
        Receiver.failures_left -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *_args):
        pass


def test_a_webhook_is_signed_retried_after_two_failures_and_every_try_recorded(api, key, null_cluster):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        status, body, _ = call(api, "POST", "/v1/jobs", key=key, body={"prompt": "Webhook me.", "callback_url": url})
        assert status == 201
        job_id = body["ids"][0]
        deadline = time.monotonic() + 30
        while len(Receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.shutdown()
    assert len(Receiver.received) == 3
    headers, payload = Receiver.received[-1]
    expected = "sha256=" + hmac.new(key["webhook_secret"].encode(), payload, hashlib.sha256).hexdigest()
    assert headers["X-Cascade-Signature"] == expected
    job = json.loads(payload)
    assert job["id"] == job_id and job["status"] == "done" and job["answer"]
    with session_scope(null_cluster.client.database_url) as s:
        tries = s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == uuid.UUID(job_id)).order_by(WebhookDelivery.attempt)).all()
        assert [(t.attempt, t.status_code, t.delivered) for t in tries] == [(1, 500, False), (2, 500, False), (3, 200, True)]
        assert s.get(Job, uuid.UUID(job_id)).callback_state == "delivered"


def test_metrics_parse_and_match_the_database(api, key, null_cluster):
    from prometheus_client.parser import text_string_to_metric_families

    ids = null_cluster.client.submit_many([{"question": f"Metric question {i}?"} for i in range(5)])
    null_cluster.client.wait_all(ids, timeout=30)
    time.sleep(2.1)  # past the scrape cache
    status, text, headers = call(api, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    with session_scope(null_cluster.client.database_url) as s:
        by_tier = s.execute(select(Attempt.tier, Attempt.decision, func.count()).where(Attempt.shadow.is_(False))
                            .group_by(Attempt.tier, Attempt.decision)).all()
        jobs_done = s.scalar(select(func.count()).where(Job.status == "done"))
    for tier, decision, n in by_tier:
        assert samples[("cascade_attempts_total", (("decision", decision), ("tier", tier)))] == n
    done = sum(v for (name, labels), v in samples.items() if name == "cascade_jobs" and ("status", "done") in labels)
    assert done == jobs_done
    small = [(t, d, n) for t, d, n in by_tier if t == "null-small"]
    escalated = sum(n for _, d, n in small if d == "escalated") / sum(n for _, _, n in small)
    assert samples[("cascade_escalation_rate", (("tier", "null-small"),))] == pytest.approx(escalated)
    assert samples[("cascade_job_latency_seconds_count", ())] >= jobs_done
    assert ("cascade_queue_depth", (("queue", "tier.null-small"),)) in samples


def test_fuzzing_every_endpoint_from_the_openapi_schema_finds_no_server_error(api, key):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures, calls = {}, []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def exercise(case):
            if isinstance(case.body, dict) and isinstance(case.body.get("cascade"), dict):
                case.body["cascade"]["timeout_s"] = 2  # a pinned job still answers in time; never wait long
            calls.append(case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {key['key']}"}, checks=checks).status_code)

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:2000]
    assert not failures, failures
    assert len(calls) > 100 and max(calls) < 500
