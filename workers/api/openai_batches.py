"""OpenAI's Files and Batch API over the cascade's batch runs: upload a JSONL of chat requests,
create a batch, poll it, cancel it, download the output and error files in OpenAI's format. A bad
line fails alone (it is in the error file); underneath are the same windows, COPY and resume as
`cascade batch submit`."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from cascade.storage import batches as store
from cascade.storage.engine import session_scope
from cascade.storage.files import add_file, get_file, list_files
from cascade.storage.models import Batch, BatchStatus, JobStatus
from cascade.workers.api.convert import completion, job_item
from cascade.workers.api.http_errors import ERROR_RESPONSES, ApiError
from cascade.workers.api.schemas import BatchIn, BatchList, BatchObject, ChatCompletionRequest, FileList, FileObject
from cascade.workers.batch.datasets import DatasetRow, Fields, to_row
from cascade.workers.batch.runs import cancel as cancel_run
from cascade.workers.batch.runs import submit_rows

log = logging.getLogger("cascade.api")
router = APIRouter(tags=["batches"])
MAX_FILE_BYTES = 200 * 1024 * 1024
OUTPUT, ERRORS = "output", "errors"


def _epoch(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def file_object(row) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=_epoch(row.created_at), filename=row.filename, purpose=row.purpose)


@router.post("/v1/files", response_model=FileObject, responses=ERROR_RESPONSES)
def upload_file(request: Request, file: UploadFile = File(...), purpose: str = Form(...)) -> FileObject:
    """Store a batch input file (purpose `batch`: JSONL, one chat request per line)."""
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    if purpose != "batch":
        raise ApiError(400, f"purpose {purpose!r} is not supported here: upload batch inputs with purpose 'batch'", param="purpose")
    content = file.file.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise ApiError(413, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it into several batches", param="file")
    with session_scope(state.client.database_url) as session:
        row = add_file(session, filename=(file.filename or "upload.jsonl")[:255], purpose=purpose, content=content, api_key_id=caller.key_id)
        return file_object(row)


@router.get("/v1/files", response_model=FileList, responses=ERROR_RESPONSES)
def files(request: Request) -> FileList:
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    with session_scope(state.client.database_url) as session:
        return FileList(data=[file_object(r) for r in list_files(session, caller.key_id)])


@router.get("/v1/files/{file_id}", response_model=FileObject, responses=ERROR_RESPONSES)
def file_info(file_id: str, request: Request) -> FileObject:
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    with session_scope(state.client.database_url) as session:
        return file_object(_own_file(session, file_id, caller))


@router.get("/v1/files/{file_id}/content", responses={**ERROR_RESPONSES, 200: {"content": {"application/jsonl": {}}}})
def file_content(file_id: str, request: Request):
    """An uploaded file as it was sent, or a batch's output or error file (generated from the jobs)."""
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    batch_name, kind = _result_file(file_id)
    if batch_name is None:
        with session_scope(state.client.database_url) as session:
            content = _own_file(session, file_id, caller).content
        return StreamingResponse(iter([content]), media_type="application/jsonl")
    with session_scope(state.client.database_url) as session:
        batch = _own_batch(session, batch_name, caller)
        batch_id = batch.id
    return StreamingResponse(_result_lines(state.client.database_url, batch_id, kind), media_type="application/jsonl")


