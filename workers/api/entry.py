"""What uvicorn imports in each of `cascade serve`'s processes: the app, built from the environment
that the command set (so `--workers N` processes all get the same options)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from cascade.workers.api.service import ServiceOptions, create_api
from cascade.workers.runtime.settings import resolve


def app_from_environment() -> FastAPI:
    host, port = os.environ.get("CASCADE_SERVE_HOST", "127.0.0.1"), int(os.environ.get("CASCADE_SERVE_PORT", "8000"))
    hosts = {h.strip().lower() for h in os.environ.get("CASCADE_SERVE_WEBHOOK_HOSTS", "").split(",") if h.strip()}
    options = ServiceOptions(
        auth=os.environ.get("CASCADE_SERVE_AUTH", "1") != "0",
        webhooks=os.environ.get("CASCADE_SERVE_WEBHOOKS", "1") != "0",
        wait_timeout_s=float(os.environ.get("CASCADE_SERVE_WAIT_S", "60")),
        webhook_hosts=hosts or None,
        own_addresses={(host.lower(), port), ("127.0.0.1", port), ("localhost", port)},
    )
    return create_api(resolve(), options)
