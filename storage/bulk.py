"""Fast paths for many rows at once: COPY-based idempotent inserts and array membership tests.

PostgreSQL gets COPY into a temporary table and one INSERT ... ON CONFLICT DO NOTHING RETURNING,
and `= ANY(array)` with one parameter instead of IN lists of hundreds; SQLite gets executemany
and IN lists.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Uuid, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from cascade.storage.models import Base


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def key_in(session: Session, column, keys: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    """`column IN keys`, as one array parameter on PostgreSQL (cheap to parse and plan)."""
    if is_postgres(session):
        return column == any_(bindparam(None, list(keys), type_=ARRAY(Uuid)))
    return column.in_(list(keys))


def insert_new(
    session: Session,
    table: str,
    rows: list[dict[str, Any]],
    *,
    conflict: Sequence[str],
    returning: Sequence[str],
    json_columns: Sequence[str] = (),
) -> Sequence[Any]:
    """Insert rows, skipping those that clash on `conflict`; return `returning` of the new ones."""
    if not rows:
        return []
    columns = list(rows[0])
    if is_postgres(session):
        return _copy_insert(session, table, columns, rows, conflict, returning, json_columns)
    from sqlalchemy.dialects.sqlite import insert

    model = Base.metadata.tables[table]
    stmt = (
        insert(model)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(*(model.c[name] for name in returning))
    )
    return session.execute(stmt, rows).all()


def _copy_insert(session, table, columns, rows, conflict, returning, json_columns) -> list[tuple]:
    staging = f"cascade_in_{table}"
    session.execute(
        text(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    )
    session.execute(text(f"TRUNCATE {staging}"))
    names = ", ".join(columns)
    as_json = set(json_columns)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in as_json and row[c] is not None else row[c] for c in columns])
    result = session.execute(
        text(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {', '.join(returning)}"
        )
    )
    return result.all()