@router.post("/v1/batches", response_model=BatchObject, responses=ERROR_RESPONSES)
def create_batch(body: BatchIn, request: Request) -> BatchObject:
    """Start a batch from an uploaded file; its lines are read and queued in the background."""
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=True)
    with session_scope(state.client.database_url) as session:
        stored = _own_file(session, body.input_file_id, caller)
        if stored.purpose != "batch":
            raise ApiError(400, f"file {stored.id} was uploaded with purpose {stored.purpose!r}, not 'batch'", param="input_file_id")
        content = stored.content
    name = f"batch_{uuid.uuid4().hex}"
    meta = {"endpoint": body.endpoint, "completion_window": body.completion_window, "metadata": body.metadata}
    rows = list(batch_rows(content, state.config))
    with session_scope(state.client.database_url) as session:
        batch, _ = store.create_or_resume(session, name=name, source=f"file {body.input_file_id}", id_field="custom_id")
        batch.api_key_id, batch.input_file_id, batch.request_meta = caller.key_id, body.input_file_id, meta

    def submit() -> None:
        try:
            submit_rows(state.client, rows, name=name, source=f"file {body.input_file_id}", id_field="custom_id",
                        api_key_id=caller.key_id, request_meta=meta)
        except Exception:  # noqa: BLE001 - submit_rows marks the batch failed; the log says why
            log.exception("batch %s could not be submitted", name)

    threading.Thread(target=submit, name=f"submit-{name}", daemon=True).start()
    with session_scope(state.client.database_url) as session:
        return batch_object(session, store.get_batch(session, name))


@router.get("/v1/batches/{batch_id}", response_model=BatchObject, responses=ERROR_RESPONSES)
def get_batch(batch_id: str, request: Request) -> BatchObject:
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    with session_scope(state.client.database_url) as session:
        batch = _own_batch(session, batch_id, caller)
        store.refresh(session, batch)
        return batch_object(session, batch)


@router.get("/v1/batches", response_model=BatchList, responses=ERROR_RESPONSES)
def list_batches(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = Query(None, max_length=64)) -> BatchList:
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    with session_scope(state.client.database_url) as session:
        stmt = select(Batch).where(Batch.input_file_id.is_not(None)).order_by(Batch.created_at.desc())
        if caller.key_id is not None:
            stmt = stmt.where(Batch.api_key_id == caller.key_id)
        found = list(session.scalars(stmt.limit(1000)))
        if after:
            names = [b.name for b in found]
            found = found[names.index(after) + 1:] if after in names else []
        page = found[:limit]
        data = [batch_object(session, b) for b in page]
    return BatchList(data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
                     has_more=len(found) > limit)


@router.post("/v1/batches/{batch_id}/cancel", response_model=BatchObject, responses=ERROR_RESPONSES)
def cancel_batch(batch_id: str, request: Request) -> BatchObject:
    state = request.app.state.cascade
    caller = state.auth.caller(request, spends=False)
    with session_scope(state.client.database_url) as session:
        _own_batch(session, batch_id, caller)
    cancel_run(state.client, batch_id)
    with session_scope(state.client.database_url) as session:
        return batch_object(session, store.get_batch(session, batch_id))


def batch_rows(content: bytes, config) -> Iterator[DatasetRow]:
    """Each line of an OpenAI batch file as a batch row; a line that is not a valid chat request
    becomes a row with its error (it fails alone and lands in the error file)."""
    fields = Fields(id="custom_id")
    limit = config.max_tokens_limit
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            yield DatasetRow(index=number, row_id=f"#{number}", error=f"line {number} is not JSON ({exc})")
            continue
        if not isinstance(raw, dict):
            yield DatasetRow(index=number, row_id=f"#{number}", error=f"line {number} is not a JSON object")
            continue
        custom_id = raw.get("custom_id")
        row_id = custom_id if isinstance(custom_id, str) and custom_id else f"#{number}"
        try:
            if not isinstance(custom_id, str) or not custom_id:
                raise ApiError(400, "custom_id: required, a non-empty string")
            if raw.get("method", "POST") != "POST" or raw.get("url") != "/v1/chat/completions":
                raise ApiError(400, "each line must be a POST to /v1/chat/completions")
            request = ChatCompletionRequest.model_validate(raw.get("body"))
            item = job_item(request, config)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            yield DatasetRow(index=number, row_id=row_id, error=f"body.{where}: {first.get('msg')}" if where else f"body: {first.get('msg')}")
            continue
        except ApiError as exc:
            yield DatasetRow(index=number, row_id=row_id, error=exc.message)
            continue
        pinned = item.pop("tier", None)
        row = to_row(number, {"custom_id": custom_id, **{k: v for k, v in item.items() if v is not None}}, fields, max_tokens_limit=limit)
        yield replace(row, stop_tier=pinned) if row.error is None else row


