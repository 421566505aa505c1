"""Streaming readers for offline datasets (JSONL, CSV, Parquet): one row at a time, flat memory.

Each row comes out as a `DatasetRow`: its position, its id, and either a validated question or
the reason it cannot be asked. A malformed row never stops the stream.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.router.errors import InvalidQuestion
from cascade.router.prompts import LETTERS, make_question, normalise_gold
from cascade.storage.batches import BatchRow

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_BATCH_ROWS = 4096


class DatasetError(Exception):
    """The file as a whole cannot be read (missing, unknown format)."""


@dataclass
class Fields:
    id: str = "id"
    question: str = "question"
    choices: str = "choices"
    answer: str = "answer"


# A row as the batch store takes it: valid (question set) or failed (error set).
DatasetRow = BatchRow


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise DatasetError(f"unknown format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "parquet"):
        return suffix
    raise DatasetError(f"cannot tell the format of {path.name}: name it .jsonl, .csv or .parquet, or pass --format")


def estimate_rows(path: str | Path, fmt: str | None = None) -> int | None:
    """How many rows the file holds, cheaply (for a progress bar); None if unknown."""
    path = Path(path)
    kind = detect_format(path, fmt)
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001
            return None
    lines = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
    return max(0, lines - 1) if kind == "csv" else lines


def read_rows(path: str | Path, *, fields: Fields | None = None, fmt: str | None = None) -> Iterator[DatasetRow]:
    """Yield every row of the file in order, valid or not."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"input file {path} not found")
    fields = fields or Fields()
    raw_rows = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[detect_format(path, fmt)](path)
    for index, raw in enumerate(raw_rows):
        yield to_row(index, raw, fields)


def to_row(index: int, raw: dict[str, Any] | str, fields: Fields) -> DatasetRow:
    """Validate one raw row; a string `raw` is the reason it could not even be parsed."""
    fallback_id = f"#{index}"
    if isinstance(raw, str):
        return DatasetRow(index=index, row_id=fallback_id, error=raw)
    row_id = raw.get(fields.id)
    if row_id is None or row_id == "":
        return DatasetRow(index=index, row_id=fallback_id, error=f"missing id field {fields.id!r}")
    if isinstance(row_id, (dict, list, bool)) or (isinstance(row_id, float) and not row_id.is_integer()):
        return DatasetRow(index=index, row_id=fallback_id, error=f"id field {fields.id!r} must be text or an integer")
    row_id = str(int(row_id)) if isinstance(row_id, float) else str(row_id)
    if len(row_id) > 255:
        return DatasetRow(index=index, row_id=fallback_id, error="id longer than 255 characters")
    text = raw.get(fields.question)
    if text is not None and not isinstance(text, str):
        return DatasetRow(index=index, row_id=row_id, error=f"field {fields.question!r} must be text, got {type(text).__name__}")
    try:
        question = make_question(text, _choices(raw, fields))
        gold = normalise_gold(raw.get(fields.answer, raw.get("gold")), question)
    except InvalidQuestion as exc:
        return DatasetRow(index=index, row_id=row_id, error=str(exc))
    return DatasetRow(index=index, row_id=row_id, question=question.text, choices=list(question.choices), gold=gold)


def _choices(raw: dict[str, Any], fields: Fields) -> Any:
    choices = raw.get(fields.choices)
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise InvalidQuestion(f"field {fields.choices!r} is text but not a JSON list") from None
    if choices is None:  # one column per option: A, B, C, ...
        columns = [raw[letter] for letter in LETTERS if raw.get(letter) not in (None, "")]
        choices = columns or None
    if choices is not None and not isinstance(choices, (list, tuple)):
        raise InvalidQuestion(f"field {fields.choices!r} must be a list of options, got {type(choices).__name__}")
    return choices


def _jsonl(path: Path) -> Iterator[dict[str, Any] | str]:
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield f"not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield f"bad JSON ({exc.msg} at column {exc.colno})"
                continue
            yield value if isinstance(value, dict) else f"expected a JSON object, got {type(value).__name__}"


def _csv(path: Path) -> Iterator[dict[str, Any] | str]:
    # surrogateescape keeps undecodable bytes so one bad row can be reported instead of aborting the file.
    with open(path, "rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.DictReader(text)
        for record in reader:
            values = list(record.values())
            if any(isinstance(v, str) and _has_surrogates(v) for v in values):
                yield "not UTF-8"
                continue
            if None in record:
                yield f"more fields than the header's {len(reader.fieldnames or [])}"
                continue
            yield {k: v for k, v in record.items() if k is not None}


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parquet(path: Path) -> Iterator[dict[str, Any] | str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        source = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DatasetError(f"{path.name} is not a readable Parquet file ({exc})") from None
    for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from batch.to_pylist()
