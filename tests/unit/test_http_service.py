"""The HTTP service's own rules, without a server: request conversion, model names, batch lines,
callback URL checks and webhook signatures."""

import hashlib
import hmac
import json

import pytest

from cascade.router.config import parse_config
from cascade.workers.api.convert import completion, job_item, model_ids, pinned_tier
from cascade.workers.api.http_errors import ApiError
from cascade.workers.api.openai_batches import batch_rows
from cascade.workers.api.schemas import ChatCompletionRequest
from cascade.workers.api.webhook_sender import check_callback_url, sign

CONFIG = parse_config({"tiers": [{"name": "small", "backend": "null", "model": "s"}, {"name": "large", "backend": "null", "model": "l"}]})


def request(**body):
    return ChatCompletionRequest.model_validate({"model": "cascade", "messages": [{"role": "user", "content": "Who wrote Emma?"}], **body})


def test_the_last_user_message_is_the_prompt_and_choices_make_a_question():
    item = job_item(request(messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                                      {"role": "user", "content": [{"type": "text", "text": "second"}]}], max_tokens=5), CONFIG)
    assert (item["question"], item["max_tokens"], item["tier"]) == ("second", 5, None)
    question = job_item(request(cascade={"choices": ["Austen", "Eliot"], "gold": "A"}), CONFIG)
    assert question["choices"] == ["Austen", "Eliot"] and "max_tokens" not in question and question["gold"] == "A"


def test_model_names_pin_a_tier_or_are_refused_with_the_names_served():
    assert model_ids(CONFIG) == ["cascade", "cascade/small", "cascade/large"]
    assert pinned_tier("cascade/large", CONFIG) == "large" and pinned_tier("cascade", CONFIG) is None
    with pytest.raises(ApiError, match="use one of cascade, cascade/small, cascade/large") as refused:
        pinned_tier("gpt-4o", CONFIG)
    assert refused.value.status == 404


def test_streaming_and_requests_without_a_user_message_are_refused():
    with pytest.raises(ApiError, match="stream=true is not supported"):
        job_item(request(stream=True), CONFIG)
    with pytest.raises(ApiError, match="no user message"):
        job_item(request(messages=[{"role": "system", "content": "hi"}]), CONFIG)


def test_a_finished_job_becomes_a_chat_completion_with_usage_summed_over_tiers():
    job = {"id": "j1", "answer": "Jane Austen", "tokens_in": 30, "tokens_out": 7, "final_tier": "large", "cost_usd": 0.001,
           "flops": 2e9, "created_at": "2026-12-01T00:00:00+00:00",
           "path": [{"tier": "small", "decision": "escalated", "p_t": 0.2, "p_ik": None},
                    {"tier": "large", "decision": "accepted", "p_t": 0.9, "p_ik": None}]}
    body = completion(job, "cascade")
    assert body["choices"][0]["message"]["content"] == "Jane Austen"
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    assert body["cascade"]["path"] == ["small", "large"] and body["cascade"]["p_t"] == 0.9


def test_batch_lines_become_rows_and_a_bad_line_fails_alone():
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "cascade/small", "messages": [{"role": "user", "content": "Hi?"}], "max_tokens": 4}}
    lines = [json.dumps(good), "{oops", json.dumps({**good, "custom_id": "b", "url": "/v1/embeddings"}),
             json.dumps({**good, "custom_id": "c", "body": {"model": "cascade", "messages": [], "foo": 1}}), json.dumps({**good, "custom_id": ""})]
    rows = list(batch_rows("\n".join(lines).encode(), CONFIG))
    assert (rows[0].row_id, rows[0].kind, rows[0].max_tokens, rows[0].stop_tier, rows[0].error) == ("a", "open", 4, "small", None)
    assert rows[1].row_id == "#2" and "is not JSON" in rows[1].error
    assert "POST to /v1/chat/completions" in rows[2].error
    assert rows[3].row_id == "c" and rows[3].error.startswith("body.")
    assert rows[4].row_id == "#5" and "custom_id" in rows[4].error


def test_callback_urls_must_be_http_not_this_service_and_allowed():
    own = {("127.0.0.1", 8000), ("localhost", 8000)}
    assert check_callback_url("https://hooks.example.org/x", own=own, allowed_hosts=None) == "https://hooks.example.org/x"
    for url, message in [("ftp://x.org/a", "not an http"), ("http://localhost:8000/v1/jobs", "this service itself"),
                         ("http://[::1]:8000/", "this service itself"), ("http://x.org:99999/", "invalid port")]:
        with pytest.raises(ApiError, match=message):
            check_callback_url(url, own=own, allowed_hosts=None)
    assert check_callback_url("http://127.0.0.1:9000/hook", own=own, allowed_hosts={"127.0.0.1"})
    with pytest.raises(ApiError, match="is not allowed here"):
        check_callback_url("http://10.1.2.3/hook", own=own, allowed_hosts={"127.0.0.1"})


def test_a_webhook_signature_is_hmac_sha256_of_the_body():
    body = b'{"id": "j1"}'
    assert sign("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_grouped_submissions_share_one_call_and_a_bad_one_fails_alone():
    import threading

    from cascade.workers.api.submitter import GroupSubmitter

    calls = []

    def submit(items, key_id):
        calls.append(len(items))
        if any(item.get("bad") for item in items):
            raise ValueError("bad job")
        return [f"{key_id}:{item['n']}" for item in items]

    grouped = GroupSubmitter(submit, after_commit=ConnectionError, window_s=0.05)
    results, errors = {}, {}

    def one(n):
        try:
            results[n] = grouped.submit([{"n": n, "bad": n == 3}], "k")
        except ValueError as exc:
            errors[n] = str(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == {n: [f"k:{n}"] for n in range(6) if n != 3} and errors == {3: "bad job"}
    assert calls[0] > 1  # one call for the group first, then one per request to find the bad one


def test_a_failure_after_the_commit_is_never_retried_one_by_one():
    from cascade.workers.api.submitter import GroupSubmitter

    calls = []

    def submit(items, key_id):
        calls.append(len(items))
        raise ConnectionError("broker down; jobs stored")

    grouped = GroupSubmitter(submit, after_commit=ConnectionError)
    with pytest.raises(ConnectionError):
        grouped.submit([{"n": 1}, {"n": 2}], None)
    assert calls == [2]
