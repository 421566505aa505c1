"""Streaming readers for offline datasets (JSONL, CSV, Parquet): one row at a time, flat memory.

Each row comes out as a `DatasetRow`: its position, its id, and either a validated job or the
reason it cannot be asked. A row with `choices` (or option columns A, B, ...) is a multiple-choice
question; a row without is a free-form prompt, with optional `gold` (one answer or a list; in CSV a
JSON list), `grader`, `max_tokens` and `stop`. A malformed row never stops the stream. Positions are what a person
finds in the file: the 1-based line of a JSONL or CSV file (a CSV header is line 1), the 1-based
row of a Parquet file.
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
from cascade.router.job_spec import make_job_spec
from cascade.router.prompts import LETTERS, storable_text
from cascade.storage.batches import BatchRow

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_BATCH_ROWS = 4096


class DatasetError(Exception):
    """The file as a whole cannot be read (missing, unknown format, no id or question column)."""


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


def position_label(path: str | Path, fmt: str | None = None) -> str:
    """What a row's position counts in this file: "line" (JSONL, CSV) or "row" (Parquet)."""
    return "row" if detect_format(Path(path), fmt) == "parquet" else "line"


def read_rows(
    path: str | Path, *, fields: Fields | None = None, fmt: str | None = None, max_tokens_limit: int | None = None
) -> Iterator[DatasetRow]:
    """Yield every row of the file in order, valid or not. `max_tokens_limit`: the most new tokens a
    free-form row may ask for (the cascade's limit)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"input file {path} not found")
    fields = fields or Fields()
    raw_rows = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[detect_format(path, fmt)](path)
    for position, raw in raw_rows:
        yield to_row(position, raw, fields, max_tokens_limit=max_tokens_limit)


def check_columns(path: str | Path, fields: Fields, fmt: str | None = None) -> None:
    """Refuse a CSV or Parquet file whose header has no id or question column (every row would fail)."""
    path = Path(path)
    kind = detect_format(path, fmt)
    if kind == "csv":
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            columns = next(csv.reader(fh), [])
    elif kind == "parquet":
        try:
            import pyarrow.parquet as pq

            columns = pq.ParquetFile(path).schema_arrow.names
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise DatasetError(f"{path.name} is not a readable Parquet file ({exc})") from None
    else:
        return
    for what, column, option in (("id", fields.id, "--id-field"), ("question", fields.question, "--question-field")):
        if what == "question" and column == Fields.question and "prompt" in columns:
            continue
        if column not in columns:
            shown = ", ".join(repr(c) for c in columns[:12]) or "none"
            raise DatasetError(f"{path.name} has no {what} column {column!r} (its columns: {shown}): name it with {option}")


def to_row(position: int, raw: dict[str, Any] | str, fields: Fields, *, max_tokens_limit: int | None = None) -> DatasetRow:
    """Validate one raw row; a string `raw` is the reason it could not even be parsed."""
    fallback_id = f"#{position}"
    if isinstance(raw, str):
        return DatasetRow(index=position, row_id=fallback_id, error=raw)
    row_id = raw.get(fields.id)
    if row_id is None or row_id == "":
        return DatasetRow(index=position, row_id=fallback_id, error=f"missing id field {fields.id!r}")
    if isinstance(row_id, (dict, list, bool)) or (isinstance(row_id, float) and not row_id.is_integer()):
        return DatasetRow(index=position, row_id=fallback_id, error=f"id field {fields.id!r} must be text or an integer")
    row_id = str(int(row_id)) if isinstance(row_id, float) else str(row_id)
    try:
        storable_text(row_id, f"id field {fields.id!r}", limit=255)
    except InvalidQuestion as exc:
        return DatasetRow(index=position, row_id=fallback_id, error=str(exc))
    text = raw.get(fields.question)
    if text is None and fields.question == Fields.question:
        text = raw.get("prompt")  # free-form rows may name their text `prompt`
    if text is not None and not isinstance(text, str):
        return DatasetRow(index=position, row_id=row_id, error=f"field {fields.question!r} must be text, got {type(text).__name__}")
    try:
        choices = _choices(raw, fields)
        gold = raw.get(fields.answer, raw.get("gold"))
        spec = make_job_spec(
            text, choices, gold=gold if choices is not None else _json_list(gold, "gold"), grader=raw.get("grader") or None,
            max_tokens=_whole_number(raw.get("max_tokens")), stop=_json_list(raw.get("stop"), "stop"),
            max_tokens_limit=max_tokens_limit,
        )
    except InvalidQuestion as exc:
        return DatasetRow(index=position, row_id=row_id, error=str(exc))
    return DatasetRow(
        index=position, row_id=row_id, kind=spec.kind, question=spec.question, choices=list(spec.choices), gold=spec.gold,
        gold_aliases=None if spec.gold_aliases is None else list(spec.gold_aliases), grader=spec.grader,
        max_tokens=spec.max_tokens, stop=None if spec.stop is None else list(spec.stop),
    )


def _json_list(value: Any, what: str) -> Any:
    """A CSV cell holding a JSON list ("[\"a\", \"b\"]") as the list; anything else unchanged."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidQuestion(f"field {what!r} starts like a JSON list but is not one") from None
    if value == "":
        return None
    return value


def _whole_number(value: Any) -> Any:
    """max_tokens from a CSV cell ("32") as an int; other values unchanged for the validator to judge."""
    if value == "":
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _choices(raw: dict[str, Any], fields: Fields) -> Any:
    choices = raw.get(fields.choices)
    if choices == "":  # an empty cell: no options, so a free-form row
        choices = None
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidQuestion(f"field {fields.choices!r} is text but not a JSON list") from None
    if choices is None:  # one column per option: A, B, C, ...
        columns = [raw[letter] for letter in LETTERS if raw.get(letter) not in (None, "")]
        choices = columns or None
    if choices is not None and not isinstance(choices, (list, tuple)):
        raise InvalidQuestion(f"field {fields.choices!r} must be a list of options, got {type(choices).__name__}")
    return choices


Raw = dict[str, Any] | str  # a parsed row, or the reason it could not be parsed


def _jsonl(path: Path) -> Iterator[tuple[int, Raw]]:
    with open(path, "rb") as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield line_number, _json_object(line)


def _json_object(line: bytes) -> Raw:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"bad JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return "bad JSON (nested too deeply)"
    return value if isinstance(value, dict) else f"expected a JSON object, got {type(value).__name__}"


def _csv(path: Path) -> Iterator[tuple[int, Raw]]:
    # surrogateescape keeps undecodable bytes so one bad row can be reported instead of aborting the file.
    with open(path, "rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.DictReader(text)
        while True:
            line_number = reader.line_num + 1  # where the next record starts (the header is line 1)
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line_number, f"bad CSV ({exc})"
                continue
            line_number = max(line_number, 2)
            values = list(record.values())
            if any(isinstance(v, str) and _has_surrogates(v) for v in values):
                yield line_number, "not UTF-8"
                continue
            if None in record:
                yield line_number, f"more fields than the header's {len(reader.fieldnames or [])}"
                continue
            yield line_number, {k: v for k, v in record.items() if k is not None}


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parquet(path: Path) -> Iterator[tuple[int, Raw]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        source = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DatasetError(f"{path.name} is not a readable Parquet file ({exc})") from None
    position = 0
    for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            position += 1
            yield position, record
