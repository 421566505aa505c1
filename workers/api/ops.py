"""Operations: /healthz (the process is up), /readyz (the database and the broker answer, naming the
one that does not), /metrics (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cascade.workers.api.schemas import Health
from cascade.workers.runtime.health import check_broker, check_database

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "the database or the broker is down"}})
async def readyz(request: Request):
    state = request.app.state.cascade
    database = await run_in_threadpool(check_database, state.settings)
    broker = await run_in_threadpool(check_broker, state.client.app)
    body = Health(status="ready" if database.ok and broker.ok else "unavailable",
                  database="ok" if database.ok else database.detail, broker="ok" if broker.ok else broker.detail)
    return JSONResponse(body.model_dump(), status_code=200 if database.ok and broker.ok else 503)


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    registry = request.app.state.cascade.registry
    return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)
