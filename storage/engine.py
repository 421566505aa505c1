"""Engines made lazily, one per URL per process, and the one `session_scope()` that commits or rolls back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str) -> Engine:
    """The process's engine for `url`, created on first use."""
    url = normalise_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _engines[url] = engine
        return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def dispose_all() -> None:
    """Drop pooled connections (after a fork, a child must not reuse the parent's sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=dispose_all)


@contextmanager
def session_scope(url_or_engine: str | Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    engine = get_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached (down, restarting, network), as opposed
    to a statement it refused: the first passes with time, the second never does."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError))


def is_unmigrated(exc: BaseException) -> bool:
    """Whether `exc` says a table is missing: the database was never migrated (`cascade db upgrade`)."""
    from sqlalchemy import exc as sa

    if not isinstance(exc, sa.ProgrammingError | sa.OperationalError):
        return False
    text = str(exc.orig or exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)
