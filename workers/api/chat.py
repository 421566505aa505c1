"""OpenAI-compatible chat: GET /v1/models and POST /v1/chat/completions, which waits for the job and
answers a normal chat completion with the routing in `cascade` and `x-cascade-*` headers."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from cascade.storage.models import JobStatus
from cascade.workers.api.convert import completion, job_item, model_ids, routing_headers
from cascade.workers.api.http_errors import ERROR_RESPONSES, ApiError, ErrorBody
from cascade.workers.api.schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList

router = APIRouter(tags=["openai"])
STARTED = int(time.time())


@router.get("/v1/models", response_model=ModelList, responses={401: ERROR_RESPONSES[401], 429: ERROR_RESPONSES[429]})
def list_models(request: Request) -> ModelList:
    """`cascade` routes through every tier; `cascade/TIER` pins a job to one tier."""
    state = request.app.state.cascade
    state.auth.caller(request, spends=False)
    return ModelList(data=[ModelCard(id=name, created=STARTED, owned_by="cascade") for name in model_ids(state.config)])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**ERROR_RESPONSES, 409: {"model": ErrorBody, "description": "external id names another job"},
               504: {"model": ErrorBody, "description": "the answer is not ready yet: poll GET /v1/jobs/{job_id}"}},
)
async def chat_completions(body: ChatCompletionRequest, request: Request, response: Response) -> dict:
    state = request.app.state.cascade
    caller = await run_in_threadpool(state.auth.caller, request, spends=True)
    item = job_item(body, state.config)
    job_id = (await run_in_threadpool(state.submit, [item], caller))[0]
    timeout_s = body.cascade.timeout_s if body.cascade and body.cascade.timeout_s else state.options.wait_timeout_s
    job = await state.wait(job_id, caller, timeout_s)
    if job is None:
        raise ApiError(504, f"job {job_id} is still queued after {timeout_s:g} s; poll GET /v1/jobs/{job_id} for its answer",
                       code="timeout", type_="timeout", headers={"x-cascade-job-id": job_id}, extra={"job_id": job_id})
    if job["status"] != JobStatus.DONE.value:
        raise ApiError(422, f"job {job_id} {job['status']}: {job['error'] or 'no answer'}", code="job_failed",
                       headers={"x-cascade-job-id": job_id}, extra={"job_id": job_id})
    response.headers.update(routing_headers(job))
    return completion(job, body.model)