def batch_object(session, batch: Batch) -> BatchObject:
    """A batch in OpenAI's shape: the same status names, request_counts, output and error files."""
    tally = store.counts(session, batch.id)
    meta = batch.request_meta or {}
    finished = batch.status in (BatchStatus.COMPLETED.value, BatchStatus.CANCELLED.value)
    ended = tally["failed"] + tally["cancelled"]
    created = _epoch(batch.created_at)
    return BatchObject(
        id=batch.name,
        endpoint=meta.get("endpoint", "/v1/chat/completions"),
        input_file_id=batch.input_file_id,
        completion_window=meta.get("completion_window", "24h"),
        status=batch.status,
        output_file_id=f"file-{batch.name}-{OUTPUT}" if finished else None,
        error_file_id=f"file-{batch.name}-{ERRORS}" if finished and ended else None,
        created_at=created,
        in_progress_at=_epoch(batch.submitted_at),
        completed_at=_epoch(batch.finished_at) if batch.status == BatchStatus.COMPLETED.value else None,
        failed_at=_epoch(batch.finished_at) if batch.status == BatchStatus.FAILED.value else None,
        cancelled_at=_epoch(batch.finished_at) if batch.status == BatchStatus.CANCELLED.value else None,
        expires_at=created + int(timedelta(hours=24).total_seconds()) if created else None,
        request_counts={"total": tally["total"], "completed": tally["done"], "failed": ended},
        metadata=meta.get("metadata"),
        errors={"object": "list", "data": [{"message": m} for m in (batch.errors or [])[:10]]} if batch.errors else None,
    )


def _result_file(file_id: str) -> tuple[str | None, str | None]:
    for kind in (OUTPUT, ERRORS):
        suffix = f"-{kind}"
        if file_id.startswith("file-batch_") and file_id.endswith(suffix):
            return file_id[len("file-"): -len(suffix)], kind
    return None, None


def _result_lines(database_url: str, batch_id: uuid.UUID, kind: str) -> Iterator[bytes]:
    """The output file (answered requests) or the error file (failed or cancelled ones), OpenAI's format."""
    with session_scope(database_url) as session:
        for job in store.iter_jobs(session, batch_id):
            data = job.as_dict()
            model = f"cascade/{job.stop_tier}" if job.stop_tier else "cascade"
            if job.status == JobStatus.DONE.value and kind == OUTPUT:
                body = completion(data, model)
                line = {"id": f"batch_req_{job.id.hex}", "custom_id": job.row_id,
                        "response": {"status_code": 200, "request_id": str(job.id), "body": body}, "error": None}
            elif job.status in (JobStatus.FAILED.value, JobStatus.CANCELLED.value) and kind == ERRORS:
                code = "batch_cancelled" if job.status == JobStatus.CANCELLED.value else "invalid_request"
                line = {"id": f"batch_req_{job.id.hex}", "custom_id": job.row_id, "response": None,
                        "error": {"code": code, "message": job.error or job.status}}
            else:
                continue
            yield (json.dumps(line) + "\n").encode("utf-8")


def _own_file(session, file_id: str, caller):
    row = get_file(session, file_id)
    if row is None or (caller.key_id is not None and row.api_key_id != caller.key_id):
        raise ApiError(404, f"no file {file_id!r} for this key", code="file_not_found")
    return row


def _own_batch(session, name: str, caller) -> Batch:
    batch = session.scalars(select(Batch).where(Batch.name == name, Batch.input_file_id.is_not(None))).first()
    if batch is None or (caller.key_id is not None and batch.api_key_id != caller.key_id):
        raise ApiError(404, f"no batch {name!r} for this key", code="batch_not_found")
    return batch
