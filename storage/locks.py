"""Cluster-wide locks in the database, so that one of many worker processes does a periodic chore."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from cascade.storage.engine import get_engine


@contextmanager
def try_lock(url: str, name: str) -> Iterator[bool]:
    """Yields whether this process holds the lock `name` (a PostgreSQL session advisory lock) for the
    block. SQLite has a single writer and no such locks: there it is always held."""
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = zlib.crc32(name.encode())
    with engine.connect() as connection:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
