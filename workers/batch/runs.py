"""Batch runs: stream a dataset file into the cascade, window by window, and export the results.

A window of rows is read, stored in one fast insert, sorted by prompt length and cut into chunk
messages for the first tier (sorting keeps padding small in the workers' forward passes).
Re-running the same submit resumes: rows already stored are skipped, never duplicated.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from cascade.router.prompts import prompt_size
from cascade.storage import batches as store
from cascade.storage.engine import session_scope
from cascade.storage.models import BatchStatus, utcnow
from cascade.workers.batch.datasets import DatasetRow, Fields, check_columns, position_label, read_rows
from cascade.workers.client import Cascade
from cascade.workers.runtime.dispatch import send_jobs

WINDOW_ROWS = 4096  # rows read, stored and length-sorted together
DEFAULT_CHUNK = 256  # job ids per message
ANALYZE_EVERY_ROWS = 500_000  # refresh planner statistics as a large load grows


def windows(rows: Iterable[DatasetRow], size: int) -> Iterator[list[DatasetRow]]:
    iterator = iter(rows)
    while window := list(itertools.islice(iterator, size)):
        yield window


def submit_file(
    client: Cascade,
    path: str | Path,
    *,
    name: str,
    fields: Fields | None = None,
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    window_rows: int = WINDOW_ROWS,
    start_tier: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Submit every row of `path` as batch `name`; returns the batch's summary.

    `start_tier` sends the rows straight to a later tier: with the largest tier it makes the
    reference run that audits compare the cascade against.
    """
    fields = fields or Fields()
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1 job id per message, got {chunk_size}")
    rows = read_rows(path, fields=fields, fmt=fmt, max_tokens_limit=client.settings.config.max_tokens_limit)  # raises DatasetError before any batch is made
    return submit_rows(client, rows, name=name, source=str(path), id_field=fields.id, label=position_label(path, fmt),
                       check=lambda: check_columns(path, fields, fmt), chunk_size=chunk_size, window_rows=window_rows,
                       start_tier=start_tier, on_progress=on_progress)


