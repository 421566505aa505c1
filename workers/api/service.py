"""The FastAPI application: one `ServiceState` (settings, client, keys, metrics, webhook sender) per
process, built by `create_api` and shared by the route modules through `request.app.state`."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from cascade.router.errors import RouterError
from cascade.storage.engine import session_scope
from cascade.storage.models import JobStatus
from cascade.storage.repository import ExternalIdConflict, job_statuses
from cascade.workers.api.auth import Authenticator, Caller
from cascade.workers.api.guard import Guard
from cascade.workers.api.http_errors import ApiError, api_error_handler, error_body, validation_error_handler
from cascade.workers.api.metrics import make_registry
from cascade.workers.api.submitter import GroupSubmitter
from cascade.workers.api.webhook_sender import WebhookSender, check_callback_url
from cascade.workers.client import Cascade, JobNotFound
from cascade.workers.runtime.dispatch import BrokerUnavailable
from cascade.workers.runtime.settings import Settings

DEFAULT_WAIT_S = 60.0
POLL_S = 0.01  # the longest pause between two looks at a waiting job's status  # how long a chat completion waits for its job before answering 504 with the job id


@dataclass
class ServiceOptions:
    auth: bool = True  # False: no keys asked for (a local trial); every job is anonymous
    webhooks: bool = True  # deliver callbacks from this process
    wait_timeout_s: float = DEFAULT_WAIT_S
    webhook_hosts: set[str] | None = None  # None: any host a callback names (except this service)
    own_addresses: set[tuple[str, int]] = field(default_factory=set)  # where this service listens


class ServiceState:
    def __init__(self, settings: Settings, options: ServiceOptions):
        self.settings, self.options = settings, options
        self.config = settings.config
        self.client = Cascade(settings=settings)
        self.auth = Authenticator(settings.require_database(), required=options.auth)
        self.registry, self.requests = make_registry(settings.require_database(), self.config, self.client.app)
        self.sender = WebhookSender(settings.require_database()) if options.webhooks else None
        self.grouped = GroupSubmitter(lambda items, key_id: self.client.submit_many(items, api_key_id=key_id), after_commit=BrokerUnavailable)

    def submit(self, items: list[dict[str, Any]], caller: Caller) -> list[str]:
        """Queue jobs for a caller; bad input becomes a 400 naming the problem."""
        for item in items:
            if item.get("callback_url"):
                check_callback_url(item["callback_url"], own=self.options.own_addresses, allowed_hosts=self.options.webhook_hosts)
        try:
            return self.grouped.submit(items, caller.key_id)
        except ExternalIdConflict as exc:
            raise ApiError(409, str(exc), code="external_id_conflict", param="external_id") from None
        except (RouterError, ValueError) as exc:
            raise ApiError(400, str(exc.args[0] if exc.args else exc), code="invalid_job") from None
        except BrokerUnavailable as exc:
            raise ApiError(503, str(exc), code="broker_unavailable", type_="server_error") from None

    def job(self, job_id: str, caller: Caller) -> dict[str, Any]:
        """A job the caller may see (its own key's), or 404."""
        try:
            job = self.client.status(job_id)
        except (JobNotFound, ValueError):
            job = None
        if job is None or (self.auth.required and job.get("api_key_id") != (str(caller.key_id) if caller.key_id else None)):
            raise ApiError(404, f"no job {job_id!r} for this key", code="job_not_found")
        return job

    async def wait(self, job_id: str, caller: Caller, timeout_s: float) -> dict[str, Any] | None:
        """The job once it has ended, or None after `timeout_s`. Polls its status alone (one indexed
        lookup) every POLL_S at most, then reads the whole job once."""
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        key = uuid.UUID(job_id)
        while True:
            status = await run_in_threadpool(self._status, key)
            if status != JobStatus.QUEUED.value:
                return await run_in_threadpool(self.job, job_id, caller)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, POLL_S)

    def _status(self, job_id: uuid.UUID) -> str | None:
        with session_scope(self.client.database_url) as session:
            return job_statuses(session, [job_id]).get(job_id)


def create_api(settings: Settings, options: ServiceOptions | None = None) -> FastAPI:
    """The application for `cascade serve` (and tests): nothing connects until a request comes."""
    from cascade.workers.api import chat, jobs, openai_batches, ops

    options = options or ServiceOptions()
    state = ServiceState(settings, options)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if state.sender is not None:
            state.sender.start()
        yield
        if state.sender is not None:
            state.sender.stop()

    api = FastAPI(title="cascade", version="0.1.0", lifespan=lifespan,
                  description="Confidence-routed LLM cascade: OpenAI-compatible chat completions and batches, job endpoints, metrics.")
    api.state.cascade = state
    api.add_exception_handler(ApiError, api_error_handler)
    api.add_exception_handler(RequestValidationError, validation_error_handler)

    @api.exception_handler(DataError)
    async def unstorable(_request: Request, exc: DataError) -> JSONResponse:  # a value the database refuses: the caller's to fix
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return JSONResponse(error_body(f"a value in the request cannot be stored ({reason})", code="invalid_value"), status_code=400)

    @api.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:  # a bug: say so in one line, never leak internals
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); see the service log", type_="server_error"), status_code=500)

    for module in (chat, jobs, openai_batches, ops):
        api.include_router(module.router)
    api.add_middleware(Guard, requests=state.requests)
    return api
