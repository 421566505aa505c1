"""The openai backend against real HTTP servers on loopback: P(T) parsing, usage, retries, failures."""

import math
import socket
import time

import pytest

from cascade.router.config import Tier
from cascade.router.prompts import make_question
from cascade.workers.backends import ItemFailure, ScoredAnswer, create_backend
from tests.integration.openai_peer import ScriptedServer, completion

QUESTION = make_question("Which planet is largest?", ["Mars", "Jupiter", "Venus", "Earth"])


def backend(url, **kw):
    tier = Tier(name="api", backend="openai", model="scripted", base_url=url, **({"max_retries": 2, "timeout_s": 5.0} | kw))
    b = create_backend(tier)
    b.load()
    return b


def test_p_t_letters_and_usage_come_from_the_response(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with ScriptedServer([(200, completion("B", -0.1, (("A", -2.5), (" B", -3.0), ("Hello", -5.0))), {}, 0)]) as server:
        [scored] = backend(server.url).score([QUESTION])
    assert isinstance(scored, ScoredAnswer) and scored.answer == "B"
    p_b = math.exp(-0.1) + math.exp(-3.0)  # "B" and " B" are one letter
    assert scored.p_t == pytest.approx(p_b)
    assert scored.p_t_options == pytest.approx(p_b / (p_b + math.exp(-2.5)))
    assert (scored.tokens_in, scored.tokens_out) == (42, 1)
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["messages"][0]["content"].startswith("Which planet is largest?\nA. Mars")
    assert server.requests[0]["auth"] == "Bearer sk-test-secret"  # read from the environment


def test_a_429_with_retry_after_is_retried_until_the_server_recovers():
    steps = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}, 0)] * 2 + [(200, completion("C"), {}, 0)]
    with ScriptedServer(steps) as server:
        started = time.monotonic()
        [scored] = backend(server.url, max_retries=3).score([QUESTION])
        waited = time.monotonic() - started
    assert isinstance(scored, ScoredAnswer) and scored.answer == "C"
    assert len(server.requests) == 3 and waited >= 2.0  # honoured Retry-After twice


def test_after_the_last_retry_the_question_fails_with_the_reason():
    with ScriptedServer([(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}, 0)]) as server:
        [failed] = backend(server.url, max_retries=1).score([QUESTION])
    assert isinstance(failed, ItemFailure)
    assert "HTTP 503" in failed.error and "after 1 retries" in failed.error
    assert len(server.requests) == 2


def test_a_slow_server_times_out():
    with ScriptedServer([(200, completion(), {}, 3.0)]) as server:
        [failed] = backend(server.url, timeout_s=0.5, max_retries=0).score([QUESTION])
    assert isinstance(failed, ItemFailure) and "timed out after 0.5 s" in failed.error


def test_a_server_that_is_down_fails_the_question_with_the_reason():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    [failed] = backend(f"http://proxy-user:s3cret@127.0.0.1:{port}/v1", max_retries=1).score([QUESTION])
    assert isinstance(failed, ItemFailure) and "cannot reach http://***@127.0.0.1" in failed.error
    assert "s3cret" not in failed.error  # credentials in a base_url never reach a stored error


def test_an_answer_without_any_option_letter_fails_alone():
    with ScriptedServer([(200, completion("Hello", -0.1, (("World", -1.0),)), {}, 0)]) as server:
        [failed] = backend(server.url).score([QUESTION])
    assert isinstance(failed, ItemFailure) and "no option letter" in failed.error


def test_the_api_key_is_required_for_openai_itself_and_never_stored(monkeypatch):
    from cascade.workers.backends import BackendError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendError, match="no API key: set OPENAI_API_KEY"):
        create_backend(Tier(name="gpt", backend="openai", model="gpt-4o")).load()
