"""Between OpenAI's shapes and the cascade's: a chat request becomes a job, a finished job becomes a
chat completion (usage summed over the tiers it visited, routing in an extension field and headers)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cascade.router.config import CascadeConfig
from cascade.workers.api.http_errors import ApiError
from cascade.workers.api.schemas import ChatCompletionRequest

CASCADE_MODEL = "cascade"


def model_ids(config: CascadeConfig) -> list[str]:
    """`cascade` (the whole cascade) and `cascade/TIER` (a job pinned to that tier)."""
    return [CASCADE_MODEL] + [f"{CASCADE_MODEL}/{t.name}" for t in config.tiers]


def pinned_tier(model: str, config: CascadeConfig) -> str | None:
    """The tier a model name pins jobs to (None: the whole cascade); 404 for a name not served here."""
    if model == CASCADE_MODEL:
        return None
    name = model.removeprefix(f"{CASCADE_MODEL}/")
    if model.startswith(f"{CASCADE_MODEL}/") and name in {t.name for t in config.tiers}:
        return name
    raise ApiError(404, f"model {model!r} is not served here: use one of {', '.join(model_ids(config))} (GET /v1/models)",
                   code="model_not_found", param="model")


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text")


def job_item(request: ChatCompletionRequest, config: CascadeConfig) -> dict[str, Any]:
    """The job a chat request asks for: the last user message is the prompt (or the question, when
    the `cascade` extension carries choices)."""
    if request.stream:
        raise ApiError(400, "stream=true is not supported: an answer is final only once a tier keeps it; send stream=false",
                       code="unsupported_parameter", param="stream")
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        raise ApiError(400, "no user message: the last message with role 'user' is the prompt", param="messages")
    options = request.cascade
    max_tokens = request.max_completion_tokens or request.max_tokens
    item: dict[str, Any] = {"question": text_of(users[-1].content), "tier": pinned_tier(request.model, config)}
    if options and options.choices:
        item["choices"] = options.choices
    else:
        item.update(max_tokens=max_tokens, stop=request.stop)
    if options:
        item.update(gold=options.gold, grader=options.grader, external_id=options.external_id)
    return item


def completion(job: dict[str, Any], model: str) -> dict[str, Any]:
    """A finished job as an OpenAI chat completion, with the routing under `cascade`."""
    tokens_in, tokens_out = int(job["tokens_in"]), int(job["tokens_out"])
    path, final = visited(job)
    return {
        "id": f"chatcmpl-{job['id']}",
        "object": "chat.completion",
        "created": _epoch(job.get("created_at")) or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": job["answer"]}, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
        "cascade": routing(job, path, final),
    }


def visited(job: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The tiers on the job's path (shadow audits are not on it) and its last step."""
    path = [step for step in job["path"] if not step.get("shadow")]
    return path, (path[-1] if path else {})


def routing(job: dict[str, Any], path: list[dict[str, Any]], final: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "tier": job["final_tier"],
        "path": [step["tier"] for step in path],
        "decision": final.get("decision"),
        "p_t": final.get("p_t"),
        "p_ik": final.get("p_ik"),
        "cost_usd": float(job["cost_usd"]),
        "flops": float(job["flops"]),
        "abstained": final.get("decision") == "abstained",
    }


def routing_headers(job: dict[str, Any]) -> dict[str, str]:
    """The routing a client paid for, as response headers."""
    path, final = visited(job)
    fmt = lambda v: "" if v is None else f"{v:.6g}"  # noqa: E731
    return {
        "x-cascade-job-id": job["id"],
        "x-cascade-tier": job["final_tier"] or "",
        "x-cascade-path": ",".join(step["tier"] for step in path),
        "x-cascade-p-t": fmt(final.get("p_t")),
        "x-cascade-p-ik": fmt(final.get("p_ik")),
        "x-cascade-cost-usd": fmt(float(job["cost_usd"])),
        "x-cascade-flops": fmt(float(job["flops"])),
    }


def _epoch(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp()) if iso else None
