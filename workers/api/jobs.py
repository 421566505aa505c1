"""Job endpoints for applications that do not want OpenAI's shape: POST /v1/jobs (one or many; ids
at once), GET /v1/jobs/{id}, GET /v1/jobs?external_id=..."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from cascade.workers.api.http_errors import ERROR_RESPONSES, ApiError, ErrorBody
from cascade.workers.api.schemas import JobIds, JobIn, JobList, JobOut, JobsIn

router = APIRouter(tags=["jobs"])


def as_item(job: JobIn) -> dict:
    """A job as the client takes it: `prompt` (free-form) or `question` (with choices)."""
    data = job.model_dump(exclude_none=True)
    data["question"] = data.pop("prompt", None) or data.get("question")
    return data


@router.post("/v1/jobs", status_code=201, response_model=JobIds,
             responses={**ERROR_RESPONSES, 409: {"model": ErrorBody, "description": "external id names another job"}})
def submit_jobs(body: JobsIn | JobIn, request: Request) -> JobIds:
    """Queue one job or many (`{"jobs": [...]}`); returns their ids at once, in order."""
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=True)
    items = [as_item(j) for j in (body.jobs if isinstance(body, JobsIn) else [body])]
    return JobIds(ids=state.submit(items, caller))


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def get_job(job_id: str, request: Request) -> dict:
    """The job: status, answer, and its path through the tiers with signals and costs."""
    state = request.app.state.cascade
    return state.job(job_id, state.auth.caller(request, spends=False))


@router.get("/v1/jobs", response_model=JobList, responses=ERROR_RESPONSES)
def find_jobs(request: Request, external_id: str = Query(..., max_length=255)) -> JobList:
    """The job with this external id (the caller's own), as a list of zero or one."""
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    try:
        job = state.job(external_id, caller)
    except ApiError:  # none, or another key's: as if it did not exist
        return JobList(data=[])
    return JobList(data=[job] if job["external_id"] == external_id else [])  # a job id given here is not an external id
