"""The service's outermost layer, as plain ASGI (cheaper than a Starlette BaseHTTPMiddleware):
refuses NUL characters, which no PostgreSQL text field can hold, in the URL or a JSON body with a
400, and counts every answered request by route and status for /metrics."""

from __future__ import annotations

import json

from prometheus_client import Counter

NUL_IN_URL = b"%00"
NUL_IN_JSON = b"\\u0000"


class Guard:
    def __init__(self, app, requests: Counter):
        self.app, self.requests = app, requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if NUL_IN_URL in scope.get("query_string", b"").lower() or NUL_IN_URL in scope.get("raw_path", b"").lower():
            return await self._refuse(send, scope, "the URL contains a NUL character (%00), which no field can hold")
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").startswith(b"application/json"):
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            if NUL_IN_JSON in body:
                return await self._refuse(send, scope, "the body contains a NUL character (\\u0000), which no text field can hold")
            replayed = False

            async def receive():  # the app reads the body we already took
                nonlocal replayed
                if replayed:
                    return {"type": "http.disconnect"}
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

        status = {"code": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            self.requests.labels(getattr(route, "path", "unmatched"), str(status["code"])).inc()

    async def _refuse(self, send, scope, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_value", "param": None}}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self.requests.labels("unmatched", "400").inc()
