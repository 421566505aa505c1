"""Errors as OpenAI's clients expect them: {"error": {"message", "type", "code", "param"}} with a 4xx."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ApiError(Exception):
    """A request that cannot be served as sent; the message says why and how to fix it."""

    def __init__(self, status: int, message: str, *, code: str | None = None, type_: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param
        self.headers, self.extra = headers or {}, extra or {}


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_body(message: str, *, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param, **extra}}


async def api_error_handler(_request: Request, exc: ApiError) -> JSONResponse:
    body = error_body(exc.message, type_=exc.type, code=exc.code, param=exc.param, **exc.extra)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def validation_error_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's errors as one line: the first failing field and what is wrong with it."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return JSONResponse(error_body(message, param=where or None, code="invalid_request"), status_code=422)


ERROR_RESPONSES = {
    400: {"model": ErrorBody, "description": "bad request"},
    401: {"model": ErrorBody, "description": "missing or invalid API key"},
    404: {"model": ErrorBody, "description": "not found"},
    413: {"model": ErrorBody, "description": "too large"},
    422: {"model": ErrorBody, "description": "invalid request"},
    429: {"model": ErrorBody, "description": "rate limit or budget exceeded"},
}