def submit_rows(
    client: Cascade,
    rows: Iterable[DatasetRow],
    *,
    name: str,
    source: str,
    id_field: str = "id",
    label: str = "line",
    check: Callable[[], None] = lambda: None,
    chunk_size: int = DEFAULT_CHUNK,
    window_rows: int = WINDOW_ROWS,
    start_tier: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    api_key_id: uuid.UUID | None = None,
    request_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store and send already-read rows as batch `name` (the rows of a file, or of an HTTP batch
    request); `check` runs once the batch exists and may refuse the input as a whole."""
    config = client.settings.config
    first = config.tier(start_tier) if start_tier else config.first
    url = client.database_url
    with session_scope(url) as session:
        batch, resumed = store.create_or_resume(session, name=name, source=source, id_field=id_field)
        batch_id, read_before = batch.id, batch.rows_read or 0
        if api_key_id is not None or request_meta is not None:
            batch.api_key_id, batch.request_meta = api_key_id, request_meta
    read = sent_jobs = new_rows = resumed_rows = 0
    row_errors: dict[str, dict[str, Any]] = {}  # reason -> {"rows": n, "first": position}, this run's new ones
    started = time.monotonic()
    try:
        check()
        for window in windows(rows, window_rows):
            # Rows an earlier run of this batch already read were counted then: count only the rest.
            unseen = {row.index for i, row in enumerate(window) if read + i >= read_before}
            with session_scope(url) as session:
                outcome = store.insert_rows(session, batch_id, window, first_tier=first.name, label=label, api_key_id=api_key_id)
                batch = session.get(store.Batch, batch_id)
                if batch.status in (BatchStatus.CANCELLING.value, BatchStatus.CANCELLED.value):
                    store.cancel(session, batch)  # cancelled while it was being read: what was just stored too, nothing sent
                    break
                read += len(window)
                duplicates = [(position, message) for position, message in outcome.duplicates if position in unseen]
                store.note_progress(
                    session, session.get(store.Batch, batch_id), rows_read=read, duplicates=[m for _, m in duplicates]
                )
            failed = [(row.index, row.error) for row in window if row.error is not None and row.index in unseen]
            for position, reason in failed + [(position, "duplicate id (row rejected)") for position, _ in duplicates]:
                tally = row_errors.setdefault(reason, {"error": reason, "rows": 0, "first": f"{label} {position}"})
                tally["rows"] += 1
            if read == len(window) or read % ANALYZE_EVERY_ROWS < len(window):
                with session_scope(url) as session:
                    store.analyze(session)
            # Committed first, then sent: a crash in between leaves queued rows that a re-run resends.
            ordered = sorted(outcome.new, key=lambda pair: prompt_size(pair[1].question, pair[1].choices))
            ids = [job_id for job_id, _ in ordered] + outcome.resumed
            if ids:
                send_jobs(client.app, first, ids, chunk_size=chunk_size)
            sent_jobs += len(ids)
            new_rows += len(outcome.new)
            resumed_rows += len(outcome.resumed)
            if on_progress:
                on_progress(len(window))
    except Exception:
        with session_scope(url) as session:
            failed = session.get(store.Batch, batch_id)
            failed.status = BatchStatus.FAILED.value
        raise
    with session_scope(url) as session:
        batch = session.get(store.Batch, batch_id)
        if batch.status == BatchStatus.VALIDATING.value:
            batch.status = BatchStatus.IN_PROGRESS.value
            batch.submitted_at = utcnow()
        tally = store.refresh(session, batch)
        summary = describe(batch, tally)
    if read > window_rows:
        with session_scope(url) as session:
            store.analyze(session)
    summary.update(
        row_errors=sorted(row_errors.values(), key=lambda e: -e["rows"]),
        resumed=resumed,
        rows_new=new_rows,
        rows_resent=resumed_rows,
        jobs_sent=sent_jobs,
        submit_s=round(time.monotonic() - started, 3),
    )
    return summary


def describe(batch: store.Batch, tally: dict[str, int]) -> dict[str, Any]:
    """A batch's state in the shape `cascade batch status --json` prints."""
    finished = tally["done"] + tally["failed"] + tally["cancelled"]
    return {
        "id": str(batch.id),
        "name": batch.name,
        "status": batch.status,
        "source": batch.source,
        "counts": {
            "total": tally["total"],
            "completed": tally["done"],
            "failed": tally["failed"],
            "cancelled": tally["cancelled"],
            "queued": tally["queued"],
            "rejected": batch.rows_rejected,
        },
        "progress": round(finished / tally["total"], 4) if tally["total"] else 0.0,
        "rows_read": batch.rows_read,
        "errors": list(batch.errors or [])[:10],
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
    }


def status(client: Cascade, name: str) -> dict[str, Any]:
    with session_scope(client.database_url) as session:
        batch = store.get_batch(session, name)
        tally = store.refresh(session, batch)
        return describe(batch, tally)


def list_all(client: Cascade, limit: int = 50) -> list[dict[str, Any]]:
    with session_scope(client.database_url) as session:
        return [describe(b, store.refresh(session, b)) for b in store.list_batches(session, limit)]


def cancel(client: Cascade, name: str) -> dict[str, Any]:
    with session_scope(client.database_url) as session:
        batch = store.get_batch(session, name)
        cancelled = store.cancel(session, batch)
        summary = describe(batch, store.counts(session, batch.id))
    summary["cancelled_now"] = cancelled
    return summary


def export(client: Cascade, name: str, out: IO[str], on_progress: Callable[[int], None] | None = None) -> int:
    """Write one JSON line per row of the batch, in file order; returns the number written."""
    written = 0
    with session_scope(client.database_url) as session:
        batch = store.get_batch(session, name)
        for record in store.iter_export(session, batch.id):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
            if on_progress and written % 1000 == 0:
                on_progress(1000)
    return written
